"""Inbox reads and the set-based broadcast."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rapport_protocol import ConnectionState, MessageType, apply, decide
from rapport_protocol.decision import Allowed
from rapport_protocol.envelope import SignedObject
from rapport_protocol.types import MessageBody
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..connections.codec import object_json
from ..connections.service import require_sender, require_type
from ..domain import DomainError, Subject
from ..events import store as event_store
from ..events.store import NewEvent
from ..tables import ActiveGrant, Connection, Event, HeldMessage, LogEntry
from ..writes import UnitContext


async def inbox(
    session: AsyncSession,
    subject: Subject,
    *,
    after: int,
    limit: int,
    cid: str | None,
    unacked: bool,
) -> Sequence[tuple[Event, LogEntry]]:
    query = (
        select(Event, LogEntry)
        .join(LogEntry, LogEntry.seq == Event.log_seq)
        .where(Event.party_id == subject.party_id, Event.kind == "message", Event.seq > after)
    )
    if cid is not None:
        query = query.where(Event.cid == cid)
    if unacked:
        query = query.where(Event.acked_at.is_(None))
    rows = await session.execute(query.order_by(Event.seq).limit(limit))
    return [(e, log) for e, log in rows.all()]


async def has_due_held(session: AsyncSession, party_id: str, now: int) -> bool:
    result = await session.execute(
        select(func.count())
        .select_from(HeldMessage)
        .where(
            HeldMessage.party_id == party_id,
            HeldMessage.release_at.is_not(None),
            HeldMessage.release_at <= now,
        )
    )
    return bool(result.scalar_one())


async def ack(ctx: UnitContext, subject: Subject, seq: int, now: int) -> Event | None:
    """Acknowledge the party's own inbox item number ``seq``."""
    session = ctx.session
    found = await session.execute(
        select(Event).where(
            Event.party_id == subject.party_id, Event.seq == seq, Event.kind == "message"
        )
    )
    event = found.scalar_one_or_none()
    if event is None:
        return None
    if event.acked_at is None:
        event.acked_at = now
        await session.execute(update(Event).where(Event.id == event.id).values(acked_at=now))
    return event


@dataclass(frozen=True, slots=True)
class BroadcastOutcome:
    candidates: int
    delivered: int
    held: int
    refused: dict[str, int]
    already: int = 0
    """Permitting connections that already hold the object (an earlier, interrupted try)."""
    last: str | None = None
    """The last cid this chunk looked at, when more may follow."""


def check_broadcast(subject: Subject, obj: SignedObject) -> MessageBody:
    """The request-level checks of a broadcast (before any chunk runs)."""
    require_type(obj, {MessageType.MESSAGE})
    require_sender(subject, obj)
    if not obj.broadcast:
        raise DomainError("a broadcast message has no cid", status=422, code="invalid_object")
    body = obj.body
    assert isinstance(body, MessageBody)
    return body


async def broadcast_chunk(
    ctx: UnitContext, subject: Subject, obj: SignedObject, now: int, *, after: str, limit: int
) -> BroadcastOutcome:
    """Deliver one signed message to the next ``limit`` connections (by cid, above
    ``after``) whose grants permit it now and that do not have it yet.

    A broadcast runs as a sequence of these units, each its own transaction, so other
    writes interleave with a large fan-out and no statement grows with the audience.
    Connections that already hold the object are skipped, so a broadcast interrupted by a
    crash resumes when the client retries it. Selection is one indexed query (grants in
    force naming this sender and topic); each candidate's decision (mutes, quiet hours,
    caps) is the protocol's ``decide``; all writes are multi-row statements.
    """
    body = check_broadcast(subject, obj)
    session = ctx.session
    has_it = (
        select(LogEntry.seq)
        .where(LogEntry.object_id == obj.id, LogEntry.cid == Connection.cid)
        .exists()
    )
    permitted = Connection.cid.in_(
        select(ActiveGrant.cid).where(
            ActiveGrant.grantee_id == subject.party_id,
            ActiveGrant.scope == "message",
            ActiveGrant.topic.in_((body.topic, "*")),
        )
    )
    query = (
        select(Connection, has_it)
        .where(permitted, Connection.status == "active", Connection.cid > after)
        .order_by(Connection.cid)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Connection)
    found = (await session.execute(query)).all()
    last = found[-1][0].cid if len(found) == limit else None
    rows = [row for row, already in found if not already]
    refused: Counter[str] = Counter()
    accepted: list[tuple[Connection, ConnectionState, Allowed]] = []
    for row in rows:
        state = ConnectionState.model_validate_json(row.state)
        verdict = decide(state, obj, now)
        if isinstance(verdict, Allowed):
            accepted.append((row, apply(state, obj, now), verdict))
        else:
            refused[verdict.code] += 1
    if not accepted:
        return BroadcastOutcome(len(rows), 0, 0, dict(refused), len(found) - len(rows), last)
    stored = object_json(obj)
    seqs = (
        (
            await session.execute(
                insert(LogEntry).returning(LogEntry.seq, sort_by_parameter_order=True),
                [
                    {
                        "cid": row.cid,
                        "object_id": obj.id,
                        "type": obj.type.value,
                        "sender_id": subject.party_id,
                        "object": stored,
                        "payload": obj.payload,
                        "received_at": now,
                    }
                    for row, _, _ in accepted
                ],
            )
        )
        .scalars()
        .all()
    )
    events: list[NewEvent] = []
    held: list[dict[str, object]] = []
    for (row, _, verdict), seq in zip(accepted, seqs, strict=True):
        other = row.acceptor_id if row.inviter_id == subject.party_id else row.inviter_id
        if verdict.held:
            held.append(
                {
                    "party_id": other,
                    "cid": row.cid,
                    "log_seq": seq,
                    "release_at": verdict.release_time,
                    "created_at": now,
                }
            )
        else:
            events.append(NewEvent(other, row.cid, "message", seq))
    await event_store.append(session, events, now)
    if held:
        await session.execute(insert(HeldMessage), held)
    await session.execute(
        update(Connection),
        [
            {
                "cid": row.cid,
                "state": state.model_dump_json(),
                "version": row.version + 1,
                "updated_at": now,
            }
            for row, state, _ in accepted
        ],
    )
    return BroadcastOutcome(
        len(rows), len(events), len(held), dict(refused), len(found) - len(rows), last
    )
