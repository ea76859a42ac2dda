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
import contextlib
import datetime as dt
import os
import platform
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from bench import disk, load, report, servers
from bench.context import BENCHMARKS, FULL, QUICK, Context
from bench.databases import DEFAULT_PG, pg_reachable
from bench.figures import run_backend
from bench.references import crypto, limit_http
from bench.report import pending


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
    parser.add_argument(
        "--fanout",
        help="broadcast sizes, comma-separated (default 1000,10000, and 100000 on "
        "PostgreSQL; quick: smaller)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/load to CPUs")
    parser.add_argument("--tool", choices=("wrk", "loadgen"), help="peak load tool")
    parser.add_argument("--profile", action="store_true", help="profile the send path too")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the table into BENCHMARKS.md (its results block)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--disk-probe",
        type=float,
        default=disk.PROBE_RATE,
        metavar="SYNCS_PER_S",
        help=f"fsync probe beside the latency runs (default {disk.PROBE_RATE:g}/s; 0: none)",
    )
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
    if args.fanout:
        plan = replace(plan, fanout=tuple(int(n) for n in args.fanout.split(",")), fanout_goal={})
    available = servers.cpus()
    pin = not args.no_pin and len(available) >= 2
    tool = args.tool or ("wrk" if load.have_wrk() else "loadgen")
    backends = [b.strip() for b in args.db.split(",") if b.strip()]
    started = dt.datetime.now(dt.UTC)
    failed = False
    t0 = time.monotonic()
    times = load.cpu_times()
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
            disk_probe=args.disk_probe,
            server_env=dict(kv.split("=", 1) for kv in args.server_env),
            log=lambda m: print(f"[{time.monotonic() - t0:4.0f} s] {m}", flush=True),
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
            try:
                run_backend(ctx, backend)
            except Exception as exc:  # keep the rows measured so far; say what broke
                traceback.print_exc()
                first = (str(exc).splitlines() or [""])[0][:160]
                ctx.rows.append(pending("(aborted)", backend, f"{type(exc).__name__}: {first}"))
                failed = True
    elapsed = time.monotonic() - t0
    steal = load.steal_since(times)
    table = report.render(ctx.rows)
    header = (
        f"Run {started:%Y-%m-%d %H:%M} UTC, {'quick' if args.quick else 'full'} mode, "
        f"{elapsed:.0f} s, git {_git_rev()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
        + (", server on CPU 0 / load on CPU 1" if pin else ", unpinned")
        + f", peak load tool {tool}"
        + (f", {load.steal_text(steal)} over the run" if steal is not None else "")
        + "".join(f", {kv}" for kv in args.server_env)
    )
    print()
    print(header)
    print()
    print(table)
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{table}\n")
    if args.record:
        report.record(servers.ROOT / "BENCHMARKS.md", header, table)
    return 1 if failed else 0
