"""``python -m bench``: run the benchmarks and print one table.

python -m bench                      # everything, SQLite and (if reachable) PostgreSQL
python -m bench --quick              # small sizes and short runs: a smoke test
python -m bench --only send,latency  # some benchmarks (references they need come along)
python -m bench --db sqlite          # one backend
python -m bench --markdown out.md    # also write the table (with run details) to a file
python -m bench --profile            # also profile the send path (bench/profile-<db>.txt)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import httpx

from bench import load, report, seed, servers
from bench.databases import DEFAULT_PG, fresh_database, pg_reachable
from bench.limits import limit_crypto, limit_db, on_cpu, typical_message
from bench.report import Row, pending
from bench.workload import Link, Population, populate, presign, resync_chains

T = TypeVar("T")
BENCHMARKS = ("limits", "send", "latency", "scale", "broadcast", "multi", "delivery")
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run."""

    seconds: float
    links: int
    connections: int
    businesses: int
    max_rate: float
    """Pre-signed messages are sized for this peak rate (a faster server runs out: noted)."""
    scale: dict[str, tuple[int, int]]
    """backend -> (seeded connections, messages per seeded connection)."""
    fanout: tuple[int, ...]
    broadcasts: int
    limit_seconds: float


FULL = Plan(
    seconds=10,
    links=256,
    connections=64,
    businesses=4,
    max_rate=3000,
    scale={"sqlite": (100_000, 5), "postgres": (200_000, 5)},
    fanout=(1_000, 10_000),
    broadcasts=3,
    limit_seconds=3,
)
QUICK = Plan(
    seconds=3,
    links=64,
    connections=16,
    businesses=2,
    max_rate=3000,
    scale={"sqlite": (5_000, 5), "postgres": (5_000, 5)},
    fanout=(300,),
    broadcasts=2,
    limit_seconds=1,
)


@dataclass
class Small:
    """The small-database send figures, which the scale figures are compared with."""

    peak: load.LoadResult
    latency: load.LoadResult | None = None
    rss: int = 0
    rate50: float = 0.0


@dataclass
class Context:
    plan: Plan
    selected: set[str]
    workdir: Path
    pg_url: str
    server_cpu: int | None
    load_cpu: int | None
    tool: str
    profile: bool
    rows: list[Row] = field(default_factory=list)
    refs: dict[str, float] = field(default_factory=dict)
    seed_next: int = 1
    server_env: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def wants(self, *names: str) -> bool:
        return any(n in self.selected for n in names)


def _run_http(pop: Population, fn: Callable[[Population], Awaitable[T]]) -> T:
    """Run ``fn`` on a fresh event loop with a fresh HTTP client given to every actor."""

    async def go() -> T:
        async with httpx.AsyncClient(timeout=60) as http:
            pop.http = http
            for business in pop.businesses:
                business.http = http
            for link in pop.links:
                link.sender.http = http
                link.recipient.http = http
            return await fn(pop)

    return asyncio.run(go())


def _new_population(url: str, plan: Plan) -> Population:
    async def go() -> Population:
        async with httpx.AsyncClient(timeout=60) as http:
            return await populate(url, http, businesses=plan.businesses, links=plan.links)

    return asyncio.run(go())


def _per_link(rate: float, seconds: float, links: int) -> int:
    return max(2, math.ceil(rate * seconds * 1.2 / links) + 1)


def _presign(ctx: Context, pop: Population, db_url: str, rate: float, name: str) -> Path:
    # Requests a load tool left in flight at its end still commit: let them, then read the
    # chain heads back.
    time.sleep(1.0)
    asyncio.run(resync_chains(pop, db_url))
    _run_http(pop, _refresh)
    path = ctx.workdir / f"{name}.tsv"
    presign(pop, _per_link(rate, ctx.plan.seconds, len(pop.links)), path)
    return path


async def _refresh(pop: Population) -> None:
    await asyncio.gather(*(b.login() for b in pop.businesses))


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


# --- references -------------------------------------------------------------------------


def limit_http(ctx: Context) -> float:
    """Bare FastAPI endpoint, same uvicorn settings, same tool and requests: requests/s."""
    if "limit_http" in ctx.refs:
        return ctx.refs["limit_http"]
    path = ctx.workdir / "bare.tsv"
    lines = []
    for i in range(2000):
        body = json.dumps({"object": typical_message().to_json()}, separators=(",", ":"))
        cid = f"{i:032x}"
        lines.append(f"{cid}\t/v1/connections/{cid}/messages\tBearer x\t{body}\n")
    path.write_text("".join(lines))
    with servers.bare_server(ctx.workdir, cpu=ctx.server_cpu) as bare:
        res = load.peak(
            bare.url,
            path,
            seconds=ctx.plan.seconds,
            connections=ctx.plan.connections,
            mode="any",
            cpu=ctx.load_cpu,
            tool=ctx.tool,
        )
    ctx.refs["limit_http"] = res.rate
    ctx.rows.append(
        Row(
            "limit_http",
            "—",
            report.rate(res.rate, " req/s"),
            "bare FastAPI POST, 1 worker",
            None,
            note=f"{res.tool}, {ctx.plan.connections} connections; p99 {res.p99_ms:.1f} ms",
        )
    )
    ctx.log(f"limit_http: {res.rate:,.0f} req/s")
    return res.rate


def crypto(ctx: Context) -> float:
    if "limit_crypto" not in ctx.refs:
        with on_cpu(ctx.server_cpu):
            ctx.refs["limit_crypto"] = limit_crypto(ctx.plan.limit_seconds)
        ctx.rows.append(
            Row(
                "limit_crypto",
                "—",
                report.rate(ctx.refs["limit_crypto"], " msg/s/core"),
                "RFC 8785 + Ed25519 verify (PyNaCl)",
                note="one core, typical message",
            )
        )
        ctx.log(f"limit_crypto: {ctx.refs['limit_crypto']:,.0f}/s")
    return ctx.refs["limit_crypto"]


def database_limits(ctx: Context, backend: str, url: str) -> tuple[float, float]:
    key = f"limit_db/{backend}"
    if key not in ctx.refs:
        with on_cpu(ctx.server_cpu):
            single = limit_db(url, ctx.plan.limit_seconds, batch=1)
            batched = limit_db(url, ctx.plan.limit_seconds, batch=100)
        ctx.refs[key] = single
        ctx.refs[key + "/100"] = batched
        engine = "WAL, synchronous=FULL" if backend == "sqlite" else "asyncpg, defaults"
        ctx.rows.append(
            Row(
                "limit_db (1 row/commit)",
                backend,
                report.rate(single, " rows/s"),
                f"server engine ({engine})",
                note="INSERT + COMMIT of a message-sized row",
            )
        )
        ctx.rows.append(
            Row(
                "limit_db (100 rows/commit)",
                backend,
                report.rate(batched, " rows/s"),
                f"server engine ({engine})",
                batched / single,
                note="ratio: vs 1 row/commit",
            )
        )
        ctx.log(f"limit_db[{backend}]: {single:,.0f}/s single, {batched:,.0f}/s batched")
    return ctx.refs[key], ctx.refs[key + "/100"]


# --- figures ----------------------------------------------------------------------------


def send_peak(
    ctx: Context, backend: str, srv: servers.Server, pop: Population, db_url: str, label: str
) -> tuple[load.LoadResult, float]:
    """Peak send throughput; returns the result and the server CPU ms per message."""
    path = _presign(ctx, pop, db_url, ctx.plan.max_rate, f"{backend}-{label}-peak")
    cpu0 = srv.cpu_seconds()
    res = load.peak(
        srv.url,
        path,
        seconds=ctx.plan.seconds,
        connections=ctx.plan.connections,
        cpu=ctx.load_cpu,
        tool=ctx.tool,
    )
    cpu_ms = (srv.cpu_seconds() - cpu0) * 1000 / max(1, res.ok)
    ctx.log(
        f"send[{backend}/{label}]: {res.rate:,.0f} msg/s, p99 {res.p99_ms:.0f} ms, "
        f"{cpu_ms:.2f} CPU ms/msg {res.detail}"
    )
    return res, cpu_ms


def send_rows(ctx: Context, backend: str, res: load.LoadResult, cpu_ms: float) -> None:
    http = limit_http(ctx)
    crypto_rate = crypto(ctx)
    _, batched = ctx.refs[f"limit_db/{backend}"], ctx.refs[f"limit_db/{backend}/100"]
    note = (
        f"{res.tool}, {ctx.plan.connections} conns, {ctx.plan.links} chains; "
        f"server {cpu_ms:.2f} CPU ms/msg"
    )
    if res.detail:
        note += f"; {res.detail}"
    ctx.rows.append(
        Row(
            "send throughput",
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
            "send throughput",
            backend,
            report.rate(res.rate, " msg/s"),
            f"min(crypto, db batched) = {which} {report.rate(floor)}",
            res.rate / floor,
            "≥ 0.8×",
        )
    )


def latency(
    ctx: Context, srv: servers.Server, pop: Population, db_url: str, rate: float, name: str
) -> load.LoadResult:
    path = _presign(ctx, pop, db_url, rate, name)
    res = load.fixed_rate(
        srv.url,
        path,
        rate=rate,
        seconds=ctx.plan.seconds,
        connections=ctx.plan.connections,
        cpu=ctx.load_cpu,
    )
    ctx.log(f"latency[{name}] @ {rate:,.0f}/s: p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms")
    return res


def bare_latency(ctx: Context, rate: float) -> load.LoadResult:
    path = ctx.workdir / "bare.tsv"
    if not path.exists():
        limit_http(ctx)
    with servers.bare_server(ctx.workdir, cpu=ctx.server_cpu) as bare:
        return load.fixed_rate(
            bare.url,
            path,
            rate=rate,
            seconds=ctx.plan.seconds,
            connections=ctx.plan.connections,
            mode="any",
            cpu=ctx.load_cpu,
        )


def latency_rows(
    ctx: Context, backend: str, res: load.LoadResult, ref: load.LoadResult, rate: float
) -> None:
    note = f"open loop at {rate:,.0f}/s (50% of peak), {ctx.plan.seconds:g} s"
    if res.detail:
        note += f"; {res.detail}"
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
        )
    )


async def _seed(db_url: str, jobs: list[tuple[seed.Template, int, int, int]]) -> dict[str, int]:
    """Run clone jobs (template, start, count, messages) in one transaction."""
    from rapport_server.db import create_engine, writer_engine

    engine = create_engine(db_url)
    try:
        async with writer_engine(engine).begin() as conn:
            obj, payload = await seed.sample_message(conn)
            for template, start, count, messages in jobs:
                await seed.clone(
                    conn,
                    template,
                    start=start,
                    count=count,
                    messages=messages,
                    message_object=obj,
                    payload=payload,
                )
        async with writer_engine(engine).begin() as conn:
            await seed.analyze(conn)
            return await seed.table_counts(conn)
    finally:
        await engine.dispose()


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
    counts = asyncio.run(_seed(db_url, [(_template(pop.links[0]), start, conns, per)]))
    seeded = time.monotonic() - began
    ctx.log(f"seeded[{backend}] in {seeded:.0f} s: {counts}")
    sizes = (
        f"{counts['connections']:,} connections, {counts['log_entries']:,} log entries, "
        f"{counts['events']:,} events (seeded in {seeded:.0f} s)"
    )
    with start_server() as srv:
        res, cpu_ms = send_peak(ctx, backend, srv, pop, db_url, "scale")
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
            "≥ 0.8×",
            f"{sizes}; {cpu_ms:.2f} CPU ms/msg" + (f"; {res.detail}" if res.detail else ""),
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
                note=f"same rate {small.rate50:,.0f}/s; p50 {lat.p50_ms:.1f} ms"
                + (f"; {lat.detail}" if lat.detail else ""),
            )
        )
    ctx.rows.append(
        Row(
            "scale: server RSS",
            backend,
            _mb(rss),
            f"small-db RSS {_mb(small.rss)}",
            rss / small.rss if small.rss else None,
            note="after the load",
        )
    )


def broadcast(ctx: Context, backend: str, srv: servers.Server, db_url: str) -> None:
    from bench.fanout import prepare_fanout, run_broadcasts

    _, batched = ctx.refs[f"limit_db/{backend}"], ctx.refs[f"limit_db/{backend}/100"]
    for n in ctx.plan.fanout:
        start = ctx.seed_next
        ctx.seed_next += n
        began = time.monotonic()
        sender, jobs = asyncio.run(prepare_fanout(srv.url, n, start))
        asyncio.run(_seed(db_url, jobs))
        prepared = time.monotonic() - began
        timings, outcome = asyncio.run(run_broadcasts(srv.url, sender, ctx.plan.broadcasts))
        best = statistics.median(timings)
        enqueued = outcome["delivered"] + outcome["held"]
        per_s = enqueued / best
        ctx.log(f"broadcast[{backend}] N={n}: {best * 1000:.0f} ms, {outcome}")
        ctx.rows.append(
            Row(
                f"broadcast fan-out N={n:,}",
                backend,
                f"{best * 1000:,.0f} ms ({report.rate(per_s, ' recipients/s')})",
                f"limit_db batched {report.rate(batched, ' rows/s')}",
                per_s / batched,
                note=(
                    f"median of {len(timings)}; selected {outcome['candidates']:,}, "
                    f"delivered {outcome['delivered']:,}, held {outcome['held']:,}, "
                    f"refused {outcome['refused']}; set-up {prepared:.0f} s"
                ),
            )
        )


def multi_instance(
    ctx: Context, backend: str, db_url: str, pop: Population, secret: str, port: int
) -> None:
    """Two server processes on one PostgreSQL vs one; unpinned, load split in two."""
    halves = [
        replace(pop, links=pop.links[0::2]),
        replace(pop, links=pop.links[1::2]),
    ]
    results: dict[int, float] = {}
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
                _presign(ctx, half, db_url, ctx.plan.max_rate / 2, f"multi{instances}-{i}")
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
            ctx.log(f"multi[{backend}] {instances} instance(s): {results[instances]:,.0f} msg/s")
    ctx.rows.append(
        Row(
            "multi-instance: 2 servers",
            backend,
            report.rate(results[2], " msg/s"),
            f"1 server, same load {report.rate(results[1])}",
            results[2] / results[1] if results[1] else None,
            note="no CPU pinning: 2 servers + PostgreSQL + 2 wrk share the machine's cores",
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
        path = _presign(ctx, pop, db_url, ctx.plan.max_rate, f"{backend}-profile")
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
                pop = _new_population(srv.url, ctx.plan)
                peak, cpu_ms = send_peak(ctx, backend, srv, pop, db_url, "small")
                small = Small(peak, rss=srv.rss(), rate50=peak.rate / 2)
                if ctx.wants("send", "scale"):
                    send_rows(ctx, backend, peak, cpu_ms)
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

            with start_server() as srv:
                ctx.rows.extend(delivery_rows(ctx, backend, srv, db_url))


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=servers.ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
        print(f"work directory (kept): {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke test")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("RAPPORT_BENCH_PG_URL", DEFAULT_PG),
        help="admin URL of the PostgreSQL server (a fresh database is created and dropped)",
    )
    parser.add_argument("--seconds", type=float, help="duration of each load run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/load to CPUs")
    parser.add_argument("--tool", choices=("wrk", "loadgen"), help="peak load tool")
    parser.add_argument("--profile", action="store_true", help="profile the send path too")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Rapport servers (experiments), e.g. RAPPORT_MAX_BATCH=256",
    )
    args = parser.parse_args(argv)
    selected = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = selected - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    plan = QUICK if args.quick else FULL
    if args.seconds:
        plan = replace(plan, seconds=args.seconds)
    available = servers.cpus()
    pin = not args.no_pin and len(available) >= 2
    tool = args.tool or ("wrk" if load.have_wrk() else "loadgen")
    backends = [b.strip() for b in args.db.split(",") if b.strip()]
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    with _workdir(args.keep) as workdir:
        ctx = Context(
            plan=plan,
            selected=selected,
            workdir=workdir,
            pg_url=args.pg_url,
            server_cpu=available[0] if pin else None,
            load_cpu=available[1] if pin else None,
            tool=tool,
            profile=args.profile,
            server_env=dict(kv.split("=", 1) for kv in args.server_env),
        )
        if ctx.wants("limits"):
            crypto(ctx)
            limit_http(ctx)
        for backend in backends:
            if backend == "postgres" and not pg_reachable(args.pg_url):
                ctx.rows.append(
                    pending("all", backend, f"PostgreSQL not reachable at {args.pg_url}")
                )
                continue
            run_backend(ctx, backend)
    elapsed = time.monotonic() - t0
    table = report.render(ctx.rows)
    header = (
        f"Run {started:%Y-%m-%d %H:%M} UTC, {'quick' if args.quick else 'full'} mode, "
        f"{elapsed:.0f} s, git {_git_rev()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
        + (", server on CPU 0 / load on CPU 1" if pin else ", unpinned")
        + f", peak load tool {tool}"
        + "".join(f", {kv}" for kv in args.server_env)
    )
    print()
    print(header)
    print()
    print(table)
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{table}\n")
    return 0
