"""Family 6 — database faults through a TCP fault proxy (PostgreSQL leg).

The server's database URL points at :class:`FaultProxy`, in front of PostgreSQL. A sender
keeps sending messages while the proxy switches: pass → latency → reset → blackhole →
pass. Required:

* during faults only 503 ``store_unavailable`` with ``Retry-After`` (or success): never a
  500 or another 5xx, and no request hangs past the client timeout;
* after the proxy passes traffic again the server recovers within a bounded time;
* nothing acknowledged is lost: every message answered 201 is in the log afterwards. A
  client retries a 503 with the same signed object; a 409 ``replayed`` on retry means the
  first attempt did commit although its answer was lost (counted as "ambiguous").

SQLite has no network between server and store, so this family runs on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from rapport_protocol import MessageType
from sqlalchemy.engine import make_url

from tests.helpers import Actor, FakeClock, connect
from tests.reliability.conftest import backend, profile, record
from tests.reliability.fault_proxy import FaultProxy
from tests.reliability.world import app_instance

M = MessageType
pytestmark = pytest.mark.skipif(backend() != "postgres", reason="needs a network to the store")
RECOVERY_BOUND = 15.0
CLIENT_TIMEOUT = 20.0


async def test_database_faults_give_503_only_recover_and_lose_nothing(
    database_url: str, clock: FakeClock
) -> None:
    url = make_url(database_url)
    phase_seconds = profile(3, 20)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with (
            app_instance(proxied, clock, db_pool_size=2) as base,
            httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
        ):
            shop = Actor(http=http, clock=clock, base_url=base)
            ann = Actor(http=http, clock=clock, base_url=base)
            await shop.register("business", "faulty shop")
            await ann.register("person", "Ann")
            cid = await connect(shop, ann, person_grants=[{"scope": "message", "topic": "news"}])

            statuses: Counter[str] = Counter()
            bad: list[str] = []
            acknowledged: list[str] = []
            ambiguous = 0
            phase = "pass"
            stop = asyncio.Event()

            def note(r: httpx.Response | None, label: str) -> None:
                if r is None:
                    statuses[f"{phase}:timeout"] += 1
                    bad.append(f"{phase}: {label} timed out")
                    return
                statuses[f"{phase}:{r.status_code}"] += 1
                if r.status_code >= 500:
                    retry = r.headers.get("retry-after")
                    code = r.json().get("code") if r.content else None
                    if r.status_code != 503 or not retry or code != "store_unavailable":
                        bad.append(f"{phase}: {label} {r.status_code} {r.text[:160]}")

            async def attempt(coro: Any) -> httpx.Response | None:
                try:
                    return await coro
                except httpx.TimeoutException:
                    return None
                except httpx.TransportError as exc:
                    bad.append(f"{phase}: transport {type(exc).__name__}")
                    return None

            async def sender() -> None:
                nonlocal ambiguous
                n = 0
                while not stop.is_set():
                    n += 1
                    content = f"msg-{n}"
                    obj = shop.sign(M.MESSAGE, {"topic": "news"}, cid, payload=content)
                    first = True
                    while True:  # retry the same object until the store answers
                        r = await attempt(
                            shop.post(f"/v1/connections/{cid}/messages", {"object": obj})
                        )
                        note(r, "send")
                        if r is not None and r.status_code == 201:
                            acknowledged.append(content)
                            break
                        if r is not None and r.status_code == 409:
                            assert not first and r.json()["code"] == "replayed", r.text
                            ambiguous += 1
                            acknowledged.append(content)
                            break
                        if r is not None and r.status_code < 500 and r.status_code != 401:
                            raise AssertionError(r.text)
                        first = False
                        await asyncio.sleep(0.2)

            async def reader() -> None:
                while not stop.is_set():
                    r = await attempt(ann.get(f"/v1/connections/{cid}"))
                    note(r, "read")
                    await asyncio.sleep(0.1)

            tasks = [asyncio.create_task(sender()), asyncio.create_task(reader())]
            try:
                for phase, mode, delay in (
                    ("pass", "pass", 0.0),
                    ("latency", "latency", 0.2),
                    ("reset", "reset", 0.0),
                    ("blackhole", "blackhole", 0.0),
                ):
                    proxy.set_mode(mode, delay=delay)  # type: ignore[arg-type]
                    await asyncio.sleep(phase_seconds)
                phase = "recovery"
                proxy.set_mode("pass")
                healed = time.monotonic()
                sent_before = len(acknowledged)
                while len(acknowledged) <= sent_before + 2:
                    assert time.monotonic() - healed < RECOVERY_BOUND, statuses
                    await asyncio.sleep(0.1)
                recovery = time.monotonic() - healed
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
            for task in tasks:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

            log: list[dict[str, Any]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
                page = (await shop.get(f"/v1/connections/{cid}/log", params=params)).json()
                log += page["data"]
                if not page["has_more"]:
                    break
                cursor = page["next_cursor"]
            logged = {e["object"].get("payload") for e in log}
            lost = [c for c in acknowledged if c not in logged]

    total_503 = sum(n for k, n in statuses.items() if k.endswith(":503"))
    record(
        "db-faults",
        f"{sum(statuses.values())} requests through pass/latency 200 ms/reset/blackhole "
        f"({phase_seconds} s each): {dict(sorted(statuses.items()))}; {total_503} × 503 "
        f"store_unavailable, {len(bad)} other 5xx or hangs; recovered in {recovery:.1f} s "
        f"(bound {RECOVERY_BOUND:.0f} s); {len(acknowledged)} acknowledged sends, "
        f"{len(lost)} lost, {ambiguous} committed-but-unacknowledged (found by retry); "
        f"proxy resets {proxy.stats.resets}",
    )
    assert not bad, bad[:10]
    assert not lost, lost[:10]
