"""Two `rapport serve` processes sharing one PostgreSQL database.

An event committed through instance A reaches an SSE stream held on instance B within a
second (LISTEN/NOTIFY wake-up, read from the table); tokens, rate caps and replay
protection hold across instances because they live in the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from tests.conftest import backend
from tests.e2e.processes import ServerProcess
from tests.helpers import Actor, FakeClock, connect
from tests.sse import frames

pytestmark = pytest.mark.skipif(
    backend() != "postgres", reason="several instances need PostgreSQL (SQLite is one process)"
)


@pytest.fixture
def two_instances(fresh_database_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a = ServerProcess(fresh_database_url)
    # Both answer for the same public URL, as behind one load balancer.
    env = {"RAPPORT_PUBLIC_URL": a.url}
    a.env, b = env, ServerProcess(fresh_database_url, env=env)
    a.start(migrate=True)
    b.start(migrate=False)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def test_event_committed_on_a_reaches_a_stream_on_b_within_a_second(
    two_instances: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_instances
    clock = FakeClock()
    async with httpx.AsyncClient(timeout=10) as http:
        business = Actor(http=http, clock=clock, base_url=a.url)
        person = Actor(http=http, clock=clock, base_url=a.url)
        await business.register("business", "Roastery")
        await person.register("person", "Ann")
        grants = [{"scope": "message", "topic": "news", "rate": {"count": 4, "period": "PT1H"}}]
        cid = await connect(business, person, person_grants=grants)
        person_on_b = replace(person, base_url=b.url)  # same token, other instance

        latencies: list[float] = []
        sent: dict[str, float] = {}

        async def listen() -> None:
            headers = {**person_on_b.headers, "Accept": "text/event-stream"}
            async with http.stream("GET", b.url + "/v1/events", headers=headers) as r:
                assert r.status_code == 200
                async for frame in frames(r):
                    if frame.event == "message":
                        content = frame.json["object"]["payload"]
                        latencies.append(time.monotonic() - sent[content])
                        if len(latencies) == 3:
                            return

        reader = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        for i in range(3):
            sent[f"m{i}"] = time.monotonic()
            assert (await business.send(cid, "news", f"m{i}")).status_code == 201
            await asyncio.sleep(0.2)
        await asyncio.wait_for(reader, 10)
        print(f"A→B stream latency: max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 1.0

        # The rate cap (4 per hour) counts sends made through either instance.
        business_on_b = replace(business, base_url=b.url)
        r = await business_on_b.send(cid, "news", "m3")
        assert r.status_code == 201, r.text
        business.chains = dict(business_on_b.chains)
        r = await business.send(cid, "news", "m4")
        assert r.status_code == 429 and r.json()["code"] == "rate_exceeded"

        # Replay protection: an object accepted by A is refused by B.
        from rapport_protocol import MessageType as M

        obj = person.sign(M.MUTE, {"mode": "hold"}, cid)
        first = await http.put(
            a.url + f"/v1/connections/{cid}/mute", json={"object": obj}, headers=person.headers
        )
        again = await http.put(
            b.url + f"/v1/connections/{cid}/mute", json={"object": obj}, headers=person.headers
        )
        assert first.status_code == 200, first.text
        assert again.status_code == 409 and again.json()["code"] == "replayed"
