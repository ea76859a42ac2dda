"""The delivery worker on its own: which endpoints a pass looks at, and when it goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


@dataclass
class Setup:
    worker: Any
    notifier: Any
    maker: Any
    received: list[str]  # the party ids of the events delivered, in order
    arrived: asyncio.Event

    async def until(self, done: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()


async def _cursors(maker: Any) -> dict[str, int]:
    from rapport_server.tables import WebhookEndpoint
    from sqlalchemy import select

    async with maker() as session:
        rows = await session.execute(select(WebhookEndpoint.id, WebhookEndpoint.cursor))
        return {str(i): int(c) for i, c in rows.all()}


async def _append(maker: Any, party: str, seqs: range) -> None:
    """Events for ``party`` written behind the worker's back (no notifier hint)."""
    from rapport_server.tables import Event, Party
    from sqlalchemy import insert, update

    async with maker() as session, session.begin():
        await session.execute(
            insert(Event),
            [
                {"party_id": party, "seq": s, "cid": "c", "kind": "message", "created_at": 1}
                for s in seqs
            ],
        )
        await session.execute(update(Party).where(Party.id == party).values(event_seq=seqs[-1]))


@pytest.fixture
async def setup(fresh_database_url: str) -> AsyncIterator[Setup]:
    from rapport_server.db import create_engine, sessionmaker
    from rapport_server.events.notify import LocalNotifier
    from rapport_server.migrate import upgrade
    from rapport_server.tables import Party, WebhookEndpoint
    from rapport_server.webhooks.signing import ServerSigner
    from rapport_server.webhooks.worker import DeliveryWorker
    from sqlalchemy import insert

    await upgrade(fresh_database_url)
    engine = create_engine(fresh_database_url)
    maker = sessionmaker(engine)
    received: list[str] = []
    arrived = asyncio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        received.append(request.url.path.strip("/"))
        json.loads(request.content)  # a whole body
        arrived.set()
        return httpx.Response(200, stream=httpx.ByteStream(b""))

    async with maker() as session, session.begin():
        await session.execute(
            insert(Party),
            [
                {"id": p, "kind": "person", "did": f"did:key:z{p}", "display_name": p}
                | {"created_at": 1}
                for p in ("p1", "p2")
            ],
        )
        await session.execute(
            insert(WebhookEndpoint),
            [
                {"id": f"e{p}", "party_id": p, "url": f"https://hooks.example/{p}"}
                | {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "status": "enabled"}
                | {"cursor": 0, "created_at": 1}
                for p in ("p1", "p2")
            ],
        )
    notifier = LocalNotifier()
    worker = DeliveryWorker(
        maker,
        notifier=notifier,
        signer=ServerSigner("test"),
        transport=httpx.MockTransport(answer),
        poll=30.0,  # a full pass only every 30 s: longer than any wait below
        skip_locked=engine.dialect.name == "postgresql",
    )
    try:
        yield Setup(worker, notifier, maker, received, arrived)
    finally:
        await worker.stop()
        await engine.dispose()


async def test_a_hinted_pass_expands_only_the_hinted_parties_endpoints(setup: Setup) -> None:
    await _append(setup.maker, "p1", range(1, 4))
    await _append(setup.maker, "p2", range(1, 3))
    assert await setup.worker.run_once({"p1"}) == 3
    assert await _cursors(setup.maker) == {"ep1": 3, "ep2": 0}  # p2 not looked at
    assert setup.received == ["p1"] * 3
    assert await setup.worker.run_once(set()) == 0  # no hint: no endpoint probed
    assert await _cursors(setup.maker) == {"ep1": 3, "ep2": 0}
    assert await setup.worker.run_once(None) == 2  # the full pass finds p2's events
    assert await _cursors(setup.maker) == {"ep1": 3, "ep2": 2}
    assert setup.received == ["p1"] * 3 + ["p2"] * 2
    await _append(setup.maker, "p1", range(4, 5))
    await _append(setup.maker, "p2", range(3, 4))
    assert await setup.worker.run_once({"p2", "p1", "p3"}) == 2  # several hinted parties
    assert await _cursors(setup.maker) == {"ep1": 4, "ep2": 3}


async def test_an_expand_that_left_endpoints_behind_is_continued_at_once(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rapport_server.webhooks import worker as module

    monkeypatch.setattr(module, "EXPAND_ENDPOINTS", 1)  # one endpoint per expand
    await _append(setup.maker, "p1", range(1, 3))
    await _append(setup.maker, "p2", range(1, 3))
    await setup.worker.start()  # its first pass is a full one
    await setup.until(lambda: len(setup.received) == 4, 10)  # not the 30 s poll; no hint
    assert await _cursors(setup.maker) == {"ep1": 2, "ep2": 2}
    assert sorted(setup.received) == ["p1", "p1", "p2", "p2"]


async def test_a_hint_for_one_party_does_not_hide_anothers_lost_hint_past_the_poll(
    setup: Setup,
) -> None:
    setup.worker._poll = 0.5
    await setup.worker.start()
    await asyncio.sleep(0.1)  # the first (full) pass has run: nothing to do
    await _append(setup.maker, "p2", range(1, 3))  # its hint is lost
    await _append(setup.maker, "p1", range(1, 2))
    setup.notifier.wake({"p1"})
    await setup.until(lambda: "p1" in setup.received, 5)
    assert "p2" not in setup.received  # the hinted pass looked at p1 only
    await setup.until(lambda: len(setup.received) == 3, 5)  # the next full pass (poll)
    assert sorted(setup.received) == ["p1", "p2", "p2"]
