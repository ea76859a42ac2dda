"""Typed views of every response of the REST API.

Models accept members they do not know (a newer server may add some), so an SDK release
keeps working against later servers; everything documented is typed.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import RapportError, error_for

T = TypeVar("T")


class Model(BaseModel):
    """Base of the response models (tolerant of new members, immutable)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Page(Model, Generic[T]):
    """One page of a list: ``data``, and ``next_cursor`` while ``has_more``."""

    data: list[T]
    next_cursor: str | None = None
    has_more: bool = False


class Token(Model):
    """An OAuth access token (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a token type
    expires_in: int


class Party(Model):
    """A registered business or person."""

    id: str
    kind: Literal["business", "person"]
    did: str
    display_name: str
    profile_url: str | None = None
    logo_url: str | None = None
    created_time: int


class Invitation(Model):
    """An invitation; ``token`` and ``url`` are shown to the inviter only."""

    id: str
    token: str | None = None
    url: str | None = None
    status: str
    multi_use: bool
    max_uses: int | None = None
    uses: int = 0
    expires_time: int | None = None
    created_time: int
    object: dict[str, Any]

    @property
    def label(self) -> str:
        """The inviter's label for the invitation."""
        return str(self.object.get("body", {}).get("label", ""))

    @property
    def offered(self) -> list[dict[str, Any]]:
        """Grants the inviter offers (what you may send them)."""
        return list(self.object.get("body", {}).get("offered", []))

    @property
    def requested(self) -> list[dict[str, Any]]:
        """Grants the inviter asks you for (what they want to send you)."""
        return list(self.object.get("body", {}).get("requested", []))

    @property
    def inviter_did(self) -> str:
        """The inviter's did:key."""
        return str(self.object.get("from", ""))


class Grant(Model):
    """A grant as seen by you: ``granted_by_me`` (they may send you) or ``granted_to_me``."""

    id: str
    direction: Literal["granted_by_me", "granted_to_me"]
    scope: str
    topic: str
    purpose: str | None = None
    rate: dict[str, Any] | None = None
    quiet_hours: dict[str, Any] | None = None
    expires_time: int | None = None
    status: str
    issued_time: int
    ended_time: int | None = None
    replaces: str | None = None
    used_in_window: int = 0


class GrantList(Model):
    """Grants both ways in one connection."""

    granted_by_me: list[Grant]
    granted_to_me: list[Grant]


class MuteView(Model):
    """A mute in force."""

    until: int | None = None
    exempt_topics: list[str] = []
    mode: str


class Connection(Model):
    """A connection between you and a counterparty."""

    cid: str
    status: str
    my_role: Literal["inviter", "acceptor"]
    counterparty: str
    counterparty_did: str | None = None
    counterparty_kind: str | None = None
    created_time: int
    updated_time: int
    muted_by_me: MuteView | None = None
    muted_by_them: MuteView | None = None
    grants: list[Grant] = []
    severance: dict[str, Any] | None = None
    data_instruction: str | None = None


class LogItem(Model):
    """One entry of a connection's signed log, with the server's receipt."""

    server_seq: int
    received_time: int
    object: dict[str, Any]


class Favour(Model):
    """A favour asked in a connection (``requester`` is ``me`` or ``them``)."""

    id: str
    requester: Literal["me", "them"]
    kind: str
    description: str
    status: str
    requested_time: int
    expires_time: int | None = None
    due_time: int | None = None
    return_of: str | None = None
    updated_time: int


class LedgerSide(Model):
    """What one side has given, received and returned, and its open asks."""

    given: int = 0
    received: int = 0
    returned: int = 0
    open_asks: int = 0


class Ledger(Model):
    """The reciprocity ledger of a connection."""

    me: LedgerSide
    them: LedgerSide


class SendResult(Model):
    """An accepted message: delivered now, or ``held`` until ``release_time``."""

    id: str
    cid: str
    server_seq: int
    held: bool
    release_time: int | None = None


class OutgoingMessage(Model):
    """One message of :meth:`messages.send_batch`: what :meth:`messages.send` takes."""

    cid: str
    topic: str
    content: str
    content_type: str = "text/plain"
    purpose: str | None = None
    reply_to: str | None = None
    expires_time: int | None = None


class SendBatchItem(Model):
    """One object's result in a batch send: ``message`` when accepted (``status`` 201),
    else ``problem`` (the refusal, as a single send would have had it)."""

    status: int
    message: SendResult | None = None
    problem: dict[str, Any] | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.message is not None

    def error(self) -> RapportError | None:
        """The typed exception a single send would have raised (``None`` if accepted)."""
        if self.message is not None:
            return None
        return error_for(self.status, self.problem or {})


class InboxMessage(Model):
    """A message delivered to you. ``id`` is its number in your event stream."""

    id: int
    cid: str
    object_id: str
    sender: str
    topic: str
    content_type: str
    content: str | None = None
    received_time: int
    acked_time: int | None = None
    object: dict[str, Any]


class BroadcastResult(Model):
    """Counts of a broadcast by outcome."""

    id: str
    candidates: int = 0
    delivered: int = 0
    held: int = 0
    refused: dict[str, int] = {}


class AccountExport(Model):
    """Everything the server holds about you."""

    party: Party
    exported_time: int
    connections: list[dict[str, Any]]
    invitations: list[Invitation]
    inbox: list[dict[str, Any]]


class AccountDeleted(Model):
    """The outcome of deleting your account."""

    deleted: bool
    severed: int


class Event(Model):
    """One event of your stream (``id`` is a per-party sequence number)."""

    id: int
    type: str
    cid: str | None = None
    created_time: int
    server_seq: int | None = None
    object: dict[str, Any] | None = None


class WebhookEndpoint(Model):
    """A webhook endpoint; ``secret`` (``whsec_…``) only in create/rotate answers."""

    id: str
    url: str
    types: list[str] | None = None
    description: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    created_time: int
    secret: str | None = Field(default=None, repr=False)


class WebhookDelivery(Model):
    """One delivery of an event to an endpoint, with its attempts and outcome."""

    id: int
    event_id: int
    webhook_id: str
    status: Literal["pending", "delivered", "dead"] | str
    attempts: int = 0
    next_attempt_time: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_time: int | None = None


class ReplayResult(Model):
    """How many deliveries a replay scheduled."""

    scheduled: int


class WebhookKey(Model):
    """A server webhook signing key (``public_key`` is ``whpk_<base64>``)."""

    kid: str
    alg: str = "Ed25519"
    public_key: str
