"""Webhook endpoints of a party: register, rotate, disable, replay. Scoped by subject."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import uuid_utils
from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Update,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import Conflict, NotFound, Subject
from ..tables import Event, Party, WebhookDelivery, WebhookEndpoint
from ..writes import UnitContext
from . import signing

MAX_ENDPOINTS = 16
ROTATION_OVERLAP = 86400  # the previous secret keeps signing for a day after a rotation


async def create(
    ctx: UnitContext,
    subject: Subject,
    *,
    url: str,
    types: list[str] | None,
    description: str | None,
    now: int,
) -> WebhookEndpoint:
    session = ctx.session
    count = (
        await session.execute(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.party_id == subject.party_id)
        )
    ).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise Conflict(f"at most {MAX_ENDPOINTS} endpoints per party", code="too_many_endpoints")
    start = (
        await session.execute(select(Party.event_seq).where(Party.id == subject.party_id))
    ).scalar_one()
    row = WebhookEndpoint(
        id=str(uuid_utils.uuid7()),
        party_id=subject.party_id,
        url=url,
        secret=signing.new_secret(),
        status="enabled",
        disabled_reason=None,
        cursor=start,  # events from now on; use replay for older ones
        created_at=now,
        types=",".join(sorted(set(types))) if types else None,
        description=description,
    )
    session.add(row)
    await session.flush()
    return row


def insert_pending(
    endpoint_id: str, events: Sequence[ColumnElement[bool]], now: float, *, at: float | None = None
) -> Insert:
    """``INSERT … SELECT``: a pending delivery to ``endpoint_id`` for each event matching
    ``events``, due at ``at`` (default: now)."""
    matching = select(
        literal(endpoint_id),
        Event.id,
        literal("pending"),
        literal(0),
        literal(float(now if at is None else at)),
        literal(int(now)),
    ).where(*events)
    return insert(WebhookDelivery).from_select(
        ["endpoint_id", "event_id", "status", "attempts", "next_attempt_at", "created_at"],
        matching,
    )


# The attempt time of a pending delivery whose endpoint is disabled: beyond any clock, so
# the worker's "due" range (status, next_attempt_at <= now) never reaches it. Left at their
# backed-off times, a disabled endpoint's backlog was walked by every worker pass (each
# commit, at most every 25 ms) before an enabled endpoint's row: ~5 ms a pass at 30,000.
# Enabling the endpoint makes them due now.
PARKED = 1e18


def park(endpoints: str | Select[Any]) -> Update:
    """Park the pending deliveries of a disabled endpoint (or of those selected)."""
    of = (
        WebhookDelivery.endpoint_id == endpoints
        if isinstance(endpoints, str)
        else WebhookDelivery.endpoint_id.in_(endpoints)
    )
    return (
        update(WebhookDelivery)
        .where(of, WebhookDelivery.status == "pending")
        .values(next_attempt_at=PARKED)
        .execution_options(synchronize_session=False)  # no RETURNING of every id
    )


async def get(
    session: AsyncSession, subject: Subject, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint:
    """The subject's endpoint. ``lock``: ``SELECT … FOR UPDATE`` (PostgreSQL), taken by every
    write that moves the endpoint's pending deliveries, so that those writes (and the
    worker's record of an attempt, which locks its endpoints first too) see each other's
    status and lock the endpoint before its deliveries, always in that order."""
    row = await session.get(WebhookEndpoint, endpoint_id, with_for_update=lock or None)
    if row is None or row.party_id != subject.party_id:
        raise NotFound("no such webhook endpoint")
    return row


async def listing(session: AsyncSession, subject: Subject) -> Sequence[WebhookEndpoint]:
    rows = await session.execute(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.party_id == subject.party_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return rows.scalars().all()


async def rotate_secret(
    ctx: UnitContext, subject: Subject, endpoint_id: str, now: int
) -> WebhookEndpoint:
    row = await get(ctx.session, subject, endpoint_id)
    row.previous_secret = row.secret
    row.previous_until = now + ROTATION_OVERLAP
    row.secret = signing.new_secret()
    await ctx.session.flush()
    return row


async def set_enabled(
    ctx: UnitContext, subject: Subject, endpoint_id: str, enabled: bool, now: float
) -> WebhookEndpoint:
    row = await get(ctx.session, subject, endpoint_id, lock=True)
    row.status = "enabled" if enabled else "disabled"
    row.disabled_reason = None if enabled else "disabled by its owner"
    if enabled:  # pending deliveries go out now rather than at their backed-off time
        await ctx.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == row.id, WebhookDelivery.status == "pending")
            .values(next_attempt_at=now)
        )
    else:
        await ctx.session.execute(park(row.id))
    await ctx.session.flush()
    return row


async def remove(ctx: UnitContext, subject: Subject, endpoint_id: str) -> None:
    row = await get(ctx.session, subject, endpoint_id, lock=True)
    await ctx.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
    await ctx.session.delete(row)
    await ctx.session.flush()


async def deliveries(
    session: AsyncSession,
    subject: Subject,
    endpoint_id: str,
    *,
    status: str | None,
    after: int,
    limit: int,
) -> Sequence[tuple[WebhookDelivery, int]]:
    row = await get(session, subject, endpoint_id)
    query = (
        select(WebhookDelivery, Event.seq)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == row.id, WebhookDelivery.id > after)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    result = await session.execute(query.order_by(WebhookDelivery.id).limit(limit))
    return [(d, int(seq)) for d, seq in result.all()]


async def replay(
    ctx: UnitContext, subject: Subject, endpoint_id: str, after: int | None, now: float
) -> int:
    """Schedule redelivery: of every event above ``after``, or of the dead deliveries."""
    session = ctx.session
    row = await get(session, subject, endpoint_id, lock=True)  # its status holds until commit
    at = now if row.status == "enabled" else PARKED  # a disabled endpoint's wait for it
    fresh = {"status": "pending", "attempts": 0, "next_attempt_at": at, "locked_until": None}
    if after is None:
        result = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == row.id, WebhookDelivery.status == "dead")
            .values(**fresh)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    in_range = and_(Event.party_id == subject.party_id, Event.seq > after, Event.seq <= row.cursor)
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == row.id,
            WebhookDelivery.event_id.in_(select(Event.id).where(in_range)),
        )
        .values(**fresh)
        .execution_options(synchronize_session=False)
    )
    existing = int(result.rowcount)  # type: ignore[attr-defined]
    # Events above ``after`` that never had a delivery (older than the endpoint, filtered).
    never_sent = ~(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.endpoint_id == row.id, WebhookDelivery.event_id == Event.id)
        .exists()
    )
    inserted = await session.execute(insert_pending(row.id, [in_range, never_sent], now, at=at))
    return existing + int(inserted.rowcount)  # type: ignore[attr-defined]
