"""Wake-up hints for event readers (SSE streams, delivery workers).

A hint only says "party P's stream may have grown": readers always catch up from the
``events`` table, so a lost hint costs latency, never data. Readers also re-read on a
timeout, which bounds that latency when a hint is lost (say, while the listener reconnects).

Two implementations sit behind :class:`Notifier`:

- :class:`LocalNotifier` wakes readers in this process only (SQLite: one instance).
- :class:`PostgresNotifier` also sends ``pg_notify`` *inside* the writing transaction —
  PostgreSQL delivers it on commit and drops it on rollback — and LISTENs on a dedicated
  connection, so a commit on instance A wakes readers on instance B.

Redis or NATS fit the same interface: publish after commit, wake local waiters on receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterator
from typing import Any

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from ..background import stop_task
from ..db import DRIVER_ERRORS, driver_error, transaction_driver

log = structlog.get_logger(__name__)

ANY = "*"
"""Subscription key woken by every publication (delivery workers use it)."""

CHANNEL = "rapport_events"
_MAX_PAYLOAD = 7000  # PostgreSQL's NOTIFY payload limit is 8000 bytes
_NOTIFY = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"


WIDE = 256
"""Past this many parties in one subscription's hints, they stand for "any party"."""


class Subscription:
    """A reader's wake-up flag, and the parties hinted since it last took them. Clear it
    (or take them) *before* reading the table, then wait."""

    def __init__(self) -> None:
        self._flag = asyncio.Event()
        self._parties: set[str] | None = None  # None: any party's stream may have grown

    def clear(self) -> None:
        self._flag.clear()

    def take(self) -> set[str] | None:
        """Clear the flag; the parties hinted since the last take, or ``None`` for any
        (the first take, a hint without parties, more than :data:`WIDE` of them)."""
        self._flag.clear()
        parties, self._parties = self._parties, set()
        return parties

    def wake(self, party_ids: Collection[str] | None = None) -> None:
        if party_ids is None:
            self._parties = None
        elif self._parties is not None:
            self._parties.update(party_ids)
            if len(self._parties) > WIDE:
                self._parties = None
        self._flag.set()

    async def wait(self, seconds: float) -> bool:
        """Wait for a hint; ``False`` on timeout (the caller re-reads anyway)."""
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
        # races with the flag being set, leaving a task that never stops.
        try:
            async with asyncio.timeout(seconds):
                await self._flag.wait()
        except TimeoutError:
            return False
        return True


class LocalNotifier:
    """In-process wake-ups. Base of the cross-instance notifiers."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self.published = 0
        self.stopping = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopping = True
        self.wake_all()

    async def publish_in_transaction(
        self, session: AsyncSession, party_ids: Collection[str]
    ) -> None:
        """Called by the writer just before it commits (cross-instance notifiers use it)."""
        return None

    async def publish_on_driver(
        self, driver: Any, postgres: bool, party_ids: Collection[str]
    ) -> None:
        """``publish_in_transaction`` for a transaction on a driver connection."""
        return None

    def statement_hints(self, party_ids: Collection[str]) -> tuple[str, list[str]] | None:
        """The channel and payloads to ``pg_notify`` for ``party_ids`` from a statement of
        the writing transaction (a writer that folds them into a statement it issues
        anyway saves ``publish_on_driver``'s round trip); ``None``: this notifier sends
        nothing through the database."""
        return None

    def committed(self, party_ids: Collection[str]) -> None:
        """Called by the writer after a commit that appended events for ``party_ids``."""
        if party_ids:
            self.published += 1
            self.wake(party_ids)

    def wake(self, party_ids: Collection[str]) -> None:
        for pid in party_ids:
            for sub in self._subs.get(pid, ()):
                sub.wake()
        for sub in self._subs.get(ANY, ()):
            sub.wake(party_ids)

    def wake_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.wake()

    @contextlib.contextmanager
    def subscribe(self, key: str) -> Iterator[Subscription]:
        """Subscribe to hints for party ``key`` (or :data:`ANY`) for the ``with`` block."""
        sub = Subscription()
        self._subs.setdefault(key, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[key]


class PostgresNotifier(LocalNotifier):
    """``pg_notify`` in the writing transaction + a LISTEN connection with reconnects."""

    def __init__(self, database_url: str, *, reconnect_delay: float = 1.0) -> None:
        super().__init__()
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="rapport-pg-listen")
        # Readers work without the listener (they poll); wait briefly so hints flow at once.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._connected.wait()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await super().stop()

    async def publish_in_transaction(
        self, session: AsyncSession, party_ids: Collection[str]
    ) -> None:
        # One statement for every chunk, on the transaction's own driver connection (the
        # writer's every batch pays this; through SQLAlchemy it cost ~0.3 ms more).
        if not party_ids:
            return
        driver, postgres = await transaction_driver(session)
        await self.publish_on_driver(driver, postgres, party_ids)

    async def publish_on_driver(
        self, driver: Any, postgres: bool, party_ids: Collection[str]
    ) -> None:
        if not party_ids:
            return
        try:
            await driver.fetch(_NOTIFY, CHANNEL, list(_chunks(sorted(party_ids))))
        except DRIVER_ERRORS as error:
            raise driver_error(_NOTIFY, error) from error

    def statement_hints(self, party_ids: Collection[str]) -> tuple[str, list[str]] | None:
        return CHANNEL, list(_chunks(sorted(party_ids)))

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._connected.set()
                # Anything committed while we were not listening: readers re-read now.
                self.wake_all()
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.execute("SELECT 1")  # detect a dead connection
            except asyncio.CancelledError:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
                raise
            except Exception as exc:
                log.warning("event_listener_lost", error=type(exc).__name__)
            finally:
                self._connected.clear()
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.terminate()
            await asyncio.sleep(self._reconnect_delay)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.wake([p for p in payload.split(",") if p])


def _chunks(party_ids: list[str]) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for pid in party_ids:
        if chunk and size + len(pid) + 1 > _MAX_PAYLOAD:
            yield ",".join(chunk)
            chunk, size = [], 0
        chunk.append(pid)
        size += len(pid) + 1
    if chunk:
        yield ",".join(chunk)


def notifier_for(database_url: str) -> LocalNotifier:
    """The notifier fitting the database: PostgreSQL gets LISTEN/NOTIFY."""
    if database_url.startswith("postgresql"):
        return PostgresNotifier(database_url)
    return LocalNotifier()
