"""The delivery decision: may this message (or favour request) be delivered now?

``decide(state, obj, now)`` is pure. Checks run in a fixed order and the first failure is
the answer, so every implementation refuses with the same code:

1. connection status (``connection_severed``, ``connection_not_active``)
2. sender is a party (``not_a_party``)
3. object expiry (``message_expired``)
4. a grant from the recipient covers scope and topic (``grant_missing``, ``grant_expired``)
5. for messages, the recipient's mute unless the topic is exempt (``muted`` in ``reject``
   mode; ``hold`` mode allows delivery but holds it until the mute ends). A mute silences
   messages; favour requests are governed by favour grants alone, so a muted party can
   still return a favour it was asked.
6. the grant's quiet hours (``quiet_hours``)
7. the grant's rate cap over a sliding window (``rate_exceeded``)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import constraints, errors
from .envelope import SignedObject
from .types import FavourRequestBody, MessageBody

if TYPE_CHECKING:  # state imports this module (for decide) at its top
    from .state import ConnectionState


@dataclass(frozen=True, slots=True)
class Allowed:
    """Deliver. When ``held``, deliver only once the recipient's mute ends (``release_time``,
    ``None`` for a mute until further notice)."""

    grant_id: str
    held: bool = False
    release_time: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """Do not deliver, for the stable reason ``code``."""

    code: str
    retry_after: int | None = None
    """Seconds after which the same send could succeed (quiet hours, rate cap)."""
    muted_until: int | None = None


DeliveryDecision = Allowed | Refused

REFUSAL_CODES = (
    "connection_severed",
    "connection_not_active",
    "not_a_party",
    "message_expired",
    "grant_missing",
    "grant_expired",
    "muted",
    "quiet_hours",
    "rate_exceeded",
)


def scope_and_topic(obj: SignedObject) -> tuple[str, str]:
    """The grant scope and topic a deliverable object needs."""
    body = obj.body
    if isinstance(body, MessageBody):
        return "message", body.topic
    if isinstance(body, FavourRequestBody):
        return "favour", body.kind
    raise errors.StateError(f"{obj.type.value} is not subject to the delivery decision")


def decide(state: ConnectionState, obj: SignedObject, now: int) -> DeliveryDecision:
    """Decide whether ``obj`` (a message or favour request) may be delivered at ``now``."""
    if state.status == "severed":
        return Refused("connection_severed")
    if state.status != "active":
        return Refused("connection_not_active")
    if obj.sender == state.dids[0]:
        recipient = 1
    elif obj.sender == state.dids[1]:
        recipient = 0
    else:
        return Refused("not_a_party")
    if obj.expires_time is not None and obj.expires_time <= now:
        return Refused("message_expired")
    scope, topic = scope_and_topic(obj)
    grant = state.grant_for(recipient, scope, topic)
    if grant is None:
        return Refused("grant_missing")
    spec = grant.spec
    if spec.expires_time is not None and now >= spec.expires_time:
        return Refused("grant_expired")
    held = False
    release: int | None = None
    mute = state.mute_by(recipient)
    if (
        scope == "message"
        and mute is not None
        and mute.active_at(now)
        and topic not in mute.exempt_topics
    ):
        if mute.mode == "reject":
            return Refused("muted", muted_until=mute.until)
        held, release = True, mute.until
    if spec.quiet_hours is not None:
        q = spec.quiet_hours
        wait = constraints.quiet_remaining(q.start, q.end, q.tz, now)
        if wait:
            return Refused("quiet_hours", retry_after=wait)
    if spec.rate is not None:
        recent = grant.counted_at(now)
        if len(recent) >= spec.rate.count:
            leaves = recent[-spec.rate.count] + spec.rate.seconds
            return Refused("rate_exceeded", retry_after=leaves - now)
    return Allowed(grant.id, held=held, release_time=release)


def refusal_error(refusal: Refused) -> errors.ProtocolError:
    """The typed error for a refusal (what :func:`rapport_protocol.state.apply` raises)."""
    cls = errors.ERRORS_BY_CODE.get(refusal.code, errors.NotPermitted)
    return cls(refusal.code, refusal=refusal)
