"""Queries of the connections domain. Every read is scoped by the party asking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from rapport_protocol import ConnectionState
from rapport_protocol.envelope import SignedObject
from sqlalchemy import Table, bindparam, delete, insert, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..events import store as event_store
from ..events.store import NewEvent
from ..tables import ActiveGrant, Connection, HeldMessage, LogEntry
from ..writes import StaleWrite
from .codec import object_json


def mine(party_id: str):  # type: ignore[no-untyped-def]
    """The condition 'this connection has ``party_id`` as a party'."""
    return or_(Connection.inviter_id == party_id, Connection.acceptor_id == party_id)


# Built once: constructing this select per call (with its ``or_``) was a measured ~9% of a
# send's server CPU (bench/PROFILE.md).
_GET_FOR = select(Connection).where(
    Connection.cid == bindparam("cid"),
    or_(Connection.inviter_id == bindparam("party"), Connection.acceptor_id == bindparam("party")),
)


async def get_for(session: AsyncSession, party_id: str, cid: str) -> Connection | None:
    """The connection ``cid`` if ``party_id`` is a party to it, else ``None``."""
    result = await session.execute(_GET_FOR, {"cid": cid, "party": party_id})
    return result.scalar_one_or_none()


async def list_for(
    session: AsyncSession,
    party_id: str,
    *,
    status: str | None,
    counterparty: str | None,
    after: str | None,
    limit: int,
) -> Sequence[Connection]:
    """A page of ``party_id``'s connections in cid order, after ``after``.

    One ordered, limited branch per side the party can be on, each read from its own index
    ((inviter_id, cid) or (inviter_id, status, cid), and the acceptor's), then the first
    ``limit`` of the two: a page costs the same at any depth. As one ``OR`` the party's
    every connection was read and sorted for each page (~7 ms a page at 60k connections,
    quadratic over a full listing)."""
    branches = []
    for side, other in (
        (Connection.inviter_id, Connection.acceptor_id),
        (Connection.acceptor_id, Connection.inviter_id),
    ):
        branch = select(Connection.cid).where(side == party_id)
        if status is not None:
            branch = branch.where(Connection.status == status)
        if counterparty is not None:
            branch = branch.where(other == counterparty)
        if after is not None:
            branch = branch.where(Connection.cid > after)
        branches.append(select(branch.order_by(Connection.cid).limit(limit).subquery().c.cid))
    page = select(union_all(*branches).subquery().c.cid)
    query = select(Connection).where(Connection.cid.in_(page))
    result = await session.execute(query.order_by(Connection.cid).limit(limit))
    return result.scalars().all()


# The two writes of every accepted object, built once. They are Core statements on the
# tables (not ORM-enabled ones): a send then skips building the statement and its cache key
# and the ORM's bulk-persistence layer (with web.services made async: -13% server CPU per
# send, bench/PROFILE.md).
_LOG = cast(Table, LogEntry.__table__)
_CONNECTIONS = cast(Table, Connection.__table__)
# RETURNING in parameter order, so an executemany (a batch of sends, a broadcast chunk)
# gets each row's number back in the order it passed them.
APPEND_LOG = insert(_LOG).returning(_LOG.c.seq, sort_by_parameter_order=True)
SAVE_STATE = (
    update(_CONNECTIONS)
    .where(
        _CONNECTIONS.c.cid == bindparam("b_cid"),
        _CONNECTIONS.c.version == bindparam("b_version"),
    )
    .values(
        state=bindparam("b_state"),
        status=bindparam("b_status"),
        version=bindparam("b_new_version"),
        updated_at=bindparam("b_now"),
    )
)


async def append(
    session: AsyncSession, cid: str, obj: SignedObject, sender_id: str, now: int
) -> int:
    """Append ``obj`` to the log of ``cid``; returns its server sequence number."""
    result = await session.execute(
        APPEND_LOG,
        {
            "cid": cid,
            "object_id": obj.id,
            "type": obj.type.value,
            "sender_id": sender_id,
            "object": object_json(obj),
            "payload": obj.payload,
            "received_at": now,
        },
    )
    return int(result.scalar_one())


async def save_state(
    session: AsyncSession, row: Connection, state: ConnectionState, now: int
) -> None:
    """Compare-and-swap the state snapshot on ``row.version``."""
    result = await session.execute(
        SAVE_STATE,
        {
            "b_cid": row.cid,
            "b_version": row.version,
            "b_state": state.model_dump_json(),
            "b_status": state.status,
            "b_new_version": row.version + 1,
            "b_now": now,
        },
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleWrite(row.cid)
    row.version += 1
    row.status = state.status


async def add_event(
    session: AsyncSession, party_id: str, cid: str, kind: str, log_seq: int | None, now: int
) -> int:
    """Append one event to ``party_id``'s stream; returns its sequence number."""
    (seq,) = await event_store.append(session, [NewEvent(party_id, cid, kind, log_seq)], now)
    return seq


async def hold(
    session: AsyncSession, party_id: str, cid: str, log_seq: int, release_at: int | None, now: int
) -> None:
    await session.execute(
        insert(HeldMessage).values(
            party_id=party_id, cid=cid, log_seq=log_seq, release_at=release_at, created_at=now
        )
    )


async def retime_held(
    session: AsyncSession, party_id: str, cid: str, release_at: int | None
) -> None:
    await session.execute(
        update(HeldMessage)
        .where(HeldMessage.party_id == party_id, HeldMessage.cid == cid)
        .values(release_at=release_at)
    )


async def release_held(
    session: AsyncSession, party_id: str, now: int, *, cid: str | None = None
) -> int:
    """Move held messages that are due (or all of ``cid``'s) into the party's inbox, in
    their original order. Returns how many were released."""
    query = select(HeldMessage).where(HeldMessage.party_id == party_id)
    if cid is not None:
        query = query.where(HeldMessage.cid == cid)
    else:
        query = query.where(HeldMessage.release_at.is_not(None), HeldMessage.release_at <= now)
    held = (await session.execute(query.order_by(HeldMessage.id))).scalars().all()
    if not held:
        return 0
    await event_store.append(
        session, [NewEvent(party_id, h.cid, "message", h.log_seq) for h in held], now
    )
    await session.execute(delete(HeldMessage).where(HeldMessage.id.in_([h.id for h in held])))
    return len(held)


async def sync_grants(session: AsyncSession, row: Connection, state: ConnectionState) -> None:
    """Rewrite the active-grant index of one connection from its state."""
    await session.execute(delete(ActiveGrant).where(ActiveGrant.cid == row.cid))
    party = (row.inviter_id, row.acceptor_id)
    values = []
    for gid in state.active_grants.values():
        grant = state.grants[gid]
        values.append(
            {
                "cid": row.cid,
                "grantor_id": party[grant.grantor],
                "grantee_id": party[1 - grant.grantor],
                "scope": grant.spec.scope,
                "topic": grant.spec.topic,
                "grant_id": grant.id,
            }
        )
    if values:
        await session.execute(insert(ActiveGrant), values)


async def log_page(
    session: AsyncSession, cid: str, *, after: int, limit: int
) -> Sequence[LogEntry]:
    result = await session.execute(
        select(LogEntry)
        .where(LogEntry.cid == cid, LogEntry.seq > after)
        .order_by(LogEntry.seq)
        .limit(limit)
    )
    return result.scalars().all()
