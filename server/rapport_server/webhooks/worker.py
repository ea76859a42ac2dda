"""The webhook delivery worker: outbox → deliveries → signed HTTP attempts with retries.

1. **Expand**: for each enabled endpoint whose party's stream grew past the endpoint's
   cursor, insert one delivery row per new event (set-based ``INSERT … SELECT``) and move the
   cursor, in one transaction. Events are the outbox (written with the change they report),
   so nothing committed is missed and nothing uncommitted is seen.
2. **Claim**: take due deliveries with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   any number of workers share the work; SQLite serialises writers instead).
3. **Attempt** concurrently, then record all outcomes in one transaction: delivered, retry at
   the next step of the schedule (or later if the receiver sent ``Retry-After``), dead after
   the last step, endpoint disabled on ``410 Gone``.

Delivery is at-least-once: a worker that dies after a receiver answered but before recording
it leaves the lease to expire, and the attempt is repeated with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

import httpx
import structlog
from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from ..background import stop_task
from ..config import Settings
from ..db import DRIVER_ERRORS, driver_error
from ..events import service as events
from ..events.notify import ANY, LocalNotifier
from ..metrics import WEBHOOK_ATTEMPTS
from ..tables import Event, LogEntry, Party, WebhookDelivery, WebhookEndpoint
from .schemas import webhook_id
from .service import insert_pending, park
from .signing import ServerSigner
from .ssrf import PinnedBackend, PinnedTransport, Resolver, SystemResolver

log = structlog.get_logger(__name__)

# Standard Webhooks / Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then two
# more (14 h, 24 h) so an endpoint gets about three days to recover before a dead letter.
SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000, 50400, 86400)
MAX_RESPONSE_BYTES = 64 * 1024
MAX_RETRY_AFTER = 86400.0
EXPAND_BATCH = 500
EXPAND_ENDPOINTS = 100


# The head of an endpoint's party's stream, as a correlated subquery rather than a join:
# the query then always starts from the (small) endpoints table and looks each party up by
# key. As a join, SQLite's planner, once ANALYZE had run, scanned every party instead
# (14-20 ms per probe at 100k parties), and FOR UPDATE locked the parties' rows as well,
# holding up sends to them.
_PARTY_TOP = (
    select(Party.event_seq)
    .where(Party.id == WebhookEndpoint.party_id)
    .correlate(WebhookEndpoint)
    .scalar_subquery()
)
# An enabled endpoint whose party's stream has grown past its cursor.
_ENDPOINT_BEHIND = (WebhookEndpoint.status == "enabled", WebhookEndpoint.cursor < _PARTY_TOP)


def _behind(parties: Collection[str] | None) -> tuple[ColumnElement[bool], ...] | None:
    """:data:`_ENDPOINT_BEHIND`, for the endpoints of ``parties`` only (``None``: every
    endpoint); ``None`` when there are no parties to look at."""
    if parties is None:
        return _ENDPOINT_BEHIND
    if not parties:
        return None
    return (*_ENDPOINT_BEHIND, WebhookEndpoint.party_id.in_(sorted(parties)))


# A pass's "is there work?" question (run_once), on the reader's driver connection: the
# same conditions as ``_ENDPOINT_BEHIND`` (for the hinted parties, or every endpoint) and
# ``_due``. Through an ORM session it cost ~1.5 ms of CPU a pass (session, statement
# building, cache key, IN expansion, close), and under load a pass starts every 25 ms:
# ~4% of the server's CPU and a stall of the event loop each time, with or without any
# endpoint (bench/PROFILE.md, session 13).
_BEHIND_SQL = (
    "EXISTS (SELECT 1 FROM webhook_endpoints AS e WHERE e.status = 'enabled'{parties}"
    " AND e.cursor < (SELECT p.event_seq FROM parties AS p WHERE p.id = e.party_id))"
)
_DUE_SQL = (
    "EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending'"
    " AND next_attempt_at <= {now} AND (locked_until IS NULL OR locked_until < {now}))"
)


@cache
def _work_sql(postgres: bool, parties: int | None) -> str:
    """The probe's text: for ``parties`` hinted parties (``None``: every endpoint; 0: no
    endpoint). PostgreSQL: one text whatever the count (an array); SQLite: markers."""
    if parties == 0:
        behind = "0 = 1"
    elif parties is None:
        behind = _BEHIND_SQL.format(parties="")
    elif postgres:
        behind = _BEHIND_SQL.format(parties=" AND e.party_id = ANY($2::text[])")
    else:
        marks = ", ".join(f"?{i}" for i in range(2, parties + 2))  # ?1 is the time
        behind = _BEHIND_SQL.format(parties=f" AND e.party_id IN ({marks})")
    due = _DUE_SQL.format(now="$1" if postgres else "?1")
    return f"SELECT {behind}, {due}"


def _due(now: float) -> tuple[ColumnElement[bool], ...]:
    """A pending delivery whose time has come and whose lease (if any) has run out."""
    return (
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        WebhookDelivery.locked_until.is_(None) | (WebhookDelivery.locked_until < now),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    endpoint_id: str
    ok: bool
    status: int | None
    error: str | None
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    endpoint_id: str
    attempts: int
    url: str
    secrets: list[str]
    event_row_id: int
    body: bytes
    lease: float
    """The claim's ``locked_until``: the outcome is recorded only while it still holds."""


class DeliveryWorker:
    """One worker loop; run as many as you like against PostgreSQL."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        notifier: LocalNotifier,
        signer: ServerSigner,
        transport: httpx.AsyncBaseTransport,
        timeout: float = 10.0,
        retry_scale: float = 1.0,
        concurrency: int = 16,
        batch: int = 64,
        poll: float = 1.0,
        coalesce: float = 0.025,
        wall: Callable[[], float] = time.time,
        skip_locked: bool = False,
        reader: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._maker = sessionmaker
        # Probes run in plain read transactions, so an idle worker never takes SQLite's
        # write lock; the writer sessions are used only when there is work.
        self._reader = reader or sessionmaker
        bind = self._reader.kw.get("bind")
        assert isinstance(bind, AsyncEngine), "the reader sessionmaker is bound to an engine"
        self._reader_engine = bind  # its pooled connections carry the pass's probe
        self._notifier = notifier
        self._signer = signer
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"user-agent": "rapport-webhooks/1", "content-type": "application/json"},
        )
        self._timeout = timeout
        self._scale = retry_scale
        self._slots = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._poll = poll
        # Under load every commit wakes the worker; a pass costs two probes (sessions and
        # statements on the send path's database). Passes start at most every ``coalesce``
        # seconds and each sees every event committed before it: the same work, far fewer
        # probes (bench/PROFILE.md). An idle worker still reacts at once.
        self._coalesce = coalesce
        self._wall = wall
        self._skip_locked = skip_locked
        self._task: asyncio.Task[None] | None = None
        self.attempts = 0
        self.delivered = 0
        self._expand_left = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="rapport-webhook-worker")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self._client.aclose()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        full_at = -math.inf
        with self._notifier.subscribe(ANY) as sub:
            while True:
                started = loop.time()
                parties = sub.take()
                # Only the hinted parties' endpoints are probed for new events, but every
                # endpoint once per ``poll`` (a lost hint) and whenever an expand left work.
                if self._expand_left or started - full_at >= self._poll:
                    parties = None
                if parties is None:
                    full_at = started
                try:
                    done = await self.run_once(parties)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database is away: back off, keep the loop
                    log.warning("webhook_worker_error", error=type(exc).__name__)
                    await asyncio.sleep(self._poll)
                    continue
                if done < self._batch and not self._expand_left:  # else go on at once
                    await sub.wait(self._poll)
                    rest = started + self._coalesce - loop.time()
                    if rest > 0:
                        await asyncio.sleep(rest)

    def _lock(self, query: Any) -> Any:
        return query.with_for_update(skip_locked=True) if self._skip_locked else query

    async def _work(self, now: float, parties: Collection[str] | None) -> tuple[bool, bool]:
        """(an endpoint of ``parties`` is behind its stream, a delivery is due), in one
        statement on a pooled driver connection of the reader engine."""
        bind = self._reader_engine
        postgres = bind.dialect.name == "postgresql"
        listed = sorted(parties) if parties is not None else None
        sql = _work_sql(postgres, None if listed is None else len(listed))
        raw = await bind.raw_connection()
        try:
            driver: Any = raw.driver_connection
            try:
                if postgres:
                    args: list[Any] = [now] if not listed else [now, listed]
                    row = await driver.fetchrow(sql, *args)
                else:
                    (row,) = await driver.execute_fetchall(sql, [now, *(listed or ())])
            except DRIVER_ERRORS as error:
                await greenlet_spawn(raw.invalidate)  # its state is unknown
                raise driver_error(sql, error) from error
        finally:
            await greenlet_spawn(raw.close)
        return bool(row[0]), bool(row[1])

    async def _probe(self, query: Any) -> bool:
        async with self._reader() as session:
            return (await session.execute(query.limit(1))).first() is not None

    async def run_once(self, parties: Collection[str] | None = None) -> int:
        """One pass: expand new events (of ``parties``' endpoints, or of every endpoint),
        then attempt what is due; returns the attempts.

        Both "is there work?" questions are one statement on a pooled driver connection
        of the reader engine (``_work``: a pass starts after every batch commit under
        load, and as ORM probes they were ~3-4% of a send's server CPU,
        bench/PROFILE.md). The first reads the endpoints table, one
        party lookup per endpoint: limited to the parties whose commits woke the pass, it
        stays the same size as endpoints are added."""
        now = self._wall()
        self._expand_left = False
        behind, due = await self._work(now, parties)
        created = await self.expand(probed=True, parties=parties) if behind else 0
        if not (due or created):
            return 0
        return await self.deliver_due(probed=True)

    async def expand(self, *, probed: bool = False, parties: Collection[str] | None = None) -> int:
        """Turn new events into pending deliveries; returns how many were created.
        ``probed``: the caller has just seen an endpoint behind its party's stream.
        ``parties``: only their endpoints (default: every endpoint)."""
        now = self._wall()
        created = 0
        self._expand_left = False
        behind_of = _behind(parties)
        if behind_of is None:
            return 0
        if not probed and not await self._probe(select(WebhookEndpoint.id).where(*behind_of)):
            return 0
        async with self._maker() as session, session.begin():
            due = await session.execute(
                self._lock(
                    select(
                        WebhookEndpoint.id,
                        WebhookEndpoint.party_id,
                        WebhookEndpoint.cursor,
                        WebhookEndpoint.types,
                        _PARTY_TOP,
                    )
                    .where(*behind_of)
                    .limit(EXPAND_ENDPOINTS)
                )
            )
            rows = due.all()
            self._expand_left = len(rows) == EXPAND_ENDPOINTS
            for endpoint_id, party_id, cursor, types, top in rows:
                upto = min(int(top), int(cursor) + EXPAND_BATCH)
                if upto < int(top):
                    self._expand_left = True  # the next pass goes on from ``upto``
                new_events = [Event.party_id == party_id, Event.seq > cursor, Event.seq <= upto]
                if types:
                    new_events.append(Event.kind.in_(types.split(",")))
                result = await session.execute(insert_pending(endpoint_id, new_events, now))
                created += int(result.rowcount)  # type: ignore[attr-defined]
                await session.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint_id)
                    .values(cursor=upto)
                )
        return created

    async def _claim(self, probed: bool) -> list[_Job]:
        now = self._wall()
        lease = now + self._timeout + 30
        if not probed and not await self._probe(select(WebhookDelivery.id).where(*_due(now))):
            return []
        async with self._maker() as session, session.begin():
            rows = await session.execute(
                self._lock(
                    select(WebhookDelivery.id)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(*_due(now), WebhookEndpoint.status == "enabled")
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(self._batch)
                )
            )
            ids = [int(i) for (i,) in rows.all()]
            if not ids:
                return []
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(locked_until=lease)
            )
            loaded = await session.execute(
                select(WebhookDelivery, WebhookEndpoint, Event, LogEntry)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .outerjoin(LogEntry, LogEntry.seq == Event.log_seq)
                .where(WebhookDelivery.id.in_(ids))
            )
            jobs = []
            for delivery, endpoint, event, entry in loaded.all():
                secrets = [endpoint.secret]
                if endpoint.previous_secret and (endpoint.previous_until or 0) > now:
                    secrets.append(endpoint.previous_secret)
                jobs.append(
                    _Job(
                        delivery_id=delivery.id,
                        endpoint_id=endpoint.id,
                        attempts=delivery.attempts,
                        url=endpoint.url,
                        secrets=secrets,
                        event_row_id=event.id,
                        body=_body(event, entry),
                        lease=lease,
                    )
                )
            return jobs

    async def deliver_due(self, *, probed: bool = False) -> int:
        """Claim due deliveries, attempt them, record the outcomes; returns how many.
        ``probed``: the caller has just seen work (skip the read probe)."""
        jobs = await self._claim(probed)
        if not jobs:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(job) for job in jobs))
        await self._record(jobs, outcomes)
        return len(jobs)

    async def _attempt(self, job: _Job) -> Outcome:
        timestamp = int(self._wall())
        headers = self._signer.headers(
            webhook_id(job.event_row_id), timestamp, job.body, job.secrets
        )
        async with self._slots:
            self.attempts += 1
            try:
                async with self._client.stream(
                    "POST", job.url, content=job.body, headers=headers
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break  # only the status matters; never read an unbounded body
                    status = response.status_code
                    retry_after = _retry_after(response.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                WEBHOOK_ATTEMPTS.labels("transport_error").inc()
                return Outcome(job.delivery_id, job.endpoint_id, False, None, _describe(exc), None)
        ok = 200 <= status < 300
        WEBHOOK_ATTEMPTS.labels("delivered" if ok else f"http_{status // 100}xx").inc()
        if ok:
            self.delivered += 1
        return Outcome(
            job.delivery_id,
            job.endpoint_id,
            ok,
            status,
            None if ok else f"HTTP {status}",
            retry_after if status in (429, 503) else None,
        )

    async def _record(self, jobs: Sequence[_Job], outcomes: Sequence[Outcome]) -> None:
        now = self._wall()
        attempts = {job.delivery_id: job.attempts for job in jobs}
        leases = {job.delivery_id: job.lease for job in jobs}
        # Only while the claim's lease holds: a replay scheduled while the attempt was in
        # flight (it clears the lease) must not be overwritten by this attempt's outcome.
        delivered = [
            {
                "b_id": o.delivery_id,
                "b_lease": leases[o.delivery_id],
                "b_status": o.status,
                "b_attempts": attempts[o.delivery_id] + 1,
            }
            for o in outcomes
            if o.ok
        ]
        async with self._maker() as session, session.begin():
            if len(delivered) < len(outcomes):
                # A failure may disable or park: lock its endpoints first (PostgreSQL), as an
                # owner's enable, disable or replay does, so that the status read by the park
                # below holds until commit and the two writers never wait on each other.
                ids = sorted({o.endpoint_id for o in outcomes if not o.ok})
                await session.execute(
                    select(WebhookEndpoint.id)
                    .where(WebhookEndpoint.id.in_(ids))
                    .order_by(WebhookEndpoint.id)
                    .with_for_update()
                )
            if delivered:  # the common case, one statement for all (it was one per delivery)
                await session.execute(_DELIVERED.values(delivered_at=int(now)), delivered)
            failed: set[str] = set()
            for outcome in outcomes:
                if outcome.ok:
                    continue
                failed.add(outcome.endpoint_id)
                values: dict[str, Any] = {
                    "locked_until": None,
                    "last_status": outcome.status,
                    "last_error": outcome.error,
                    "attempts": attempts[outcome.delivery_id] + 1,
                }
                if outcome.status == 410:
                    values |= {"status": "dead"}
                    await session.execute(
                        update(WebhookEndpoint)
                        .where(WebhookEndpoint.id == outcome.endpoint_id)
                        .values(status="disabled", disabled_reason="receiver answered 410 Gone")
                    )
                else:
                    step = attempts[outcome.delivery_id] + 1
                    if step >= len(SCHEDULE):
                        values |= {"status": "dead"}
                    else:
                        delay = SCHEDULE[step] * self._scale
                        if outcome.retry_after is not None:
                            delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
                        values |= {"next_attempt_at": now + delay}
                await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == outcome.delivery_id,
                        WebhookDelivery.locked_until == leases[outcome.delivery_id],
                    )
                    .values(**values)
                )
            if failed:
                # Retries just scheduled for an endpoint that is now disabled (by a 410
                # above, or by its owner while the attempt was in flight) wait parked.
                disabled = select(WebhookEndpoint.id).where(
                    WebhookEndpoint.id.in_(failed), WebhookEndpoint.status == "disabled"
                )
                await session.execute(park(disabled))


_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_DELIVERED = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id == bindparam("b_id"), _DELIVERIES.c.locked_until == bindparam("b_lease")
    )
    .values(
        status="delivered",
        locked_until=None,
        last_status=bindparam("b_status"),
        last_error=None,
        attempts=bindparam("b_attempts"),
    )
)


def _body(event: Event, entry: LogEntry | None) -> bytes:
    created = datetime.fromtimestamp(event.created_at, UTC).isoformat().replace("+00:00", "Z")
    payload = {"type": event.kind, "timestamp": created, "data": events.to_wire(event, entry)}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        from email.utils import parsedate_to_datetime

        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    return None


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def build_worker(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    notifier: LocalNotifier,
    signer: ServerSigner,
    *,
    resolver: Resolver | None = None,
    reader: async_sessionmaker[AsyncSession] | None = None,
) -> DeliveryWorker:
    """A worker configured from settings (SSRF-pinned transport, schedule scale, …)."""
    backend = PinnedBackend(resolver or SystemResolver(), dev_mode=settings.webhook_dev_mode)
    return DeliveryWorker(
        sessionmaker,
        notifier=notifier,
        signer=signer,
        transport=PinnedTransport(backend, max_connections=settings.webhook_concurrency * 2),
        timeout=settings.webhook_timeout,
        retry_scale=settings.webhook_retry_scale,
        concurrency=settings.webhook_concurrency,
        skip_locked=not settings.is_sqlite,
        reader=reader,
    )
