"""Appending to parties' event streams (the outbox), in the writer's transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..tables import Event, Party

TOUCHED = "rapport_touched_parties"


@dataclass(frozen=True, slots=True)
class NewEvent:
    party_id: str
    cid: str
    kind: str
    log_seq: int | None


def touched(session: AsyncSession) -> set[str]:
    """Parties whose streams this transaction extended (woken up after commit)."""
    found: set[str] = session.info.setdefault(TOUCHED, set())
    return found


_PARTIES = cast(Table, Party.__table__)
_BUMP_ONE = (
    update(_PARTIES)
    .where(_PARTIES.c.id == bindparam("b_party"))
    .values(event_seq=_PARTIES.c.event_seq + 1)
    .returning(_PARTIES.c.event_seq)
)
_INSERT_EVENT = insert(cast(Table, Event.__table__))


async def append(session: AsyncSession, events: Sequence[NewEvent], now: int) -> list[int]:
    """Append ``events``; returns their per-party sequence numbers, in order.

    Each party's counter is bumped with an UPDATE in this transaction: concurrent writers
    for the same party serialise on that row, so numbers become visible in order.
    """
    if not events:
        return []
    if len(events) == 1:  # every send: two prebuilt statements
        e = events[0]
        seq = int((await session.execute(_BUMP_ONE, {"b_party": e.party_id})).scalar_one())
        await session.execute(
            _INSERT_EVENT,
            {
                "party_id": e.party_id,
                "seq": seq,
                "cid": e.cid,
                "kind": e.kind,
                "log_seq": e.log_seq,
                "created_at": now,
            },
        )
        touched(session).add(e.party_id)
        return [seq]
    counts = Counter(e.party_id for e in events)
    tops: dict[str, int] = {}
    ones = [p for p, n in counts.items() if n == 1]
    if ones:
        rows = await session.execute(
            update(Party)
            .where(Party.id.in_(ones))
            .values(event_seq=Party.event_seq + 1)
            .returning(Party.id, Party.event_seq)
            .execution_options(synchronize_session=False)
        )
        tops.update({pid: int(seq) for pid, seq in rows.all()})
    for pid, n in counts.items():
        if n > 1:
            result = await session.execute(
                update(Party)
                .where(Party.id == pid)
                .values(event_seq=Party.event_seq + n)
                .returning(Party.event_seq)
                .execution_options(synchronize_session=False)
            )
            tops[pid] = int(result.scalar_one())
    next_seq = {pid: tops[pid] - counts[pid] + 1 for pid in counts}
    seqs: list[int] = []
    rows_to_insert = []
    for e in events:
        seq = next_seq[e.party_id]
        next_seq[e.party_id] = seq + 1
        seqs.append(seq)
        rows_to_insert.append(
            {
                "party_id": e.party_id,
                "seq": seq,
                "cid": e.cid,
                "kind": e.kind,
                "log_seq": e.log_seq,
                "created_at": now,
            }
        )
    await session.execute(insert(Event), rows_to_insert)
    touched(session).update(counts)
    return seqs


async def after(session: AsyncSession, party_id: str, seq: int, limit: int) -> Sequence[Event]:
    """A party's events after ``seq``, in order."""
    result = await session.execute(
        select(Event)
        .where(Event.party_id == party_id, Event.seq > seq)
        .order_by(Event.seq)
        .limit(limit)
    )
    return result.scalars().all()
