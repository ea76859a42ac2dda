"""A small HTTP/1.1 load generator for pre-signed requests (run as its own process).

``--rate R``: open loop — request *i* is due at ``start + i/R`` whatever happened before,
and its latency is measured from that due time, so a stalled server shows up in the tail
instead of silently slowing the load (no coordinated omission). ``--warmup W``: the first
W seconds at that rate are sent and answered but not counted. Without ``--rate``:
closed loop, each connection sends its next request when the previous one is answered
(the fallback when wrk is not installed).

The request file and the chain discipline are the same as ``bench/send.lua``: one request
in flight per chain, a chain's next message only after a 2xx.

    python -m bench.loadgen --url http://127.0.0.1:8000 --file reqs.tsv --rate 500 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Requests:
    """The request file, as raw HTTP/1.1 bytes per chain."""

    queues: dict[str, deque[bytes]]
    order: list[bytes]
    ready: deque[str] = field(default_factory=deque)


def load_requests(path: str, host: str) -> Requests:
    queues: dict[str, deque[bytes]] = {}
    order: list[bytes] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            chain, target, auth, body = line.rstrip("\n").split("\t", 3)
            data = body.encode()
            head = (
                f"POST {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
                f"Content-Type: application/json\r\nX-Request-Id: {chain}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            request = head + data
            queues.setdefault(chain, deque()).append(request)
            order.append(request)
    return Requests(queues, order, deque(queues))


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request and read its response; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    starved: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    dues: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)
    """Latencies of the warm-up's requests (not counted in ``latencies``)."""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank ``q``-th percentile (``q`` in 0-100); NaN of nothing."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reqs = load_requests(args.file, f"{host}:{port}")
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(args.connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    tally = Tally()
    loop = asyncio.get_running_loop()
    rr = 0

    def next_request() -> tuple[str | None, bytes | None]:
        nonlocal rr
        if args.mode == "any":
            request = reqs.order[rr % len(reqs.order)]
            rr += 1
            return None, request
        if not reqs.ready:
            return None, None
        chain = reqs.ready.popleft()
        return chain, reqs.queues[chain].popleft()

    def settle(chain: str | None, status: int, started: float) -> None:
        if started < measured:
            tally.warmup.append(loop.time() - started)
        else:
            tally.latencies.append(loop.time() - started)
            tally.dues.append(started)
        if 200 <= status < 300:
            tally.ok += 1
            if chain is not None and reqs.queues[chain]:
                reqs.ready.append(chain)
        else:
            tally.failed += 1
            tally.statuses[status] += 1

    async def one(due: float) -> None:
        chain, request = next_request()
        if request is None:
            tally.starved += 1
            return
        reader, writer = await pool.get()
        try:
            status = await exchange(reader, writer, request)
        finally:
            pool.put_nowait((reader, writer))
        settle(chain, status, due)

    begin = loop.time() + 0.1
    # Open loop: ``--warmup`` seconds at the rate first, answered but not counted.
    start = measured = begin + (args.warmup if args.rate else 0.0)
    deadline = start + args.duration
    tasks: set[asyncio.Task[None]] = set()
    if args.rate:
        start = begin
        total = int(args.rate * (args.warmup + args.duration))
        i = 0
        while i < total:
            now = loop.time()
            while i < total and start + i / args.rate <= now:
                task = asyncio.create_task(one(start + i / args.rate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, start + i / args.rate - loop.time()))
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    else:

        async def worker() -> None:
            while loop.time() < deadline:
                chain, request = next_request()
                if request is None:
                    tally.starved += 1
                    await asyncio.sleep(0.001)
                    continue
                reader, writer = await pool.get()
                began = loop.time()
                try:
                    status = await exchange(reader, writer, request)
                finally:
                    pool.put_nowait((reader, writer))
                settle(chain, status, began)

        await asyncio.sleep(max(0.0, start - loop.time()))
        await asyncio.gather(*(worker() for _ in range(args.connections)))
    elapsed = loop.time() - measured
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return {
        "ok": tally.ok,
        "failed": tally.failed,
        "starved": tally.starved,
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "seconds": elapsed,
        "rate": args.rate,
        "p50_ms": percentile(tally.latencies, 50) * 1000,
        "p99_ms": percentile(tally.latencies, 99) * 1000,
        "max_ms": max(tally.latencies, default=float("nan")) * 1000,
        "warmup_p99_ms": percentile(tally.warmup, 99) * 1000 if tally.warmup else None,
        "measured_at": time.time() - (loop.time() - measured),
        "timeline": [
            (due - measured, latency)
            for due, latency in zip(tally.dues, tally.latencies, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s; 0 = closed loop")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--mode", choices=("chain", "any"), default="chain")
    parser.add_argument(
        "--warmup", type=float, default=0.0, help="open loop: seconds not counted, first"
    )
    parser.add_argument(
        "--timeline",
        help="write each counted request's due time (s from the measured start, given in "
        "the first line) and latency (ms) here",
    )
    args = parser.parse_args(argv)
    started = time.time()
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    result["started"] = started
    timeline = result.pop("timeline")
    if args.timeline:
        assert isinstance(timeline, list)
        with open(args.timeline, "w", encoding="utf-8") as f:
            f.write(f"# offsets from {result['measured_at']:.3f} (Unix time)\n")
            f.writelines(f"{due:.6f}\t{latency * 1000:.3f}\n" for due, latency in timeline)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
