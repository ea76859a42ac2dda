"""Group commit: concurrent write units share one transaction and one commit.

The send path is dominated by the commit (one SQLite fsync per message caps throughput at a
few thousand per second, while a hundred rows per commit cost barely more than one). So
every write in the server is a *unit* — an async function of a session — submitted to a
single :class:`WriteBatcher` task. The batcher takes whatever units are waiting (up to
``max_batch``), runs each inside its own SAVEPOINT so one failing unit does not spoil the
others, commits once, and only then resolves the callers' futures: nothing is acknowledged
before it is durable.

A unit that loses an optimistic-concurrency race (another instance changed the same row)
raises :class:`StaleWrite` and is retried in the next batch, a bounded number of times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from .background import stop_task
from .db import DRIVER_ERRORS, driver_error, transaction_driver
from .events.store import touched
from .metrics import WRITE_BATCHES, WRITE_UNITS

if TYPE_CHECKING:
    from .events.notify import LocalNotifier

log = structlog.get_logger(__name__)

T = TypeVar("T")


class StaleWrite(Exception):
    """Raised by a unit whose compare-and-swap on a row version failed: retry it."""


class StoreUnavailable(Exception):
    """The database could not commit; the write was not applied. Safe to retry."""


@dataclass
class _Lean:
    """A transaction begun on a pooled driver connection, without an ORM session."""

    driver: Any
    postgres: bool
    notifier: LocalNotifier | None = None
    touched: set[str] = field(default_factory=set)
    published: set[str] = field(default_factory=set)
    """Parties whose hints a group's own statement sent (see ``UnitContext.hints``)."""


class UnitContext:
    """What a write unit gets: the session of the shared transaction and post-commit hooks.

    A group handler that declares ``lean = True`` may be run without a session, on the
    transaction's driver connection only (:meth:`driver`, :meth:`touched`): a batch of
    sends alone then skips the ORM session's set-up, begin, flush, commit and close."""

    __slots__ = ("_after_commit", "_lean", "_session")

    def __init__(self, session: AsyncSession | None, lean: _Lean | None = None) -> None:
        assert (session is None) != (lean is None)
        self._session = session
        self._lean = lean
        self._after_commit: list[Callable[[], None]] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("a lean group's context has no session")
        return self._session

    async def driver(self) -> tuple[Any, bool]:
        """The driver connection of the transaction (begun), and whether it is asyncpg."""
        if self._lean is not None:
            return self._lean.driver, self._lean.postgres
        return await transaction_driver(self.session)

    def touched(self) -> set[str]:
        """Parties whose event streams this transaction extends (woken after commit)."""
        if self._lean is not None:
            return self._lean.touched
        return touched(self.session)

    def hints(self, party_ids: Collection[str]) -> tuple[str, list[str]] | None:
        """For a lean group whose notifier publishes through the database (PostgreSQL):
        the channel and payloads for the caller to ``pg_notify`` in a statement of this
        transaction that it issues anyway; the batcher then publishes only the other
        parties it touched, and a batch of sends saves a round trip. ``None``: leave it
        to the batcher. The parties must also be added to :meth:`touched` (the local
        wake-up after commit)."""
        lean = self._lean
        if lean is None or lean.notifier is None or not party_ids:
            return None
        hints = lean.notifier.statement_hints(party_ids)
        if hints is not None:
            lean.published.update(party_ids)
        return hints

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the batch has committed (e.g. wake up event streams)."""
        self._after_commit.append(callback)


Unit = Callable[[UnitContext], Awaitable[T]]


class GroupHandler(Protocol):
    """Runs many requests of one kind with a few set-based statements (see ``submit_group``).

    Returns one outcome per request, in order: a result, or an exception for that request
    alone (a refusal, or :class:`StaleWrite` to retry it in the next batch). Refusals must
    be decided before the handler's first write; a database error or a :class:`StaleWrite`
    raised by the handler fails the whole group.
    """

    async def __call__(self, ctx: UnitContext, requests: list[Any]) -> list[Any]: ...


@dataclass
class _Pending:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    attempts: int = 0
    savepoint: bool = True
    group: GroupHandler | None = None
    request: Any = None


class _Redo(Exception):
    """A unit without a SAVEPOINT hit a database error: rerun the batch with savepoints."""


async def _driver_sql(driver: Any, postgres: bool, sql: str) -> None:
    """A transaction statement on the driver, its errors as SQLAlchemy's."""
    try:
        if postgres:
            await driver.execute(sql)
        else:
            await driver.execute_fetchall(sql)
    except DRIVER_ERRORS as error:
        raise driver_error(sql, error) from error


class WriteBatcher:
    """A single task that commits submitted write units in groups."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = 128,
        max_attempts: int = 5,
        notifier: LocalNotifier | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        bind = sessionmaker.kw.get("bind")
        self._engine: AsyncEngine | None = bind if isinstance(bind, AsyncEngine) else None
        """The writer engine, for batches of lean groups (``None``: always a session)."""
        self._notifier = notifier
        self._max_batch = max_batch
        self._max_attempts = max_attempts
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._slot = asyncio.Lock()
        self.batches = 0
        self.units = 0
        self.redos = 0
        self.lean_batches = 0
        """Batches run on a driver connection alone (see ``_lean_groups``)."""

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rapport-write-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        await stop_task(self._task)
        self._task = None

    async def submit(self, unit: Unit[T], *, savepoint: bool = True) -> T:
        """Run ``unit`` in the next batch; return its result once committed.

        ``savepoint=False`` is for units that raise only *before* their first write
        (refusals, :class:`StaleWrite`) — a send: every rule is checked in Python first and
        the compare-and-swap is its first statement. They skip SAVEPOINT/RELEASE, two of a
        send's few statements. Should such a unit still hit a database error (say a
        constraint), the whole batch is rolled back and rerun with a savepoint per unit.
        """
        if self._task is None:
            raise RuntimeError("WriteBatcher is not started")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(unit, future, savepoint=savepoint))
        return await future

    async def submit_group(self, handler: GroupHandler, request: Any, fallback: Unit[T]) -> T:
        """Run ``request`` together with the other requests for ``handler`` in the next batch.

        This is the set-based path of the hot writes (sends): instead of each request
        issuing its own few statements, the handler issues a few statements for all of
        them (one multi-row statement per table), so statements fall from ~5 per
        message to ~8 per batch. ``fallback`` is the same write as a plain
        unit: if the group fails, the batch is rolled back and rerun with every request as
        its own unit inside a SAVEPOINT, so one bad request cannot sink the others.
        """
        return await self.enqueue_group(handler, request, fallback)

    def enqueue_group(
        self, handler: GroupHandler, request: Any, fallback: Unit[T]
    ) -> asyncio.Future[T]:
        """``submit_group`` without the wait: the request is queued when this returns, so
        requests enqueued one after another are applied in that order (a batch of sends on
        one chain). Await the future for the outcome."""
        if self._task is None:
            raise RuntimeError("WriteBatcher is not started")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(
            _Pending(fallback, future, savepoint=False, group=handler, request=request)
        )
        return future

    def idle(self) -> asyncio.Lock:
        """The lock this batcher holds while it writes a batch: whoever else holds it
        knows that the batcher has no transaction open and starts none until it lets go
        (SQLite's RESTART checkpoint, ``db.py: WalCheckpointer``)."""
        return self._slot

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._slot:
                    try:
                        await self._commit(batch)
                    except _Redo:
                        self.redos += 1
                        for item in batch:
                            item.savepoint = True
                            item.group = None  # each request as its own unit
                        await self._commit(batch)
            except Exception as exc:  # never let the writer die
                log.error("write_batch_failed", error=type(exc).__name__)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(StoreUnavailable(str(type(exc).__name__)))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        retry: list[_Pending] = []
        hooks: list[Callable[[], None]] = []
        groups: dict[GroupHandler, list[_Pending]] = {}
        for item in batch:
            if item.group is not None and not item.future.cancelled():
                groups.setdefault(item.group, []).append(item)
        lean = (
            self._engine is not None
            and bool(groups)
            and all(getattr(handler, "lean", False) for handler in groups)
            and all(item.group is not None or item.future.cancelled() for item in batch)
        )
        try:
            if lean:
                woken = await self._lean_groups(groups, outcomes, retry, hooks)
                self.lean_batches += 1
            else:
                woken = await self._session_units(batch, groups, outcomes, retry, hooks)
        except (OperationalError, DBAPIError, OSError) as exc:
            log.warning("write_batch_not_committed", error=type(exc).__name__, units=len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(StoreUnavailable(type(exc).__name__))
            return
        self._resolve(outcomes, retry, hooks, woken)

    async def _groups(
        self,
        groups: dict[GroupHandler, list[_Pending]],
        context: Callable[[], UnitContext],
        outcomes: list[tuple[_Pending, Any, BaseException | None]],
        retry: list[_Pending],
        hooks: list[Callable[[], None]],
    ) -> None:
        """Run each group handler on its members (inside the batch's transaction)."""
        for handler, members in groups.items():
            ctx = context()
            try:
                results = await handler(ctx, [m.request for m in members])
            except (DBAPIError, StaleWrite) as exc:
                raise _Redo from exc
            for member, result in zip(members, results, strict=True):
                if isinstance(result, StaleWrite):
                    member.attempts += 1
                    if member.attempts < self._max_attempts:
                        retry.append(member)
                    else:
                        busy = StoreUnavailable("too much contention")
                        outcomes.append((member, None, busy))
                elif isinstance(result, BaseException):
                    outcomes.append((member, None, result))
                else:
                    outcomes.append((member, result, None))
            hooks.extend(ctx._after_commit)

    async def _lean_groups(
        self,
        groups: dict[GroupHandler, list[_Pending]],
        outcomes: list[tuple[_Pending, Any, BaseException | None]],
        retry: list[_Pending],
        hooks: list[Callable[[], None]],
    ) -> set[str]:
        """A batch of lean groups only (sends): one transaction on a pooled driver
        connection, begun and committed on the driver, without an ORM session (its
        set-up, begin, flush, commit and close were ~0.4-0.6 ms of CPU a batch,
        bench/PROFILE.md). Errors are raised as SQLAlchemy's, as in a session."""
        assert self._engine is not None
        try:
            raw = await self._engine.raw_connection()
        except DRIVER_ERRORS as error:  # the pool's connect is not wrapped by SQLAlchemy
            raise driver_error("connect", error) from error
        postgres = self._engine.dialect.name == "postgresql"
        driver = raw.driver_connection
        lean = _Lean(driver, postgres, self._notifier)
        clean = False  # the connection is out of any transaction: the pool may reuse it
        try:
            await _driver_sql(driver, postgres, "BEGIN" if postgres else "BEGIN IMMEDIATE")
            try:
                await self._groups(groups, lambda: UnitContext(None, lean), outcomes, retry, hooks)
                unpublished = lean.touched - lean.published
                if unpublished and self._notifier is not None:
                    await self._notifier.publish_on_driver(driver, postgres, unpublished)
                await _driver_sql(driver, postgres, "COMMIT")
            except BaseException:
                await _driver_sql(driver, postgres, "ROLLBACK")
                clean = True
                raise
            clean = True
        finally:
            if not clean:
                # Its state is unknown (a BEGIN, COMMIT or ROLLBACK that failed, a
                # cancellation mid-statement): the pool must not hand it out again.
                await greenlet_spawn(raw.invalidate)
            await greenlet_spawn(raw.close)
        return lean.touched

    async def _session_units(
        self,
        batch: list[_Pending],
        groups: dict[GroupHandler, list[_Pending]],
        outcomes: list[tuple[_Pending, Any, BaseException | None]],
        retry: list[_Pending],
        hooks: list[Callable[[], None]],
    ) -> set[str]:
        """The batch in an ORM session: the groups, then every other unit in its
        SAVEPOINT (or without one, see ``submit``)."""
        async with self._sessionmaker() as session, session.begin():
            await self._groups(groups, lambda: UnitContext(session), outcomes, retry, hooks)
            for item in batch:
                if item.future.cancelled() or item.group is not None:
                    continue
                ctx = UnitContext(session)
                try:
                    if item.savepoint:
                        async with session.begin_nested():
                            result = await item.unit(ctx)
                    else:
                        try:
                            result = await item.unit(ctx)
                        except DBAPIError as exc:
                            raise _Redo from exc
                except _Redo:
                    raise
                except StaleWrite:
                    item.attempts += 1
                    if item.attempts < self._max_attempts:
                        retry.append(item)
                    else:
                        outcomes.append((item, None, StoreUnavailable("too much contention")))
                    continue
                except IntegrityError as exc:
                    # A constraint refused this unit only (its savepoint is rolled back).
                    outcomes.append((item, None, exc))
                    continue
                except (OperationalError, DBAPIError):
                    raise  # the connection or database is in trouble: fail the batch
                except Exception as exc:
                    outcomes.append((item, None, exc))
                    continue
                outcomes.append((item, result, None))
                hooks.extend(ctx._after_commit)
            woken = touched(session)
            if woken and self._notifier is not None:
                await self._notifier.publish_in_transaction(session, woken)
        return woken

    def _resolve(
        self,
        outcomes: list[tuple[_Pending, Any, BaseException | None]],
        retry: list[_Pending],
        hooks: list[Callable[[], None]],
        woken: set[str],
    ) -> None:
        """After the commit: answer the callers, wake streams, run hooks, requeue."""
        self.batches += 1
        self.units += len(outcomes)
        WRITE_BATCHES.inc()
        WRITE_UNITS.inc(len(outcomes))
        for item, result, error in outcomes:
            if item.future.done():
                continue
            if error is None:
                item.future.set_result(result)
            else:
                item.future.set_exception(error)
        if woken and self._notifier is not None:
            self._notifier.committed(woken)
        for hook in hooks:
            try:
                hook()
            except Exception as exc:  # a wake-up hint must not fail a committed write
                log.warning("after_commit_hook_failed", error=type(exc).__name__)
        for item in retry:
            self._queue.put_nowait(item)
