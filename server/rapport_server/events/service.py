"""Reading a party's event stream (shared by SSE, JSON pages and webhook deliveries)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..connections.codec import wire_object
from ..tables import Event, LogEntry


async def after(
    session: AsyncSession, party_id: str, seq: int, limit: int
) -> Sequence[tuple[Event, LogEntry | None]]:
    """``party_id``'s events numbered above ``seq``, oldest first, with their log entries."""
    rows = await session.execute(
        select(Event, LogEntry)
        .outerjoin(LogEntry, LogEntry.seq == Event.log_seq)
        .where(Event.party_id == party_id, Event.seq > seq)
        .order_by(Event.seq)
        .limit(limit)
    )
    return [(e, entry) for e, entry in rows.all()]


def to_wire(event: Event, entry: LogEntry | None) -> dict[str, Any]:
    """The JSON form of an event (the ``StreamEvent`` schema)."""
    return {
        "id": event.seq,
        "type": event.kind,
        "cid": event.cid,
        "created_time": event.created_at,
        "server_seq": event.log_seq,
        "object": wire_object(entry.object, entry.payload) if entry is not None else None,
    }
