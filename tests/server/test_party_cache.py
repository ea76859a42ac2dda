"""The party cache behind every token check (rapport_server.services.PartyCache): one
read for callers waiting on the same party, refreshes in the background before a send's
entry runs out, and no stale entry put back after a change dropped it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from rapport_server.services import PartyCache, Services
from rapport_server.web import SEND_PARTY_MAX_AGE

from tests.helpers import FakeClock, actors, connect, live_server

NEWS = [{"scope": "message", "topic": "news"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """A party read that waits until released, counting its calls."""

    def __init__(self, entry: tuple[str, str] | None = ("did:key:z1", "person")) -> None:
        self.entry = entry
        self.calls = 0
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> tuple[str, str] | None:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.entry


async def test_callers_waiting_for_the_same_party_share_one_read() -> None:
    cache = PartyCache(clock=Clock())
    read = Reads()
    waiting = [asyncio.create_task(cache.load("p1", read)) for _ in range(5)]
    await asyncio.sleep(0)
    read.release.set()
    assert await asyncio.gather(*waiting) == [("did:key:z1", "person")] * 5
    assert read.calls == 1
    assert cache.get("p1") == ("did:key:z1", "person")
    # The next read is a new one.
    assert await cache.load("p1", read) == ("did:key:z1", "person")
    assert read.calls == 2


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    cache = PartyCache(clock=Clock())
    read = Reads()
    first = asyncio.create_task(cache.load("p1", read))
    second = asyncio.create_task(cache.load("p1", read))
    await asyncio.sleep(0)
    first.cancel()
    read.release.set()
    assert await second == ("did:key:z1", "person")
    assert first.cancelled() and read.calls == 1
    assert cache.get("p1") == ("did:key:z1", "person")


async def test_a_party_gone_is_none_and_leaves_no_entry() -> None:
    clock = Clock()
    cache = PartyCache(clock=clock)
    cache.put("p1", "did:key:z1", "person")
    clock.now += 5  # past ttl
    read = Reads(entry=None)
    read.release.set()
    assert await cache.load("p1", read) is None
    assert cache.get("p1", max_age=60) is None


async def test_a_refresh_runs_beside_the_caller_and_renews_the_entry() -> None:
    clock = Clock()
    cache = PartyCache(clock=clock)
    cache.put("p1", "did:key:old", "person")
    clock.now += 20
    assert cache.older_than("p1", 15) and not cache.older_than("p1", 25)
    read = Reads(entry=("did:key:new", "person"))
    cache.refresh("p1", read)
    cache.refresh("p1", read)  # under way: not a second read
    await asyncio.sleep(0)
    assert read.calls == 1
    assert cache.get("p1", max_age=30) == ("did:key:old", "person")  # until it is back
    read.release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert cache.get("p1") == ("did:key:new", "person")
    assert not cache.older_than("p1", 15)


async def test_a_change_during_a_read_is_not_undone_by_it() -> None:
    """A rotation commits and drops the entry while a read that began before it is under
    way: that read must not put the old key back."""
    cache = PartyCache(clock=Clock())
    read = Reads(entry=("did:key:old", "person"))
    waiting = asyncio.create_task(cache.load("p1", read))
    await asyncio.sleep(0)
    cache.drop("p1")
    read.release.set()
    assert await waiting == ("did:key:old", "person")  # what it read, as before the change
    assert cache.get("p1", max_age=60) is None


async def test_a_failed_read_fails_its_callers_and_a_failed_refresh_nobody() -> None:
    clock = Clock()
    cache = PartyCache(clock=clock)
    read = Reads()
    read.error = OSError("database away")
    read.release.set()
    with pytest.raises(OSError):
        await cache.load("p1", read)
    cache.put("p1", "did:key:z1", "person")
    clock.now += 20
    cache.refresh("p1", read)
    for _ in range(10):
        await asyncio.sleep(0)
    assert read.calls == 2
    assert cache.get("p1", max_age=30) == ("did:key:z1", "person")  # kept: still valid


async def test_close_stops_the_reads_under_way() -> None:
    clock = Clock()
    cache = PartyCache(clock=clock)
    cache.put("p1", "did:key:z1", "person")
    clock.now += 20
    read = Reads()  # never released
    cache.refresh("p1", read)
    waiting = asyncio.create_task(cache.load("p2", read))
    for _ in range(10):
        await asyncio.sleep(0)
    assert read.calls == 2
    await cache.close()
    with pytest.raises(asyncio.CancelledError):  # not TimeoutError: it was stopped
        await asyncio.wait_for(waiting, 2)
    assert cache.get("p1", max_age=30) == ("did:key:z1", "person")
    cache.refresh("p1", read)  # a read after close starts afresh
    for _ in range(10):
        await asyncio.sleep(0)
    assert read.calls == 3
    await cache.close()


async def test_a_send_with_an_aging_entry_is_accepted_and_refreshes_it(
    fresh_database_url: str,
) -> None:
    """Past half of SEND_PARTY_MAX_AGE a send goes on with the entry it has (accepted)
    and the entry is read again beside it."""
    clock = FakeClock()
    apps: list[Any] = []
    async with live_server(fresh_database_url, clock, prepare=apps.append) as base:
        svc: Services = apps[0].state.services
        async with httpx.AsyncClient(timeout=30) as http:
            shop, ann = await actors(base, clock, http, 2)
            cid = await connect(shop, ann, person_grants=NEWS)
            assert (await shop.send(cid, "news", "one")).status_code == 201
            cache = svc.parties
            assert not cache.older_than(shop.party_id, 1.0)
            aged = SEND_PARTY_MAX_AGE * 0.75  # the entries look this much older now
            cache.clock = lambda: time.monotonic() + aged
            assert cache.older_than(shop.party_id, SEND_PARTY_MAX_AGE / 2)
            assert (await shop.send(cid, "news", "two")).status_code == 201
            for _ in range(100):
                if not cache.older_than(shop.party_id, 1.0):
                    break
                await asyncio.sleep(0.02)
            assert not cache.older_than(shop.party_id, 1.0)  # read again just now
            assert cache.get(shop.party_id) == (shop.did, "business")
