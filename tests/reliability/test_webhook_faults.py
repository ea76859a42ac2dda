"""Family 6 (webhooks) — network faults between the delivery worker and a receiver.

The same :class:`FaultProxy` that sits between the server and PostgreSQL sits between the
webhook delivery worker and a receiver (``tests.webhook_receiver``). Messages are sent while
the proxy goes pass → latency → reset → blackhole → pass. Required: the API keeps
answering 201 (webhook trouble never leaks into sends), after healing every event reaches
the receiver within a bounded time, none is lost or dead-lettered, and each ``webhook-id``
carries the same event (redeliveries are allowed: delivery is at-least-once).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from tests.helpers import Actor, FakeClock, connect
from tests.reliability.conftest import profile, record
from tests.reliability.fault_proxy import FaultProxy
from tests.reliability.world import app_instance
from tests.webhook_receiver import WebhookReceiver

DRAIN_BOUND = 60.0


async def test_webhook_faults_lose_nothing_and_drain_after_healing(
    database_url: str, clock: FakeClock
) -> None:
    phase_seconds = profile(2, 15)
    async with WebhookReceiver() as receiver:
        with FaultProxy("127.0.0.1", receiver.port) as proxy:
            async with (
                app_instance(
                    database_url,
                    clock,
                    run_worker=True,
                    webhook_dev_mode=True,
                    webhook_retry_scale=0.0005,  # the ~3-day schedule in ~2 minutes
                    webhook_timeout=2.0,
                ) as base,
                httpx.AsyncClient(timeout=30) as http,
            ):
                shop = Actor(http=http, clock=clock, base_url=base)
                ann = Actor(http=http, clock=clock, base_url=base)
                await shop.register("business", "hooked shop")
                await ann.register("person", "Ann")
                r = await ann.post(
                    "/v1/webhook-endpoints",
                    {"url": f"http://127.0.0.1:{proxy.port}/hook", "types": ["message"]},
                )
                assert r.status_code == 201, r.text
                endpoint = r.json()["id"]
                cid = await connect(
                    shop, ann, person_grants=[{"scope": "message", "topic": "news"}]
                )
                sends: Counter[int] = Counter()
                sent: list[str] = []
                for mode, delay in (
                    ("pass", 0.0),
                    ("latency", 0.3),
                    ("reset", 0.0),
                    ("blackhole", 0.0),
                ):
                    proxy.set_mode(mode, delay=delay)  # type: ignore[arg-type]
                    until = time.monotonic() + phase_seconds
                    while time.monotonic() < until:
                        content = f"{mode}-{len(sent)}"
                        r = await shop.send(cid, "news", content)
                        sends[r.status_code] += 1
                        if r.status_code == 201:
                            sent.append(content)
                        await asyncio.sleep(0.1)
                proxy.set_mode("pass")
                healed = time.monotonic()

                def delivered() -> set[str]:
                    return {
                        x.json["data"]["object"]["payload"]
                        for x in receiver.ok()
                        if x.json["type"] == "message"
                    }

                await receiver.wait_for(lambda: delivered() >= set(sent), within=DRAIN_BOUND)
                drained = time.monotonic() - healed
                dead = await ann.get(
                    f"/v1/webhook-endpoints/{endpoint}/deliveries", params={"status": "dead"}
                )
                assert dead.status_code == 200, dead.text
                dead_items = dead.json()
                dead_items = (
                    dead_items.get("data", dead_items)
                    if isinstance(dead_items, dict)
                    else dead_items
                )
    by_id: dict[str, set[str]] = {}
    for x in receiver.ok():
        by_id.setdefault(x.id, set()).add(x.json["data"]["object"]["payload"])
    redelivered = len(receiver.ok()) - len(by_id)
    record(
        "webhook-faults",
        f"{len(sent)} events sent through pass/latency 300 ms/reset/blackhole "
        f"({phase_seconds} s each), API answers {dict(sends)}; {len(receiver.received)} "
        f"attempts reached the receiver, {len(delivered())} distinct events delivered, "
        f"0 lost, {len(dead_items)} dead, {redelivered} at-least-once redeliveries; drained "
        f"{drained:.1f} s after healing (bound {DRAIN_BOUND:.0f} s); proxy resets "
        f"{proxy.stats.resets}",
    )
    assert set(sends) == {201}, sends
    assert all(len(v) == 1 for v in by_id.values()), by_id
    assert not dead_items, dead_items
