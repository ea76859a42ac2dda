"""Engine, sessions and the declarative base."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from .background import stop_task

if TYPE_CHECKING:
    from .writes import WriteBatcher

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = structlog.get_logger(__name__)

DB_TIMEOUT_SECONDS = 10
ALIVE_BYPASS_SECONDS = 0.5
"""A pooled PostgreSQL connection used this recently is handed out without a ping."""


DRIVER_ERRORS = (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What the drivers raise when a statement is issued on them directly (not through
SQLAlchemy): the hot writes do that (messages/send_sql.py, events/notify.py)."""


def driver_error(sql: str, error: Exception) -> exc.DBAPIError:
    """The driver's error as SQLAlchemy would have raised it, so the write batcher's rules
    (rerun on a database error, refuse one unit on an integrity error) hold unchanged."""
    if isinstance(error, sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return exc.IntegrityError(sql, None, error)
    if isinstance(error, sqlite3.OperationalError | asyncpg.InterfaceError):
        return exc.OperationalError(sql, None, error)
    return exc.DBAPIError(sql, None, error)


async def transaction_driver(session: AsyncSession) -> tuple[Any, bool]:
    """The driver connection (aiosqlite or asyncpg) of ``session``'s transaction, begun if
    need be, and whether it is PostgreSQL's: for statements issued on the driver directly,
    inside the transaction (never in autocommit)."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    if conn.dialect.name == "postgresql":
        assert isinstance(driver, asyncpg.Connection)
        if not driver.is_in_transaction():
            # SQLAlchemy's asyncpg adapter issues BEGIN with the first statement it runs.
            await conn.exec_driver_sql("SELECT 1")
        assert driver.is_in_transaction()
        return driver, True
    assert driver is not None
    assert driver.in_transaction
    return driver, False


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine with the settings this server relies on for each backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"isolation_level": None, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    # Bounded waits: a partitioned or stalled database must fail a request (503, retry)
    # rather than hold it and its pooled connection for ever (tests/reliability/test_faults).
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=DB_TIMEOUT_SECONDS,
        connect_args={"timeout": DB_TIMEOUT_SECONDS, "command_timeout": DB_TIMEOUT_SECONDS},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, except for connections opened or checked in less
    than ``ALIVE_BYPASS_SECONDS`` ago that the driver has not seen closed (HikariCP's
    "alive bypass window"). The asyncpg dialect's
    ping is BEGIN, an empty query and ROLLBACK: three round trips before every write batch
    and every read, on connections that had just been used. A connection that died within
    the window fails its first statement instead: the request gets a 503 and the
    connection is replaced, as when the database goes away between a ping and a query."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    @event.listens_for(pool, "checkin")
    def _known_alive(_dbapi_connection: Any, record: Any) -> None:
        record.info["alive_at"] = time.monotonic()  # cleared when the record reconnects

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        at = record.info.get("alive_at")
        if (
            at is not None
            and time.monotonic() - at < ALIVE_BYPASS_SECONDS
            and not dbapi_connection.driver_connection.is_closed()
        ):
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # As pool_pre_ping does: the database went away, so every pooled connection
            # is suspect; the pool reconnects this one (and the others when next used).
            raise exc.InvalidatePoolError("the pooled connection did not answer") from error


BUSY_TIMEOUT_MS = 30000


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer. synchronous=FULL fsyncs the WAL on
        # every commit: an acknowledged write survives power loss, not just a crash. Group
        # commit (rapport_server.writes) is what keeps that affordable.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # No checkpoint inside a commit: the commit that crossed the WAL threshold used to
        # copy the WAL into the database and fsync it before answering, a 50-300 ms stall
        # of every send in that batch (the p99 of bench/ latency). WalCheckpointer does it
        # beside the writer instead.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    # pysqlite's own transaction handling does not emit BEGIN for SAVEPOINT use; take it
    # over (SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional DDL").
    # Readers begin deferred (a WAL snapshot, no lock); the one writer (the write batcher,
    # see ``writer_engine``) takes the write lock up front so it never has to upgrade.
    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITER_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITER_OPTION = "rapport_writer"
CHECKPOINT_SECONDS = 0.25
"""A PASSIVE copy this often: a quarter of what one a second copied and synced at once,
each interfering less with the commits beside it (PROFILE.md, session 14)."""
WAL_RESTART_FRAMES = 131072
"""A WAL this long (~512 MiB of 4 KiB pages) is caught up between two batches, so that it
is rewound (see below). Only sustained writes reach it (a quieter WAL is rewound as soon
as a PASSIVE checkpoint catches up): ~10 s of sends at half of peak here, so the batches
wait for a catch-up that often rather than every ~2.5 s at 32,768 frames."""
CATCH_UP_FRAMES = 256
CATCH_UP_TRIES = 4
"""Before the catch-up under the writer's lock, up to this many more PASSIVE copies run
beside the writer, until one finds at most ``CATCH_UP_FRAMES`` new frames."""
CHECKPOINT_NICENESS = 10
"""How much lower than the server's the CPU priority of the checkpoint's copying thread is."""


def _database_path(engine: AsyncEngine) -> str | None:
    """The SQLite database file of ``engine``; None for PostgreSQL or an in-memory one."""
    url = engine.url
    database = url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or url.query.get("uri"):
        return None  # a URI filename: leave it to SQLite
    return database


_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _background_thread() -> int:
    """Lower the calling thread's CPU priority by ``CHECKPOINT_NICENESS`` (Linux: the nice
    value is per thread); returns its thread id, or 0 where that is not possible."""
    tid = threading.get_native_id()
    try:
        os.setpriority(
            os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + CHECKPOINT_NICENESS
        )
    except (AttributeError, OSError):
        return 0
    return tid


async def _approach(copier: Any, frames: int) -> None:
    """More PASSIVE copies on ``copier`` (each of the frames committed during the one
    before, ``frames`` the WAL's length at the last) until one finds few new frames, so
    that the catch-up under the writer's lock has little left to copy."""
    for _ in range(CATCH_UP_TRIES):
        (row,) = await copier.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        new, frames = row[1] - frames, row[1]
        if new <= CATCH_UP_FRAMES:
            return


class WalCheckpointer:
    """Checkpoints SQLite's WAL from its own connection, off the commit path.

    A PASSIVE checkpoint copies committed WAL frames into the database file without
    taking the write lock, so the write batcher keeps committing meanwhile; the WAL is
    reused from its start once a checkpoint has caught up. Runs every ``interval``
    seconds; on PostgreSQL it does nothing.

    Under sustained writes a PASSIVE checkpoint never catches up at the moment the next
    write transaction begins (frames committed during the checkpoint are left for the
    next one), so the WAL is never rewound and grows without bound: ~66,000 frames
    (~270 MB) after a 10 s peak and a 10 s latency run of bench/ (PROFILE.md, session
    10). So once the WAL holds ``restart_frames`` frames, further PASSIVE copies run
    beside the writer (``_approach``), each of what was committed during the one before,
    until little is left; then a last one runs between two of the writer's batches
    (``writer``: the write batcher, whose next batch waits for it). After it the WAL is
    wholly in the database file, and SQLite's next write transaction starts the WAL from
    its beginning again (the file keeps its size: bounded, not shrunk) — unless a reader
    still reads an older snapshot from the WAL, in which case a later round rewinds it.
    That last copy has a few hundred frames left but held the writer 20-47 ms here,
    nearly all of it one fdatasync of the database file: SQLite syncs that file only when
    a checkpoint has copied the whole WAL, so this one flushed the ~10 s of copies before
    it (PROFILE.md, session 19). So the checkpointer flushes the database file itself,
    beside the writer, just before (``_flush``): the writer's wait fell to 6-14 ms
    (PROFILE.md, session 20). (A RESTART checkpoint in its place, which also waits for
    readers, held the next batch 15-45 ms after every PASSIVE of 25 ms: PROFILE.md,
    session 14.)

    The copy (~15,000 frames a second at half load: 20-25 ms of CPU) runs on a
    connection of its own whose thread has a lower CPU priority (``CHECKPOINT_NICENESS``),
    so that it uses the time the event loop leaves idle instead of taking its core from
    it in one piece (a spike in the send latency every second, PROFILE.md, session 14).
    That connection never goes back to the pool. The catch-up under the lock runs at the
    server's own priority on a pooled connection, as it makes the writer wait.

    The flush opens the database file once and keeps it open until ``release``, which the
    owner calls after the engine is disposed: closing any descriptor of a file drops the
    POSIX locks the process holds on it, SQLite's included.
    """

    writer: WriteBatcher | None = None

    def __init__(
        self,
        engine: AsyncEngine,
        interval: float = CHECKPOINT_SECONDS,
        restart_frames: int = WAL_RESTART_FRAMES,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._restart_frames = restart_frames
        self._task: asyncio.Task[None] | None = None
        self._copier: tuple[AsyncConnection, Any] | None = None
        self._path = _database_path(engine)
        self._fd: int | None = None
        self.checkpoints = 0
        self.restarts = 0
        self.background_thread = 0
        """The thread id of the copying connection (0: none yet, or not lowered)."""

    async def start(self) -> None:
        if self._engine.dialect.name == "sqlite" and self._task is None:
            self._task = asyncio.create_task(self._run(), name="rapport-wal-checkpoint")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self._drop_copier()

    def release(self) -> None:
        """Close the database file's descriptor; only once no connection is open."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def _flush(self) -> None:
        """Write the database file's dirty pages to the disk, beside the writer."""
        if self._path is None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)  # not inherited (PEP 446)
            await asyncio.to_thread(_datasync, self._fd)
        except OSError as exc:  # the catch-up syncs the file anyway, under the lock
            log.warning("wal_flush_failed", error=type(exc).__name__)

    async def _copying_driver(self) -> Any:
        """The aiosqlite connection of the long copies, opened (and its thread's priority
        lowered) on first use."""
        if self._copier is None:
            conn = await self._engine.connect()
            try:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.create_function("rapport_background_thread", 0, _background_thread)
                ((tid,),) = await driver.execute_fetchall("SELECT rapport_background_thread()")
            except BaseException:
                await conn.invalidate()
                await conn.close()
                raise
            self.background_thread = int(tid)
            self._copier = (conn, driver)
        return self._copier[1]

    async def _drop_copier(self) -> None:
        """Close the copying connection; invalidated, so its thread never serves the pool."""
        copier, self._copier = self._copier, None
        if copier is not None:
            with contextlib.suppress(Exception):
                await copier[0].invalidate()
                await copier[0].close()

    async def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint; if the WAL is long, more beside the writer and a last
        one between two batches: (busy, WAL frames, frames checkpointed) of the first."""
        long = False
        try:
            copier = await self._copying_driver()
            # autocommit (no BEGIN around it)
            (row,) = await copier.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
            long = row[1] >= self._restart_frames
            if long:
                await _approach(copier, row[1])
        except BaseException:
            await self._drop_copier()  # a new connection next time
            raise
        if long:
            await self._flush()
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection  # aiosqlite, autocommit: no BEGIN around it
                assert driver is not None
                async with self.writer.idle() if self.writer else contextlib.nullcontext():
                    (done,) = await driver.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
            # All of it in the database file: the next write transaction rewinds it.
            self.restarts += done[0] == 0 and done[1] == done[2]
        self.checkpoints += 1
        return int(row[0]), int(row[1]), int(row[2])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a busy or broken database: try again next time
                log.warning("wal_checkpoint_failed", error=type(exc).__name__)


def writer_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (and pool), marked so SQLite transactions begin IMMEDIATE."""
    return engine.execution_options(**{WRITER_OPTION: True})


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
