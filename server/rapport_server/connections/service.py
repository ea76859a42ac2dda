"""Use cases of a connection: apply a party-signed object, read state, logs and ledgers.

Every write is a unit for the :class:`~rapport_server.writes.WriteBatcher`; every rule comes
from ``rapport_protocol``. A party only ever finds connections it is a party to: anything
else is ``None`` here and 404 at the edge.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from rapport_protocol import ConnectionState, MessageType, apply, decide, errors
from rapport_protocol.decision import Allowed, refusal_error
from rapport_protocol.envelope import SignedObject
from rapport_protocol.state import apply_decided
from rapport_protocol.types import MuteBody, SeverBody
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import NotFound, SenderMismatch, Subject, TypeMismatch
from ..protocol_errors import to_problem
from ..tables import (
    ActiveGrant,
    Block,
    Connection,
    Event,
    HeldMessage,
    LogEntry,
    WebhookDelivery,
)
from ..writes import UnitContext
from . import repository as repo

M = MessageType
# What the other party's event stream calls each change.
EVENT_KIND = {
    M.GRANT_ISSUE: "grant",
    M.GRANT_AMEND: "grant",
    M.GRANT_REVOKE: "grant",
    M.MUTE: "mute",
    M.UNMUTE: "mute",
    M.SEVER: "sever",
    M.FAVOUR_REQUEST: "favour",
    M.FAVOUR_ACCEPT: "favour",
    M.FAVOUR_DECLINE: "favour",
    M.FAVOUR_WITHDRAW: "favour",
    M.FAVOUR_FULFIL: "favour",
    M.FAVOUR_ACKNOWLEDGE: "favour",
    M.MESSAGE: "message",
    M.KEY_ROTATION: "key",
}


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one accepted object."""

    connection: Connection
    state: ConnectionState
    log_seq: int
    held: bool = False
    release_time: int | None = None
    event_id: int | None = None


def require_type(obj: SignedObject, allowed: Collection[MessageType]) -> None:
    if obj.type not in allowed:
        names = ", ".join(sorted(t.value for t in allowed))
        raise TypeMismatch(f"this route takes {names}, not {obj.type.value}")


def require_sender(subject: Subject, obj: SignedObject) -> None:
    if obj.sender != subject.did:
        raise SenderMismatch("'from' must be your current DID")


def state_of(row: Connection) -> ConnectionState:
    return ConnectionState.model_validate_json(row.state)


def counterparty_of(row: Connection, party_id: str) -> str:
    return row.acceptor_id if row.inviter_id == party_id else row.inviter_id


def role_of(row: Connection, party_id: str) -> int:
    return 0 if row.inviter_id == party_id else 1


def transition(
    state: ConnectionState, obj: SignedObject, now: int
) -> tuple[ConnectionState, Allowed | None]:
    """The protocol's verdict on ``obj`` and the state after it; refusals as problems.

    Messages and favour requests also get the delivery decision (``decide``): its
    ``Allowed`` says whether the message is held by a mute.
    """
    try:
        if obj.type not in (M.MESSAGE, M.FAVOUR_REQUEST) or state.status != "active":
            return apply(state, obj, now), None
        # A replay is refused as a replay whatever the grants say now (as in ``apply``): a
        # client retrying after a lost answer must learn that its object was stored (409
        # replayed), not get a fresh refusal such as grant_missing.
        if obj.cid is not None and obj.seq <= state.heads[state.role_of(obj.sender)].seq:
            raise errors.Replayed(f"seq {obj.seq} is already in this connection's chain")
        try:
            # The decision apply admitted the object under: one decide per accepted send
            # (deciding here first and then in apply again was ~2% of a send's CPU).
            return apply_decided(state, obj, now)
        except errors.ProtocolError:
            # The delivery decision's refusal comes before apply's own errors (a broken
            # chain, a wrong cid), as when it was decided first.
            decision = decide(state, obj, now)
            if not isinstance(decision, Allowed):
                raise refusal_error(decision) from None
            raise
    except errors.ProtocolError as exc:
        raise to_problem(exc) from None


async def apply_object(
    ctx: UnitContext, subject: Subject, cid: str, obj: SignedObject, now: int
) -> Applied:
    """Apply ``obj`` (signed by ``subject``) to connection ``cid`` and record its effects."""
    session = ctx.session
    require_sender(subject, obj)
    row = await repo.get_for(session, subject.party_id, cid)
    if row is None:
        raise NotFound("no such connection")
    new_state, verdict = transition(state_of(row), obj, now)
    other = counterparty_of(row, subject.party_id)
    # The compare-and-swap is the first write: a unit that loses the race raises
    # StaleWrite before it wrote anything (so sends can run without a SAVEPOINT).
    await repo.save_state(session, row, new_state, now)
    seq = await repo.append(session, cid, obj, subject.party_id, now)
    event_id = await _effects(session, row, subject, other, obj, new_state, verdict, seq, now)
    return Applied(
        connection=row,
        state=new_state,
        log_seq=seq,
        held=verdict.held if verdict else False,
        release_time=verdict.release_time if verdict else None,
        event_id=event_id,
    )


async def _effects(
    session: AsyncSession,
    row: Connection,
    subject: Subject,
    other: str,
    obj: SignedObject,
    state: ConnectionState,
    verdict: Allowed | None,
    seq: int,
    now: int,
) -> int | None:
    """Side effects of an applied object beyond the log and the state snapshot."""
    kind = EVENT_KIND[obj.type]
    if obj.type is M.MESSAGE and verdict is not None and verdict.held:
        await repo.hold(session, other, row.cid, seq, verdict.release_time, now)
        return None
    if obj.type in (M.GRANT_ISSUE, M.GRANT_AMEND, M.GRANT_REVOKE):
        await repo.sync_grants(session, row, state)
    elif obj.type is M.MUTE:
        body = obj.body
        assert isinstance(body, MuteBody)
        # Messages already held for the muter follow the new end of the mute.
        await repo.retime_held(session, subject.party_id, row.cid, body.until)
    elif obj.type is M.UNMUTE:
        await repo.release_held(session, subject.party_id, now, cid=row.cid)
    elif obj.type is M.SEVER:
        await _sever_effects(session, row, subject, other, obj)
    return await repo.add_event(session, other, row.cid, kind, seq, now)


async def _sever_effects(
    session: AsyncSession, row: Connection, subject: Subject, other: str, obj: SignedObject
) -> None:
    body = obj.body
    assert isinstance(body, SeverBody)
    await session.execute(delete(ActiveGrant).where(ActiveGrant.cid == row.cid))
    await session.execute(delete(HeldMessage).where(HeldMessage.cid == row.cid))
    await session.execute(
        update(Connection).where(Connection.cid == row.cid).values(data_instruction=body.data)
    )
    row.data_instruction = body.data
    if body.data == "delete":
        # Erase content, keep the signed envelopes: the log still verifies (payloads are
        # detached and committed to by digest).
        await session.execute(update(LogEntry).where(LogEntry.cid == row.cid).values(payload=None))
        # The connection's messages in either inbox (ix_events_party_cid_kind_seq, once
        # for each side): a filter on events.cid alone was a scan of every party's
        # events, ~0.3 s a sever at 5 million (PROFILE.md, session 12). Their webhook
        # deliveries go first (ix_webhook_deliveries_event_id): a pending one would
        # carry the erased message out later, and any one held the event by its key.
        messages = (
            Event.party_id.in_((row.inviter_id, row.acceptor_id)),
            Event.cid == row.cid,
            Event.kind == "message",
        )
        no_sync = {"synchronize_session": False}  # no RETURNING of every id
        await session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.event_id.in_(select(Event.id).where(*messages))
            ),
            execution_options=no_sync,
        )
        await session.execute(delete(Event).where(*messages), execution_options=no_sync)
    if body.block_reinvite:
        await upsert_block(session, subject.party_id, other, obj.created_time)


async def upsert_block(session: AsyncSession, blocker: str, blocked: str, now: int) -> None:
    dialect = session.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert_fn(Block)
        .values(blocker_id=blocker, blocked_id=blocked, created_at=now)
        .on_conflict_do_nothing()
    )


async def get(session: AsyncSession, subject: Subject, cid: str) -> Connection | None:
    return await repo.get_for(session, subject.party_id, cid)
