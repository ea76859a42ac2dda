"""The figures: send throughput and latency, scale, broadcast fan-out, multi-instance,
delivery lag; and the per-backend sequence that measures them."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from bench import disk, load, report, seed, servers
from bench.context import (
    HERE,
    Context,
    Small,
    megabytes,
    new_population,
    presign_run,
)
from bench.databases import fresh_database
from bench.references import crypto, database_limits, limit_http
from bench.report import Row, pending
from bench.workload import Link, Population


@dataclass(frozen=True)
class SendCpu:
    """CPU time per message of a peak run: the server's, and PostgreSQL's (``None`` on
    SQLite, which runs inside the server process)."""

    server_ms: float
    database_ms: float | None = None

    def __str__(self) -> str:
        text = f"server {self.server_ms:.2f} CPU ms/msg"
        if self.database_ms is not None:
            text += f", PostgreSQL {self.database_ms:.2f}"
        return text


SEND_BATCH = 16
"""Messages per ``POST /v1/messages/batch`` in the batch-send figure."""
BATCH_MAX_RATE = 10_000
"""Pre-signed messages of the batch-send figure are sized for this peak rate."""


def send_peak(
    ctx: Context,
    backend: str,
    srv: servers.Server,
    pop: Population,
    db_url: str,
    label: str,
    batch: int = 0,
) -> tuple[load.LoadResult, SendCpu]:
    """Peak send throughput (single sends, or ``batch`` messages a request: one request
    in flight per group of links, so as many load connections as groups); returns the
    result (accepted messages) and the CPU per message."""
    rate = BATCH_MAX_RATE if batch else ctx.plan.max_rate
    path = presign_run(ctx, pop, db_url, rate, f"{backend}-{label}-peak", batch)
    postgres = backend == "postgres"
    cpu0 = srv.cpu_seconds()
    db0 = servers.postgres_cpu_seconds() if postgres else 0.0
    res = load.peak(
        srv.url,
        path,
        seconds=ctx.plan.seconds,
        connections=batch_connections(len(pop.links)) if batch else ctx.plan.connections,
        cpu=ctx.load_cpu,
        tool=ctx.tool,
        batch=bool(batch),
    )
    per = 1000 / max(1, res.ok)
    cpu = SendCpu(
        (srv.cpu_seconds() - cpu0) * per,
        (servers.postgres_cpu_seconds() - db0) * per if postgres else None,
    )
    ctx.log(
        f"send[{backend}/{label}]: {res.rate:,.0f} msg/s, p99 {res.p99_ms:.0f} ms, {cpu} "
        f"{res.steal_note} {res.detail}"
    )
    return res, cpu


LIST_PAGES = 20


def list_page_ms(url: str, link: Link, pages: int = LIST_PAGES) -> float:
    """Median milliseconds of ``GET /v1/connections`` (50 a page, following the cursor)
    for ``link``'s sender: the scale figures' check that a page costs the same whatever
    the party's number of connections."""
    import httpx

    took: list[float] = []
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {link.sender.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(pages):
            params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
            began = time.perf_counter()
            r = http.get("/v1/connections", params=params)
            took.append((time.perf_counter() - began) * 1000)
            r.raise_for_status()
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
    return statistics.median(took)


INBOX_PAGES = 20


def seeded_cids(start: int, count: int, n: int = INBOX_PAGES) -> list[str]:
    """``n`` cids spread over seeded clones ``start`` … ``start + count - 1``
    (as :mod:`bench.seed` names them)."""
    step = max(1, count // n)
    return [f"f{i:031x}" for i in range(start, start + count, step)][:n]


@dataclass(frozen=True)
class InboxPages:
    one_ms: float
    """Median time of a page of one connection's inbox."""
    all_ms: float
    """Median time of a page of the whole inbox, following the cursor."""
    cids: int
    held: int
    """Messages in the one-connection pages (one each, for a seeded connection)."""


def inbox_pages(url: str, link: Link, cids: list[str], pages: int = INBOX_PAGES) -> InboxPages:
    """Pages of ``link``'s sender's inbox: filtered to each of ``cids`` (50 a page, the
    first page), then unfiltered, following the cursor for ``pages`` pages. The figure
    that would grow with the inbox if the filtered page scanned it (it did, before
    ``events (party_id, cid, kind, seq)``)."""
    import httpx

    one: list[float] = []
    whole: list[float] = []
    seen = 0
    headers = {"Authorization": f"Bearer {link.sender.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        http.get("/v1/messages", params={"limit": "1"}).raise_for_status()  # warm
        for cid in cids:
            began = time.perf_counter()
            r = http.get("/v1/messages", params={"limit": "50", "cid": cid})
            one.append((time.perf_counter() - began) * 1000)
            r.raise_for_status()
            seen += len(r.json()["data"])
        cursor: str | None = None
        for _ in range(pages):
            params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
            began = time.perf_counter()
            r = http.get("/v1/messages", params=params)
            whole.append((time.perf_counter() - began) * 1000)
            r.raise_for_status()
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
    return InboxPages(
        statistics.median(one) if one else 0.0,
        statistics.median(whole) if whole else 0.0,
        len(cids),
        seen,
    )


def send_rows(
    ctx: Context,
    backend: str,
    res: load.LoadResult,
    cpu: SendCpu,
    *,
    name: str = "send throughput",
    connections: int | None = None,
    unit_note: str = "",
) -> None:
    """A send figure against the issue's two references (the batch send's too:
    ``unit_note`` says what its messages/s are compared with)."""
    http = limit_http(ctx)
    crypto_rate = crypto(ctx)
    batched = ctx.refs[f"limit_db/{backend}/100"]
    conns = ctx.plan.connections if connections is None else connections
    note = report.notes(
        f"{res.tool}, {conns} conns, {ctx.plan.links} chains",
        unit_note,
        str(cpu),
        res.steal_note,
        res.detail,
    )
    ctx.rows.append(
        Row(
            name,
            backend,
            report.rate(res.rate, " msg/s"),
            f"limit_http {report.rate(http)}",
            res.rate / http,
            "≥ 0.5×",
            note,
        )
    )
    floor = min(crypto_rate, batched)
    which = "limit_crypto" if crypto_rate <= batched else "limit_db batched"
    ctx.rows.append(
        Row(
            name,
            backend,
            report.rate(res.rate, " msg/s"),
            f"min(crypto, db batched) = {which} {report.rate(floor)}",
            res.rate / floor,
            "≥ 0.8×",
        )
    )


def batch_connections(links: int) -> int:
    """Load connections of the batch-send figure: three quarters of its groups of links,
    so that a group is always ready when an answer comes back (with as many connections
    as groups, wrk found none ready about as often as it sent a batch, and filled in)."""
    return max(1, -(-links // SEND_BATCH) * 3 // 4)


def latency(
    ctx: Context, srv: servers.Server, pop: Population, db_url: str, rate: float, name: str
) -> load.LoadResult:
    path = presign_run(ctx, pop, db_url, rate, name, extra_seconds=ctx.plan.warmup)
    with disk.probing(ctx.workdir, ctx.disk_probe) as probe:
        res = _open_loop(ctx, srv.url, path, rate)
    if res.measured_at is not None:
        # the measured seconds only; the slow syncs beside the timeline (--keep)
        probe = probe.within(res.measured_at, res.measured_at + res.seconds)
    probe.write(path.with_suffix(".disk"))
    res = replace(res, disk_note=probe.note)
    ctx.log(
        f"latency[{name}] @ {rate:,.0f}/s: p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms "
        f"{report.notes(res.steal_note, res.disk_note)}"
    )
    return res


def bare_latency(ctx: Context, rate: float) -> load.LoadResult:
    path = ctx.workdir / "bare.tsv"
    if not path.exists():
        limit_http(ctx)
    with servers.bare_server(ctx.workdir, cpu=ctx.server_cpu) as bare:
        return _open_loop(ctx, bare.url, path, rate, mode="any")


def _open_loop(
    ctx: Context, url: str, path: Path, rate: float, mode: str = "chain"
) -> load.LoadResult:
    """The latency figure's load: the plan's seconds after its warm-up, at ``rate``."""
    return load.fixed_rate(
        url,
        path,
        rate=rate,
        seconds=ctx.plan.seconds,
        warmup=ctx.plan.warmup,
        connections=ctx.plan.connections,
        mode=mode,
        cpu=ctx.load_cpu,
    )


BROADCAST_GOAL = ("postgres", 100_000)
"""The issue's broadcast goal: this many recipients on this backend in ≤ 5 s."""
BROADCAST_GOAL_SECONDS = 5.0
LATENCY_GOAL_MS = 20.0


def latency_rows(
    ctx: Context, backend: str, res: load.LoadResult, ref: load.LoadResult, rate: float
) -> None:
    warm = f" (its p99 {res.warmup_p99_ms:.1f} ms)" if res.warmup_p99_ms is not None else ""
    note = report.notes(
        f"open loop at {rate:,.0f}/s (50% of peak), {ctx.plan.seconds:g} s after a "
        f"{ctx.plan.warmup:g} s warm-up at that rate that is not counted{warm}",
        res.steal_note,
        res.detail,
    )
    ctx.rows.append(
        Row(
            "send latency p50",
            backend,
            f"{res.p50_ms:.1f} ms",
            f"bare endpoint at same rate {ref.p50_ms:.1f} ms",
            res.p50_ms / ref.p50_ms if ref.p50_ms else None,
            note=note,
        )
    )
    ctx.rows.append(
        Row(
            "send latency p99",
            backend,
            f"{res.p99_ms:.1f} ms",
            f"bare endpoint at same rate {ref.p99_ms:.1f} ms",
            res.p99_ms / ref.p99_ms if ref.p99_ms else None,
            note=report.notes(
                f"slowest {res.max_ms:.1f} ms" if res.max_ms is not None else "",
                res.disk_note,
                ref.steal_note and f"bare endpoint's run: {ref.steal_note}",
                f"its warm-up's p99 {ref.warmup_p99_ms:.1f} ms"
                if ref.warmup_p99_ms is not None
                else "",
            ),
        )
    )
    # The goal is absolute: the ratio is to 20 ms. A send is durable before its answer, so
    # its p99 cannot beat the disk's: one bare commit's p99 (limit_db) is the floor.
    commit_p99 = ctx.refs.get(f"limit_db/{backend}/p99_ms")
    floor = f"; one bare commit: p99 {commit_p99:.1f} ms" if commit_p99 is not None else ""
    ctx.rows.append(
        Row(
            "send latency p99 vs goal",
            backend,
            f"{res.p99_ms:.1f} ms",
            f"20 ms{floor}",
            res.p99_ms / LATENCY_GOAL_MS,
            "≤ 1×",
        )
    )


async def _seed(
    db_url: str,
    jobs: list[tuple[seed.Template, int, int, int]],
    *,
    bulk: bool = False,
    replies: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Run clone jobs (template, start, count, messages) in one transaction; or, with
    ``bulk`` on PostgreSQL (no server may use the database meanwhile), each with
    :func:`seed.bulk_clone`. ``replies``: see :mod:`bench.seed`."""
    from rapport_server.db import create_engine, writer_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    # PostgreSQL: a plain engine, since the server's has a per-statement timeout sized for
    # requests, not for million-row INSERT … SELECTs.
    sqlite = db_url.startswith("sqlite")
    engine = create_engine(db_url) if sqlite else create_async_engine(db_url)
    try:
        async with writer_engine(engine).begin() as conn:
            obj, payload = await seed.sample_message(conn)
            if not bulk or sqlite:
                for template, start, count, messages in jobs:
                    await seed.clone(
                        conn,
                        template,
                        start=start,
                        count=count,
                        messages=messages,
                        message_object=obj,
                        payload=payload,
                        replies=replies,
                    )
        if bulk and not sqlite:
            for template, start, count, messages in jobs:
                await seed.bulk_clone(
                    engine,
                    template,
                    start=start,
                    count=count,
                    messages=messages,
                    message_object=obj,
                    payload=payload,
                    replies=replies,
                    log=log,
                )
        async with writer_engine(engine).begin() as conn:
            await seed.analyze(conn)
            counts = await seed.table_counts(conn)
    finally:
        await engine.dispose()
    await seed.checkpoint(db_url)
    return counts


def _template(link: Link) -> seed.Template:
    return seed.Template(link.cid, link.recipient.party_id, link.recipient.did)


def scale(
    ctx: Context,
    backend: str,
    db_url: str,
    pop: Population,
    small: Small,
    start_server: Callable[[], contextlib.AbstractContextManager[servers.Server]],
) -> None:
    conns, per = ctx.plan.scale[backend]
    began = time.monotonic()
    start = ctx.seed_next
    ctx.seed_next += conns
    counts = asyncio.run(
        _seed(
            db_url,
            [(_template(pop.links[0]), start, conns, per)],
            bulk=True,
            replies=True,
            log=lambda m: ctx.log(f"seed[{backend}]: {m}"),
        )
    )
    seeded = time.monotonic() - began
    ctx.log(f"seeded[{backend}] in {seeded:.0f} s: {counts}")
    sizes = (
        f"{counts['connections']:,} connections, {counts['log_entries']:,} log entries, "
        f"{counts['events']:,} events (seeded in {seeded:.0f} s)"
    )
    with start_server() as srv:
        res, cpu = send_peak(ctx, backend, srv, pop, db_url, "scale")
        list_ms = list_page_ms(srv.url, pop.links[0])
        inbox = inbox_pages(srv.url, pop.links[0], seeded_cids(start, conns))
        lat = (
            latency(ctx, srv, pop, db_url, small.rate50, f"{backend}-scale-lat")
            if small.latency
            else None
        )
        rss = srv.rss()
    ctx.rows.append(
        Row(
            "scale: send throughput",
            backend,
            report.rate(res.rate, " msg/s"),
            f"small-db figure {report.rate(small.peak.rate)}",
            res.rate / small.peak.rate if small.peak.rate else None,
            "",
            report.notes(sizes, str(cpu), res.steal_note, res.detail),
        )
    )
    if lat is not None and small.latency is not None:
        ctx.rows.append(
            Row(
                "scale: send latency p99",
                backend,
                f"{lat.p99_ms:.1f} ms",
                f"small-db p99 {small.latency.p99_ms:.1f} ms",
                lat.p99_ms / small.latency.p99_ms if small.latency.p99_ms else None,
                note=report.notes(
                    f"same rate {small.rate50:,.0f}/s and warm-up; p50 {lat.p50_ms:.1f} ms",
                    f"slowest {lat.max_ms:.1f} ms" if lat.max_ms is not None else "",
                    lat.disk_note,
                    lat.steal_note,
                    lat.detail,
                ),
            )
        )
    if small.list_ms is not None:
        ctx.rows.append(
            Row(
                "scale: a page of connections",
                backend,
                f"{list_ms:.1f} ms",
                f"small-db page {small.list_ms:.1f} ms",
                list_ms / small.list_ms if small.list_ms else None,
                note=f"GET /v1/connections, 50 a page, median of {LIST_PAGES} pages "
                f"following the cursor, for the sender of the seeded connections",
            )
        )
    ctx.rows.append(
        Row(
            "scale: a page of one connection's inbox",
            backend,
            f"{inbox.one_ms:.1f} ms",
            f"whole-inbox page {inbox.all_ms:.1f} ms",
            inbox.one_ms / inbox.all_ms if inbox.all_ms else None,
            note=report.notes(
                f"GET /v1/messages?cid=…, median over {inbox.cids} seeded connections, "
                f"for their business, whose inbox holds a seeded reply from each of its "
                f"{conns:,} seeded connections",
                "each page held its one message"
                if inbox.held == inbox.cids
                else f"{inbox.held} messages in {inbox.cids} pages (expected one each)",
                f"reference: its whole inbox, 50 a page, median of {INBOX_PAGES} pages "
                "following the cursor, same run",
                f"small-db one-connection page {small.inbox_ms:.1f} ms"
                if small.inbox_ms is not None
                else "",
            ),
        )
    )
    ctx.rows.append(
        Row(
            "scale: server RSS",
            backend,
            megabytes(rss),
            f"small-db RSS {megabytes(small.rss)}",
            rss / small.rss if small.rss else None,
            note="after the load",
        )
    )


def broadcast(ctx: Context, backend: str, srv: servers.Server, db_url: str) -> None:
    from bench.fanout import prepare_fanout, run_broadcasts

    _, batched = ctx.refs[f"limit_db/{backend}"], ctx.refs[f"limit_db/{backend}/100"]
    extra = ctx.plan.fanout_goal.get(backend)
    sizes = [*ctx.plan.fanout, *([extra] if extra and extra not in ctx.plan.fanout else [])]
    for n in sizes:
        start = ctx.seed_next
        ctx.seed_next += n
        began = time.monotonic()
        sender, jobs = asyncio.run(prepare_fanout(srv.url, n, start))
        asyncio.run(_seed(db_url, jobs))
        prepared = time.monotonic() - began
        times = load.cpu_times()
        postgres = backend == "postgres"
        cpu0 = srv.cpu_seconds()
        db0 = servers.postgres_cpu_seconds() if postgres else 0.0
        timings, outcome = asyncio.run(run_broadcasts(srv.url, sender, ctx.plan.broadcasts))
        # CPU seconds per broadcast: both cores busy means the sum bounds the wall time.
        server_cpu = (srv.cpu_seconds() - cpu0) / len(timings)
        db_cpu = (servers.postgres_cpu_seconds() - db0) / len(timings) if postgres else None
        cpu = f"server {server_cpu:.2f} s CPU a broadcast" + (
            f", PostgreSQL {db_cpu:.2f} s" if db_cpu is not None else ""
        )
        steal = load.steal_since(times)
        best = statistics.median(timings)
        enqueued = outcome["delivered"] + outcome["held"]
        per_s = enqueued / best
        ctx.log(
            f"broadcast[{backend}] N={n}: {best * 1000:.0f} ms, {outcome}, {cpu} "
            f"{load.steal_text(steal)}"
        )
        ctx.rows.append(
            Row(
                f"broadcast fan-out N={n:,}",
                backend,
                f"{best * 1000:,.0f} ms ({report.rate(per_s, ' recipients/s')})",
                f"limit_db batched {report.rate(batched, ' rows/s')}",
                per_s / batched,
                note=report.notes(
                    f"median of {len(timings)}; selected {outcome['candidates']:,}, "
                    f"delivered {outcome['delivered']:,}, held {outcome['held']:,}, "
                    f"refused {outcome['refused']}; set-up {prepared:.0f} s",
                    cpu,
                    load.steal_text(steal),
                ),
            )
        )
        if (backend, n) == BROADCAST_GOAL:
            ctx.rows.append(
                Row(
                    f"broadcast N={n:,} vs goal",
                    backend,
                    f"{best:.2f} s",
                    f"{BROADCAST_GOAL_SECONDS:.0f} s (selection + durable enqueue)",
                    best / BROADCAST_GOAL_SECONDS,
                    "≤ 1×",
                )
            )


def _steals(steals: dict[int, float | None]) -> str:
    known = {n: s for n, s in steals.items() if s is not None}
    if not known:
        return ""
    return "CPU steal " + ", ".join(
        f"{s:.0%} ({n} server{'s' if n > 1 else ''})" for n, s in sorted(known.items())
    )


def multi_instance(
    ctx: Context, backend: str, db_url: str, pop: Population, secret: str, port: int
) -> None:
    """Two server processes on one PostgreSQL vs one; unpinned, load split in two."""
    halves = [
        replace(pop, links=pop.links[0::2]),
        replace(pop, links=pop.links[1::2]),
    ]
    problems: list[str] = []
    results: dict[int, float] = {}
    steals: dict[int, float | None] = {}
    for instances in (1, 2):
        with contextlib.ExitStack() as stack:
            srvs = [
                stack.enter_context(
                    servers.rapport_server(
                        db_url,
                        ctx.workdir,
                        cpu=None,
                        secret_key=secret,
                        migrate=False,
                        port=port if i == 0 else None,
                        public_url=f"http://127.0.0.1:{port}",
                        extra_env=ctx.server_env,
                    )
                )
                for i in range(instances)
            ]
            files = [
                presign_run(ctx, half, db_url, ctx.plan.max_rate / 2, f"multi{instances}-{i}")
                for i, half in enumerate(halves)
            ]
            with ThreadPoolExecutor(2) as pool:
                futures = [
                    pool.submit(
                        load.peak,
                        srvs[i % instances].url,
                        files[i],
                        seconds=ctx.plan.seconds,
                        connections=ctx.plan.connections // 2,
                        cpu=None,
                        tool=ctx.tool,
                    )
                    for i in range(2)
                ]
                res = [f.result() for f in futures]
            results[instances] = sum(r.rate for r in res)
            steals[instances] = res[0].steal
            problems.extend(f"{instances} server(s): {r.detail}" for r in res if r.detail)
            ctx.log(f"multi[{backend}] {instances} instance(s): {results[instances]:,.0f} msg/s")
    ctx.rows.append(
        Row(
            "multi-instance: 2 servers",
            backend,
            report.rate(results[2], " msg/s"),
            f"1 server, same load {report.rate(results[1])}",
            results[2] / results[1] if results[1] else None,
            note=report.notes(
                "no CPU pinning: 2 servers + PostgreSQL + 2 wrk share the machine's cores",
                "; ".join(problems) if problems else "no non-2xx answers",
                _steals(steals),
            ),
        )
    )


def profile_send(
    ctx: Context, backend: str, db_url: str, pop: Population, secret: str, port: int
) -> None:
    session = ctx.workdir / f"profile-{backend}.pyisession"
    with servers.rapport_server(
        db_url,
        ctx.workdir,
        cpu=ctx.server_cpu,
        secret_key=secret,
        migrate=False,
        profile=session,
        port=port,
        extra_env=ctx.server_env,
    ) as srv:
        path = presign_run(ctx, pop, db_url, ctx.plan.max_rate, f"{backend}-profile")
        srv.start_profile()
        load.peak(
            srv.url,
            path,
            seconds=ctx.plan.seconds,
            connections=ctx.plan.connections,
            cpu=ctx.load_cpu,
            tool=ctx.tool,
        )
    out = HERE / f"profile-{backend}.txt"
    text = subprocess.run(
        [str(servers.BIN / "pyinstrument"), "--load", str(session), "-r", "text"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    out.write_text(text)
    ctx.log(f"profile written to {out}")


def run_backend(ctx: Context, backend: str) -> None:
    label = "sqlite" if backend == "sqlite" else "pg"
    with fresh_database(backend, ctx.workdir, ctx.pg_url, label) as db_url:
        if ctx.wants("limits", "send", "broadcast", "latency", "scale"):
            database_limits(ctx, backend, db_url)
        secret = servers.new_secret()
        # Every server of this database listens on one port (restarts keep tokens and the
        # pre-signed requests valid); a second instance shares its public URL.
        port = servers.free_port()

        def start_server(
            migrate: bool = False,
        ) -> contextlib.AbstractContextManager[servers.Server]:
            return servers.rapport_server(
                db_url,
                ctx.workdir,
                cpu=ctx.server_cpu,
                secret_key=secret,
                migrate=migrate,
                port=port,
                extra_env=ctx.server_env,
            )

        if backend == "postgres":
            from rapport_server.migrate import upgrade

            asyncio.run(upgrade(db_url))
        need_send = ctx.wants("send", "latency", "scale", "multi")
        pop: Population | None = None
        small: Small | None = None
        with start_server(migrate=True) as srv:
            if need_send:
                pop = new_population(srv.url, ctx.plan)
                peak, cpu = send_peak(ctx, backend, srv, pop, db_url, "small")
                small = Small(peak, rss=srv.rss(), rate50=peak.rate / 2)
                if ctx.wants("scale"):
                    small.list_ms = list_page_ms(srv.url, pop.links[0])
                    small.inbox_ms = inbox_pages(srv.url, pop.links[0], [pop.links[0].cid]).one_ms
                if ctx.wants("send", "scale"):
                    send_rows(ctx, backend, peak, cpu)
                if ctx.wants("send") and ctx.tool == "wrk":  # loadgen counts requests only
                    batch_peak, batch_cpu = send_peak(
                        ctx, backend, srv, pop, db_url, "batch", SEND_BATCH
                    )
                    send_rows(
                        ctx,
                        backend,
                        batch_peak,
                        batch_cpu,
                        name=f"send throughput, batches of {SEND_BATCH}",
                        connections=batch_connections(len(pop.links)),
                        unit_note="messages/s against requests/s",
                    )
                if ctx.wants("latency", "scale") and peak.rate > 0:
                    small.latency = latency(
                        ctx, srv, pop, db_url, small.rate50, f"{backend}-small-lat"
                    )
                    small.rss = srv.rss()
                    ref = bare_latency(ctx, small.rate50)
                    latency_rows(ctx, backend, small.latency, ref, small.rate50)
        if ctx.profile and pop is not None:
            profile_send(ctx, backend, db_url, pop, secret, port)
        if ctx.wants("scale") and pop is not None and small is not None:
            scale(ctx, backend, db_url, pop, small, start_server)
        if ctx.wants("broadcast"):
            with start_server() as srv:
                broadcast(ctx, backend, srv, db_url)
        if ctx.wants("multi"):
            if backend == "postgres" and pop is not None:
                multi_instance(ctx, backend, db_url, pop, secret, port)
            elif backend == "sqlite":
                ctx.rows.append(
                    pending("multi-instance", backend, "PostgreSQL only (SQLite has one writer)")
                )
        if ctx.wants("delivery"):
            from bench.delivery import delivery_rows

            ctx.rows.extend(delivery_rows(ctx, backend, db_url, port, secret))
        if ctx.wants("broadcast"):
            from bench.delivery import fanout_delivery_rows

            ctx.rows.extend(fanout_delivery_rows(ctx, backend, db_url, port, secret))
