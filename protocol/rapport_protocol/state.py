"""The connection state machine: one pure function, symmetric between the two parties.

``apply(state, obj, now) -> new state`` consumes one verified :class:`SignedObject` and
either returns the next :class:`ConnectionState` or raises a typed
:class:`~rapport_protocol.errors.ProtocolError`. States are immutable; nothing here reads a
clock or does I/O. The machine does not know which party *we* are: both parties' objects go
through the same rules.

Parties are referred to by *role*: 0 is the inviter, 1 the acceptor.

Everything that moves the connection's ``status`` is in :data:`CONNECTION_TRANSITIONS`, a
table from which the spec's table is generated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import errors
from .decision import Allowed, DeliveryDecision, decide, refusal_error
from .envelope import SignedObject
from .favours import FAVOUR_OPEN, Favour, apply_favour_step, cancel_open, new_favour
from .types import (
    AcceptBody,
    DeclineBody,
    GrantAmendBody,
    GrantIssueBody,
    GrantRevokeBody,
    GrantSpec,
    InvitationBody,
    KeyRotationBody,
    MessageType,
    MuteBody,
    SeverBody,
)

Status = Literal["invited", "active", "declined", "severed"]
Role = Literal[0, 1]
GrantStatus = Literal["active", "superseded", "revoked", "ended_by_sever"]

T = MessageType

# status -> message type -> status after the object is applied. A type absent from a
# status's row is refused there (``connection_severed`` once severed, else
# ``invalid_transition``); the ``expired`` state of an invitation is not stored but
# derived from ``now`` (see :meth:`ConnectionState.status_at`).
_ACTIVE_SELF: dict[MessageType, Status] = {
    t: "active"
    for t in (
        T.GRANT_ISSUE,
        T.GRANT_AMEND,
        T.GRANT_REVOKE,
        T.MUTE,
        T.UNMUTE,
        T.FAVOUR_REQUEST,
        T.FAVOUR_ACCEPT,
        T.FAVOUR_DECLINE,
        T.FAVOUR_WITHDRAW,
        T.FAVOUR_FULFIL,
        T.FAVOUR_ACKNOWLEDGE,
        T.MESSAGE,
        T.KEY_ROTATION,
    )
}
CONNECTION_TRANSITIONS: dict[str, dict[MessageType, Status]] = {
    "start": {T.INVITATION: "invited"},
    "invited": {T.ACCEPT: "active", T.DECLINE: "declined", T.KEY_ROTATION: "invited"},
    "active": {**_ACTIVE_SELF, T.SEVER: "severed"},
    "declined": {},
    "severed": {},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grant(_Frozen):
    """A grant in force or in history. ``grantor`` receives; the other role may send."""

    id: str
    grantor: Role
    spec: GrantSpec
    issued_time: int
    status: GrantStatus = "active"
    ended_time: int | None = None
    replaces: str | None = None
    # Times of deliveries counted against the rate cap, oldest first, at most ``count``.
    usage: tuple[int, ...] = ()

    def counted_at(self, now: int) -> tuple[int, ...]:
        """The recorded deliveries still inside the rate cap's window at ``now``, oldest
        first (none for a grant without a cap)."""
        cap = self.spec.rate
        if cap is None:
            return ()
        floor = now - cap.seconds
        return tuple(t for t in self.usage if t > floor)


class Mute(_Frozen):
    id: str
    muter: Role
    set_time: int
    until: int | None
    exempt_topics: tuple[str, ...]
    mode: Literal["hold", "reject"]

    def active_at(self, now: int) -> bool:
        return self.until is None or now < self.until


class Severance(_Frozen):
    id: str
    by: Role
    time: int
    data: Literal["delete", "retain_legal", "export_then_delete"]
    block_reinvite: bool


class ChainHead(_Frozen):
    seq: int = 0
    last: str | None = None


class ConnectionState(_Frozen):
    """Everything the rules need about one connection, derived from its signed log."""

    status: Status
    invitation_id: str
    invitation_expires: int | None
    inviter_kind: Literal["business", "person"]
    invitation_to: tuple[str, ...] = ()
    """The invitation's ``to``: when not empty, only these DIDs may answer it."""
    requested: tuple[GrantSpec, ...] = ()
    cid: str | None = None
    dids: tuple[str, str | None]
    kinds: tuple[str, str | None]
    heads: tuple[ChainHead, ChainHead] = (ChainHead(), ChainHead())
    grants: dict[str, Grant] = {}
    """Every grant ever issued in this connection, by grant id."""
    active_grants: dict[str, str] = {}
    """``"<grantor>|<scope>|<topic>"`` -> id of the grant in force."""
    mutes: dict[str, Mute] = {}
    """Role (as a string) -> that role's current mute of the other."""
    favours: dict[str, Favour] = {}
    severance: Severance | None = None
    last_time: int = 0

    def role_of(self, did: str) -> Role:
        """The role of ``did`` in this connection; ``not_a_party`` otherwise."""
        if did == self.dids[0]:
            return 0
        if did == self.dids[1]:
            return 1
        raise errors.NotAParty("the sender is not a party to this connection")

    def status_at(self, now: int) -> str:
        """``status``, or ``expired`` for an invitation whose expiry has passed."""
        expires = self.invitation_expires
        if self.status == "invited" and expires is not None and now >= expires:
            return "expired"
        return self.status

    def grant_for(self, grantor: int, scope: str, topic: str) -> Grant | None:
        """The grant in force from ``grantor`` for ``scope``/``topic`` (exact, then ``*``)."""
        gid = self.active_grants.get(f"{grantor}|{scope}|{topic}")
        if gid is None:
            gid = self.active_grants.get(f"{grantor}|{scope}|*")
        return None if gid is None else self.grants[gid]

    def mute_by(self, role: int) -> Mute | None:
        return self.mutes.get(str(role))


def derive_cid(invitation_id: str, acceptor_did: str) -> str:
    """Connection id: first 32 hex digits of SHA-256(invitation id ‖ "|" ‖ acceptor DID)."""
    return hashlib.sha256(f"{invitation_id}|{acceptor_did}".encode()).hexdigest()[:32]


def start(invitation: SignedObject) -> ConnectionState:
    """The state of a connection that so far consists of ``invitation`` only."""
    if invitation.type is not T.INVITATION:
        raise errors.StateError("a connection log starts with an invitation")
    body = invitation.body
    assert isinstance(body, InvitationBody)
    return ConnectionState(
        status="invited",
        invitation_id=invitation.id,
        invitation_expires=invitation.expires_time,
        inviter_kind=body.kind,
        invitation_to=invitation.to,
        requested=tuple(body.requested),
        dids=(invitation.sender, None),
        kinds=(body.kind, None),
        grants={
            f"{invitation.id}.{i}": Grant(
                id=f"{invitation.id}.{i}", grantor=0, spec=spec, issued_time=invitation.created_time
            )
            for i, spec in enumerate(body.offered)
        },
        last_time=invitation.created_time,
    )


def apply(state: ConnectionState | None, obj: SignedObject, now: int) -> ConnectionState:
    """Apply one verified object received at ``now``; return the new state or raise.

    ``state`` is ``None`` only for the invitation that opens a log.
    """
    return apply_decided(state, obj, now)[0]


def apply_decided(
    state: ConnectionState | None, obj: SignedObject, now: int
) -> tuple[ConnectionState, Allowed | None]:
    """:func:`apply`, and for a message or favour request the delivery decision
    (:func:`~rapport_protocol.decide`) it was admitted under — ``held`` by a mute or not —
    so a receiver needs no second ``decide``. ``None`` for every other object."""
    if state is None:
        return start(obj), None
    row = CONNECTION_TRANSITIONS[state.status]
    if obj.type not in row:
        if state.status == "severed":
            raise errors.ConnectionSevered("the connection has been severed")
        if state.status == "declined":
            raise errors.ConnectionNotActive("the invitation was declined")
        raise errors.StateError(f"{obj.type.value} is not allowed while {state.status}")
    if obj.type is T.KEY_ROTATION:
        return _rotate(state, obj), None
    if obj.type in (T.ACCEPT, T.DECLINE):
        return _respond(state, obj, now), None
    role = state.role_of(obj.sender)
    verdict: Allowed | None = None
    if obj.broadcast:
        # One signed object for many connections: outside the chains. By design the state
        # keeps no memory of broadcast ids (it would grow without bound); a log holds each
        # id at most once (verify_log refuses a repeat with ``replayed``), and a receiver
        # applying live objects keeps the ids it applied (spec §9).
        decided, counted = apply_broadcast(state, obj, now)
        if not isinstance(decided, Allowed):
            raise refusal_error(decided)
        if counted is None:
            counted = state.model_copy(update={"last_time": max(state.last_time, now)})
        return counted, decided
    if obj.cid != state.cid:
        raise errors.WrongConnection("cid does not name this connection")
    heads = _advance(state, role, obj)
    if obj.type is T.MESSAGE:
        new, verdict = _admit(state, role, obj, now)
    elif obj.type is T.FAVOUR_REQUEST:
        new, verdict = _favour_request_decided(state, role, obj, now)
    else:
        new = _HANDLERS[obj.type](state, role, obj, now)
    update = {"heads": heads, "last_time": max(new.last_time, now)}
    return new.model_copy(update=update), verdict


def apply_broadcast(
    state: ConnectionState, obj: SignedObject, now: int
) -> tuple[DeliveryDecision, ConnectionState | None]:
    """One connection's share of a broadcast message: the delivery decision and, if it is
    :class:`~rapport_protocol.Allowed`, the state :func:`apply` leaves — or ``None`` where
    that state differs from ``state`` only in ``last_time``, which becomes
    ``max(state.last_time, now)`` (the grant has no rate cap, so nothing is counted).

    The same rules as :func:`apply_decided`, which raises the refusal instead of returning
    it; this form lets one broadcast be applied to many stored states without building a
    copy of each only to move its clock. For a refusal the second item is ``None`` and the
    state is unchanged."""
    if not obj.broadcast:  # a message without a cid
        raise errors.StateError("not a broadcast message")
    verdict = decide(state, obj, now)
    if not isinstance(verdict, Allowed):
        return verdict, None
    grant = state.grants[verdict.grant_id]
    if grant.spec.rate is None:
        return verdict, None
    counted = _counted(state, grant, now)
    return verdict, counted.model_copy(update={"last_time": max(counted.last_time, now)})


def _advance(state: ConnectionState, role: int, obj: SignedObject) -> tuple[ChainHead, ChainHead]:
    head = state.heads[role]
    if obj.seq <= head.seq:
        raise errors.Replayed(f"seq {obj.seq} is not after {head.seq}")
    if obj.seq != head.seq + 1 or obj.prev != head.last:
        raise errors.ChainBroken(f"expected seq {head.seq + 1} after {head.last}")
    # Both fields come from a verified object (an int seq, a str id): no validation pass.
    new_head = ChainHead.model_construct(seq=obj.seq, last=obj.id)
    return (new_head, state.heads[1]) if role == 0 else (state.heads[0], new_head)


def _respond(state: ConnectionState, obj: SignedObject, now: int) -> ConnectionState:
    body = obj.body
    assert isinstance(body, AcceptBody | DeclineBody)
    if body.invitation != state.invitation_id or obj.thid != state.invitation_id:
        raise errors.WrongConnection("body.invitation and thid must name the invitation")
    if obj.sender == state.dids[0]:
        raise errors.InvitationNotForYou("the inviter cannot answer its own invitation")
    if state.invitation_to and obj.sender not in state.invitation_to:
        raise errors.InvitationNotForYou("the invitation is addressed to other parties")
    if state.status_at(now) == "expired":
        raise errors.InvitationExpired("the invitation has expired")
    if obj.cid != derive_cid(state.invitation_id, obj.sender):
        raise errors.WrongConnection("cid must be derive_cid(invitation id, acceptor DID)")
    if obj.seq != 1:
        raise errors.ChainBroken("the acceptor's chain starts at seq 1")
    heads = (state.heads[0], ChainHead(seq=1, last=obj.id))
    base = state.model_copy(
        update={
            "cid": obj.cid,
            "dids": (state.dids[0], obj.sender),
            "heads": heads,
            "last_time": now,
        }
    )
    if isinstance(body, DeclineBody):
        return base.model_copy(update={"status": "declined", "grants": {}})
    grants = dict(state.grants)
    for i, spec in enumerate(body.grants):
        gid = f"{obj.id}.{i}"
        grants[gid] = Grant(id=gid, grantor=1, spec=spec, issued_time=obj.created_time)
    active: dict[str, str] = {}
    for grant in grants.values():
        key = _grant_key(grant.grantor, grant.spec)
        if key in active:
            raise errors.GrantExists(f"two grants for {key}")
        active[key] = grant.id
    return base.model_copy(
        update={
            "status": "active",
            "kinds": (state.kinds[0], body.kind),
            "grants": grants,
            "active_grants": active,
        }
    )


def _rotate(state: ConnectionState, obj: SignedObject) -> ConnectionState:
    body = obj.body
    assert isinstance(body, KeyRotationBody)
    role = state.role_of(obj.sender)
    if body.new_key in state.dids:
        raise errors.StateError("the new key is already a party of this connection")
    dids = (body.new_key, state.dids[1]) if role == 0 else (state.dids[0], body.new_key)
    return state.model_copy(update={"dids": dids})


def _grant_key(grantor: int, spec: GrantSpec) -> str:
    return f"{grantor}|{spec.scope}|{spec.topic}"


def _end_grant(grant: Grant, status: GrantStatus, now: int) -> Grant:
    return grant.model_copy(update={"status": status, "ended_time": now})


def _grant_issue(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    body = obj.body
    assert isinstance(body, GrantIssueBody)
    key = _grant_key(role, body.grant)
    if key in state.active_grants:
        raise errors.GrantExists("a grant for this scope and topic is in force: amend it")
    grant = Grant(id=obj.id, grantor=_role(role), spec=body.grant, issued_time=now)
    return state.model_copy(
        update={
            "grants": {**state.grants, obj.id: grant},
            "active_grants": {**state.active_grants, key: obj.id},
        }
    )


def _current_grant(state: ConnectionState, role: int, grant_id: str) -> Grant:
    grant = state.grants.get(grant_id)
    if grant is None or grant.grantor != role:
        raise errors.GrantNotFound("no such grant of yours in this connection")
    if grant.status != "active":
        raise errors.GrantConflict(f"grant {grant_id} is {grant.status}", grant_status=grant.status)
    return grant


def _grant_amend(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    body = obj.body
    assert isinstance(body, GrantAmendBody)
    old = _current_grant(state, role, body.replaces)
    if (old.spec.scope, old.spec.topic) != (body.grant.scope, body.grant.topic):
        raise errors.InvalidBody("an amendment keeps the grant's scope and topic")
    new = Grant(
        id=obj.id,
        grantor=_role(role),
        spec=body.grant,
        issued_time=now,
        replaces=old.id,
        usage=_inherited_usage(old, body.grant, now),
    )
    return state.model_copy(
        update={
            "grants": {**state.grants, old.id: _end_grant(old, "superseded", now), obj.id: new},
            "active_grants": {**state.active_grants, _grant_key(role, body.grant): obj.id},
        }
    )


def _inherited_usage(old: Grant, spec: GrantSpec, now: int) -> tuple[int, ...]:
    """What an amendment's grant starts with (spec §13): the old grant's deliveries still
    inside the old window, the latest ``count`` of the new cap's, so narrowing a cap does
    not reset it, widening the period does not bring back deliveries that had left the old
    window, and adding a cap to an uncapped grant (which recorded nothing) starts counting
    at the amendment. An uncapped grant records nothing."""
    if spec.rate is None:
        return ()
    return old.counted_at(now)[-spec.rate.count :]


def _grant_revoke(
    state: ConnectionState, role: int, obj: SignedObject, now: int
) -> ConnectionState:
    body = obj.body
    assert isinstance(body, GrantRevokeBody)
    old = _current_grant(state, role, body.grant_id)
    active = dict(state.active_grants)
    del active[_grant_key(role, old.spec)]
    return state.model_copy(
        update={
            "grants": {**state.grants, old.id: _end_grant(old, "revoked", now)},
            "active_grants": active,
        }
    )


def _mute(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    body = obj.body
    assert isinstance(body, MuteBody)
    if body.until is not None and body.until <= now:
        raise errors.InvalidBody("a mute ends in the future")
    mute = Mute(
        id=obj.id,
        muter=_role(role),
        set_time=now,
        until=body.until,
        exempt_topics=tuple(body.exempt_topics),
        mode=body.mode,
    )
    return state.model_copy(update={"mutes": {**state.mutes, str(role): mute}})


def _unmute(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    mute = state.mute_by(role)
    if mute is None or not mute.active_at(now):
        raise errors.MuteNotFound("there is no mute in force to lift")
    mutes = {k: v for k, v in state.mutes.items() if k != str(role)}
    return state.model_copy(update={"mutes": mutes})


def _sever(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    body = obj.body
    assert isinstance(body, SeverBody)
    grants = {
        gid: _end_grant(g, "ended_by_sever", now) if g.status == "active" else g
        for gid, g in state.grants.items()
    }
    return state.model_copy(
        update={
            "status": "severed",
            "grants": grants,
            "active_grants": {},
            "mutes": {},
            "favours": cancel_open(state.favours, now),
            "severance": Severance(
                id=obj.id,
                by=_role(role),
                time=now,
                data=body.data,
                block_reinvite=body.block_reinvite,
            ),
        }
    )


def _permitted(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    return _admit(state, role, obj, now)[0]


def _admit(
    state: ConnectionState, role: int, obj: SignedObject, now: int
) -> tuple[ConnectionState, Allowed]:
    verdict = decide(state, obj, now)
    if not isinstance(verdict, Allowed):
        raise refusal_error(verdict)
    grant = state.grants[verdict.grant_id]
    if grant.spec.rate is None:
        # Nothing to count: the state is unchanged. (Copying the grant with the same usage
        # was a third of the per-recipient cost of a large broadcast.)
        return state, verdict
    return _counted(state, grant, now), verdict


def _counted(state: ConnectionState, grant: Grant, now: int) -> ConnectionState:
    """``state`` with one delivery at ``now`` counted against ``grant``'s rate cap."""
    cap = grant.spec.rate
    assert cap is not None
    usage = (*grant.counted_at(now), now)[-cap.count :]
    grants = {**state.grants, grant.id: grant.model_copy(update={"usage": usage})}
    return state.model_copy(update={"grants": grants})


def _favour_request(
    state: ConnectionState, role: int, obj: SignedObject, now: int
) -> ConnectionState:
    return _favour_request_decided(state, role, obj, now)[0]


def _favour_request_decided(
    state: ConnectionState, role: int, obj: SignedObject, now: int
) -> tuple[ConnectionState, Allowed]:
    state, verdict = _admit(state, role, obj, now)
    favour = new_favour(state.favours, _role(role), obj, now)
    return state.model_copy(update={"favours": {**state.favours, favour.id: favour}}), verdict


def _favour_step(state: ConnectionState, role: int, obj: SignedObject, now: int) -> ConnectionState:
    favour = apply_favour_step(state.favours, _role(role), obj, now)
    return state.model_copy(update={"favours": {**state.favours, favour.id: favour}})


def _role(role: int) -> Role:
    return 0 if role == 0 else 1


_Handler = Callable[[ConnectionState, int, SignedObject, int], ConnectionState]
_HANDLERS: dict[MessageType, _Handler] = {
    T.GRANT_ISSUE: _grant_issue,
    T.GRANT_AMEND: _grant_amend,
    T.GRANT_REVOKE: _grant_revoke,
    T.MUTE: _mute,
    T.UNMUTE: _unmute,
    T.SEVER: _sever,
    T.MESSAGE: _permitted,
    T.FAVOUR_REQUEST: _favour_request,
    T.FAVOUR_ACCEPT: _favour_step,
    T.FAVOUR_DECLINE: _favour_step,
    T.FAVOUR_WITHDRAW: _favour_step,
    T.FAVOUR_FULFIL: _favour_step,
    T.FAVOUR_ACKNOWLEDGE: _favour_step,
}

__all__ = [
    "CONNECTION_TRANSITIONS",
    "FAVOUR_OPEN",
    "ChainHead",
    "ConnectionState",
    "Grant",
    "Mute",
    "Severance",
    "apply",
    "derive_cid",
    "start",
]
