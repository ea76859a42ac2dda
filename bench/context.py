"""What one benchmark run knows: its plan (sizes, durations), the selection, the references
measured so far, the result rows, and helpers to drive the API-made population."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from bench import load
from bench.disk import PROBE_RATE
from bench.report import Row
from bench.workload import Population, populate, presign, presign_batches, resync_chains

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
    fanout_goal: dict[str, int]
    """backend -> the broadcast size the issue sets a time goal for (run after ``fanout``)."""
    broadcasts: int
    limit_seconds: float
    warmup: float = 1.0
    """Seconds of an open-loop (latency) run at its rate before the measured ``seconds``:
    not counted (new connections, first requests on each), its p99 noted."""


FULL = Plan(
    seconds=10,
    links=256,
    connections=64,
    businesses=4,
    max_rate=3000,
    scale={"sqlite": (100_000, 5), "postgres": (1_000_000, 5)},
    fanout=(1_000, 10_000),
    fanout_goal={"postgres": 100_000},
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
    fanout_goal={},
    broadcasts=2,
    limit_seconds=1,
    warmup=0.5,
)


@dataclass
class Small:
    """The small-database send figures, which the scale figures are compared with."""

    peak: load.LoadResult
    latency: load.LoadResult | None = None
    rss: int = 0
    rate50: float = 0.0
    list_ms: float | None = None
    """Median time of a page of the busiest sender's connections."""
    inbox_ms: float | None = None
    """Time of a page of its inbox filtered to one connection."""


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
    disk_probe: float = PROBE_RATE
    """Syncs a second of the disk probe beside the latency runs (bench/disk.py); 0: none."""
    log: Callable[[str], None] = print

    def wants(self, *names: str) -> bool:
        return any(n in self.selected for n in names)


def run_http(pop: Population, fn: Callable[[Population], Awaitable[T]]) -> T:
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


def new_population(url: str, plan: Plan) -> Population:
    async def go() -> Population:
        async with httpx.AsyncClient(timeout=60) as http:
            return await populate(url, http, businesses=plan.businesses, links=plan.links)

    return asyncio.run(go())


def _per_link(rate: float, seconds: float, links: int) -> int:
    return max(2, math.ceil(rate * seconds * 1.2 / links) + 1)


def presign_run(
    ctx: Context,
    pop: Population,
    db_url: str,
    rate: float,
    name: str,
    batch: int = 0,
    extra_seconds: float = 0.0,
) -> Path:
    """Requests for a run at up to ``rate`` messages/s: single sends, or ``batch``
    messages per ``POST /v1/messages/batch``."""
    # Requests a load tool left in flight at its end still commit: let them, then read the
    # chain heads back.
    time.sleep(1.0)
    asyncio.run(resync_chains(pop, db_url))
    run_http(pop, _refresh)
    path = ctx.workdir / f"{name}.tsv"
    per_link = _per_link(rate, ctx.plan.seconds + extra_seconds, len(pop.links))
    began = time.monotonic()
    n = presign_batches(pop, per_link, batch, path) if batch else presign(pop, per_link, path)
    ctx.log(f"presigned {n:,} messages for {name} in {time.monotonic() - began:.1f} s")
    return path


async def _refresh(pop: Population) -> None:
    await asyncio.gather(*(b.login() for b in pop.businesses))


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"
