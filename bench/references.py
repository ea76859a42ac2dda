"""The references every figure is compared with, measured in the same run: bare HTTP,
crypto and the database alone."""

from __future__ import annotations

import json

from bench import load, report, servers
from bench.context import Context
from bench.limits import limit_crypto, limit_db, on_cpu, typical_message
from bench.report import Row


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
            note=report.notes(
                f"{res.tool}, {ctx.plan.connections} connections; p99 {res.p99_ms:.1f} ms",
                res.steal_note,
            ),
        )
    )
    ctx.log(f"limit_http: {res.rate:,.0f} req/s {res.steal_note}")
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
        ctx.refs[key] = single.rate
        ctx.refs[key + "/100"] = batched.rate
        ctx.refs[key + "/p99_ms"] = single.p99_ms
        engine = "WAL, synchronous=FULL" if backend == "sqlite" else "asyncpg, defaults"
        ctx.rows.append(
            Row(
                "limit_db (1 row/commit)",
                backend,
                report.rate(single.rate, " rows/s"),
                f"server engine ({engine})",
                note=(
                    "INSERT + COMMIT of a message-sized row; one commit took "
                    f"p50 {single.p50_ms:.1f} ms, p99 {single.p99_ms:.1f} ms"
                ),
            )
        )
        ctx.rows.append(
            Row(
                "limit_db (100 rows/commit)",
                backend,
                report.rate(batched.rate, " rows/s"),
                f"server engine ({engine})",
                batched.rate / single.rate,
                note="ratio: vs 1 row/commit",
            )
        )
        ctx.log(
            f"limit_db[{backend}]: {single.rate:,.0f}/s single (commit p99 "
            f"{single.p99_ms:.1f} ms), {batched.rate:,.0f}/s batched"
        )
    return ctx.refs[key], ctx.refs[key + "/100"]
