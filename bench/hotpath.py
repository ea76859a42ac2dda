"""CPU cost of one send, in process: the A/B measure for hot-path changes.

The app runs in this process behind ``httpx.ASGITransport`` (no sockets, no uvicorn), with
``concurrency`` sends in flight so the write batcher groups them as under load. The figure
is process CPU time (all threads, including the SQLite thread) per accepted message, which
other load on a shared machine disturbs far less than throughput.

    python -m bench.hotpath --db sqlite --messages 3000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from rapport_protocol import MessageType

from bench.databases import DEFAULT_PG, fresh_database
from bench.workload import Population, populate


async def _measure(
    url: str, messages: int, links: int, concurrency: int, rounds: int
) -> list[float]:
    from rapport_server.app import create_app
    from rapport_server.config import Settings

    base = "http://rapport.test"
    app = create_app(
        Settings(database_url=url, public_url=base, migrate_on_start=True, log_level="warning")
    )
    for name in ("httpx", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, timeout=60) as http:
            pop: Population = await populate(base, http, businesses=2, links=links)
            results = []
            for _ in range(rounds):
                per_link = max(1, messages // links)
                bodies = [
                    [
                        link.sender.sign(
                            MessageType.MESSAGE,
                            {"topic": "orders"},
                            link.cid,
                            payload=f"Your order #{k} has shipped.",
                        )
                        for k in range(per_link)
                    ]
                    for link in pop.links
                ]
                gate = asyncio.Semaphore(concurrency)

                async def chain(
                    i: int, bodies: list[list[dict[str, object]]], gate: asyncio.Semaphore
                ) -> int:
                    link = pop.links[i]
                    ok = 0
                    for obj in bodies[i]:
                        async with gate:
                            r = await link.sender.post(
                                f"/v1/connections/{link.cid}/messages", {"object": obj}
                            )
                        ok += r.status_code == 201
                    return ok

                cpu0 = time.process_time()
                accepted = sum(
                    await asyncio.gather(*(chain(i, bodies, gate) for i in range(len(pop.links))))
                )
                cpu = time.process_time() - cpu0
                results.append(cpu * 1000 / max(1, accepted))
            return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--links", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(args.db, Path(tmp), args.pg_url, "hotpath") as url,
    ):
        results = asyncio.run(
            _measure(url, args.messages, args.links, args.concurrency, args.rounds)
        )
    print(
        f"{args.db}: CPU ms per accepted message (client included): "
        + ", ".join(f"{r:.2f}" for r in results)
        + f"; median {statistics.median(results):.2f}"
    )


if __name__ == "__main__":
    main()
