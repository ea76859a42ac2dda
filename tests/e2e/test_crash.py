"""kill -9 during a burst of sends: nothing acknowledged is lost, nothing is doubled.

Five connections send concurrently (each its own hash chain, each send with an
Idempotency-Key) while the server process is killed with SIGKILL. After a restart the
client retries what was in flight with the *same* object and key, as the SDK does. Then
every acknowledged message reaches the webhook receiver under exactly one webhook-id, and
nothing that was not acknowledged shows up.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from rapport_protocol import MessageType as M

from tests.e2e.processes import ServerProcess
from tests.helpers import Actor, FakeClock, connect
from tests.webhook_receiver import WebhookReceiver

ENV = {"RAPPORT_WEBHOOK_DEV_MODE": "true", "RAPPORT_WEBHOOK_RETRY_SCALE": "0.00002"}
CONNECTIONS = 5
PER_CONNECTION = 60


async def test_kill_9_during_a_burst_loses_nothing_acknowledged(
    fresh_database_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(fresh_database_url, env=ENV, log_path=tmp_path / "server.log")
    server.start()
    clock = FakeClock()
    try:
        async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=5) as http:
            business = Actor(http=http, clock=clock, base_url=server.url)
            await business.register("business", "Roastery")
            cids = []
            for i in range(CONNECTIONS):
                person = Actor(http=http, clock=clock, base_url=server.url)
                await person.register("person", f"p{i}")
                r = await person.post(
                    "/v1/webhook-endpoints", {"url": receiver.url, "types": ["message"]}
                )
                assert r.status_code == 201, r.text
                cids.append(
                    await connect(
                        business, person, person_grants=[{"scope": "message", "topic": "news"}]
                    )
                )

            acknowledged: set[str] = set()
            third = asyncio.Event()
            in_flight: dict[str, tuple[dict[str, Any], str]] = {}

            async def burst(cid: str) -> None:
                for n in range(PER_CONNECTION):
                    obj = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload=f"{cid}/{n}")
                    key = secrets.token_hex(8)
                    in_flight[cid] = (obj, key)
                    try:
                        r = await http.post(
                            f"{server.url}/v1/connections/{cid}/messages",
                            json={"object": obj},
                            headers={**business.headers, "Idempotency-Key": key},
                        )
                    except httpx.TransportError:
                        return  # the server died under us; this one is in doubt
                    assert r.status_code == 201, r.text
                    acknowledged.add(obj["id"])
                    del in_flight[cid]
                    if len(acknowledged) >= CONNECTIONS * PER_CONNECTION // 3:
                        third.set()

            tasks = [asyncio.create_task(burst(cid)) for cid in cids]
            await third.wait()
            await asyncio.to_thread(server.kill9)
            await asyncio.gather(*tasks)
            assert len(acknowledged) < CONNECTIONS * PER_CONNECTION  # killed mid-burst
            killed_with = len(acknowledged)

            await asyncio.to_thread(server.start, migrate=False)
            await business.login()
            for cid, (obj, key) in in_flight.items():  # retry in-doubt sends, same key
                r = await http.post(
                    f"{server.url}/v1/connections/{cid}/messages",
                    json={"object": obj},
                    headers={**business.headers, "Idempotency-Key": key},
                )
                assert r.status_code == 201, r.text
                acknowledged.add(obj["id"])

            def delivered_ids() -> dict[str, set[str]]:
                by_object: dict[str, set[str]] = defaultdict(set)
                for got in receiver.ok():
                    by_object[got.json["data"]["object"]["id"]].add(got.id)
                return by_object

            await receiver.wait_for(lambda: acknowledged <= set(delivered_ids()), within=60)
            await asyncio.sleep(1)
            by_object = delivered_ids()
            print(
                f"kill -9 after {killed_with} acknowledged sends; {len(in_flight)} in doubt "
                f"retried; {len(acknowledged)} acknowledged, {len(by_object)} delivered, "
                f"{len(receiver.ok())} deliveries"
            )
            assert set(by_object) == acknowledged  # none lost, none invented
            assert all(len(ids) == 1 for ids in by_object.values())  # one webhook-id each
            # Each connection's log is a gap-free chain of exactly the acknowledged sends.
            for cid in cids:
                log = (await business.get(f"/v1/connections/{cid}/log?limit=200")).json()["data"]
                messages = [
                    e["object"]["id"] for e in log if e["object"]["type"].endswith("message")
                ]
                assert set(messages) <= acknowledged
                assert len(messages) == len(set(messages))
    finally:
        server.stop()
