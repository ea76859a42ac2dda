"""Expiry of the two tables that only ever grow by use: idempotency records and used
assertion ids.

``Idempotency-Key`` responses are kept ``RAPPORT_IDEMPOTENCY_TTL`` seconds (24 h by
default, Stripe's window; spec/rest-binding.md); an assertion id is needed only while the
assertion could still be accepted (its ``exp`` plus the allowed clock skew), after which
the expiry check refuses it anyway. Without this the two tables grew with every keyed
request and every token exchange for ever.

Deletes run as ordinary write units through the write batcher — on SQLite the one writer,
so they queue between send batches instead of contending for the lock — in units of at
most ``batch`` rows (oldest first, by the tables' time indexes), so no unit holds a batch
up for long. Several instances may sweep at once: a row deleted twice is deleted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import Delete, delete, select, tuple_

from .background import stop_task
from .domain import Clock
from .tables import IdempotencyRecord, UsedAssertion
from .writes import UnitContext, WriteBatcher

log = structlog.get_logger(__name__)

SWEEP_SECONDS = 60.0
SWEEP_BATCH = 1000

_Unit = Callable[[UnitContext], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Swept:
    idempotency_records: int
    used_assertions: int


class Sweeper:
    """Deletes expired idempotency records and used assertion ids every ``interval`` s."""

    def __init__(
        self,
        batcher: WriteBatcher,
        clock: Clock,
        *,
        idempotency_ttl: int,
        assertion_grace: int,
        interval: float = SWEEP_SECONDS,
        batch: int = SWEEP_BATCH,
    ) -> None:
        self._batcher = batcher
        self._clock = clock
        self._ttl = idempotency_ttl
        self._grace = assertion_grace
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rapport-sweeper")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                swept = await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the next round retries
                log.warning("sweep_failed", error=type(exc).__name__)
                continue
            if swept.idempotency_records or swept.used_assertions:
                log.info(
                    "swept",
                    idempotency_records=swept.idempotency_records,
                    used_assertions=swept.used_assertions,
                )

    async def sweep(self) -> Swept:
        """One round: delete everything expired now, ``batch`` rows per write unit."""
        now = int(self._clock())
        records = await self._drain(self._records_unit(now - self._ttl))
        assertions = await self._drain(self._assertions_unit(now - self._grace))
        return Swept(records, assertions)

    async def _drain(self, unit: _Unit) -> int:
        total = 0
        while True:
            n = await self._batcher.submit(unit)
            total += n
            if n < self._batch:
                return total

    def _records_unit(self, before: int) -> _Unit:
        table = IdempotencyRecord
        oldest = (
            select(table.party_id, table.key)
            .where(table.created_at < before)
            .order_by(table.created_at)
            .limit(self._batch)
            .with_for_update(skip_locked=True)  # PostgreSQL: another instance's are skipped
        )
        return _deleting(delete(table).where(tuple_(table.party_id, table.key).in_(oldest)))

    def _assertions_unit(self, before: int) -> _Unit:
        oldest = (
            select(UsedAssertion.jti)
            .where(UsedAssertion.expires_at < before)
            .order_by(UsedAssertion.expires_at)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
        )
        return _deleting(delete(UsedAssertion).where(UsedAssertion.jti.in_(oldest)))


# No ORM objects of these tables are loaded in a unit's session, so the deletes need not
# find theirs (``synchronize_session`` would fetch every deleted key with RETURNING).
_NO_SYNC = {"synchronize_session": False}


def _deleting(statement: Delete) -> _Unit:
    """A write unit running ``statement``; returns the rows it deleted."""

    async def unit(ctx: UnitContext) -> int:
        result = await ctx.session.execute(statement, execution_options=_NO_SYNC)
        return int(result.rowcount)  # type: ignore[attr-defined]

    return unit
