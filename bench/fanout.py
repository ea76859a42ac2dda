"""Broadcast fan-out: one business with N connections, of which 70% permit the topic,
10% permit it but muted the business (``hold``), 5% severed, 15% granted another topic.

Four template connections (one per kind) are made through the API; the rest are clones
seeded set-based (:mod:`bench.seed`). The figure is the wall time of ``POST
/v1/broadcasts`` as the client sees it: verification, set-based selection, the consent
decision per candidate, and the durable multi-row enqueue (log, events, held messages,
state), all before the 201.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from rapport_protocol import MessageType

from bench.seed import Template
from bench.workload import WallClock
from tests.helpers import Actor, connect

TOPIC = "news"
SHARES = (("permit", 0.70), ("muted", 0.10), ("severed", 0.05), ("other", 0.15))


async def prepare_fanout(
    base_url: str, n: int, start: int
) -> tuple[Actor, list[tuple[Template, int, int, int]]]:
    """Register the broadcaster and the four templates; return the clone jobs for the rest
    (numbered from ``start``)."""
    async with httpx.AsyncClient(timeout=60) as http:

        def actor() -> Actor:
            return Actor(http=http, clock=WallClock(), base_url=base_url)

        sender = actor()
        await sender.register("business", f"Broadcaster {n}")
        await _sample_message(actor)
        jobs: list[tuple[Template, int, int, int]] = []
        remaining = n
        next_number = start
        for i, (kind, share) in enumerate(SHARES):
            count = remaining if i == len(SHARES) - 1 else round(n * share)
            remaining -= count
            person = actor()
            await person.register("person", f"Template {kind}")
            topic = "offers" if kind == "other" else TOPIC
            cid = await connect(
                sender, person, person_grants=[{"scope": "message", "topic": topic}]
            )
            if kind == "muted":
                r = await person.act(
                    "PUT", f"/v1/connections/{cid}/mute", MessageType.MUTE, {"mode": "hold"}, cid
                )
                assert r.status_code == 200, r.text
            elif kind == "severed":
                r = await person.act(
                    "POST",
                    f"/v1/connections/{cid}/sever",
                    MessageType.SEVER,
                    {"data": "retain_legal"},
                    cid,
                )
                assert r.status_code == 200, r.text
            # The template itself is one of the N connections.
            jobs.append((Template(cid, person.party_id, person.did), next_number, count - 1, 0))
            next_number += count - 1
        return sender, jobs


async def _sample_message(actor: Callable[[], Actor]) -> None:
    """One message stored between two other parties: the seeding copies its size (run
    alone, ``--only broadcast`` had no stored message to copy)."""
    shop, person = actor(), actor()
    await shop.register("business", "Sample sender")
    await person.register("person", "Sample recipient")
    cid = await connect(shop, person, person_grants=[{"scope": "message", "topic": TOPIC}])
    r = await shop.act(
        "POST",
        f"/v1/connections/{cid}/messages",
        MessageType.MESSAGE,
        {"topic": TOPIC},
        cid,
        payload="Spring sale starts tomorrow, 20% off everything (0).",
    )
    assert r.status_code == 201, r.text


async def run_broadcasts(
    base_url: str, sender: Actor, count: int
) -> tuple[list[float], dict[str, Any]]:
    """Send ``count`` broadcasts one after the other; their wall times and the last outcome."""
    timings: list[float] = []
    outcome: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=600) as http:
        sender.http = http
        await sender.login()
        for i in range(count):
            obj = sender.sign(
                MessageType.MESSAGE,
                {"topic": TOPIC},
                None,
                payload=f"Spring sale starts tomorrow, 20% off everything ({i}).",
            )
            began = time.perf_counter()
            r = await sender.post("/v1/broadcasts", {"object": obj})
            timings.append(time.perf_counter() - began)
            assert r.status_code == 201, r.text
            outcome = dict(r.json())
    refused = outcome.get("refused", {})
    outcome["refused"] = ", ".join(f"{k} {v:,}" for k, v in sorted(refused.items())) or "none"
    return timings, outcome
