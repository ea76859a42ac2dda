from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.helpers import Actor, FakeClock, live_server


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
async def server_url(database_url: str, clock: FakeClock) -> AsyncIterator[str]:
    async with live_server(database_url, clock) as base:
        yield base


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
def actor(http: httpx.AsyncClient, clock: FakeClock, server_url: str):  # type: ignore[no-untyped-def]
    def make() -> Actor:
        return Actor(http=http, clock=clock, base_url=server_url)

    return make


@pytest.fixture
async def business(actor) -> Actor:  # type: ignore[no-untyped-def]
    a = actor()
    await a.register("business", "Roastery")
    return a


@pytest.fixture
async def person(actor) -> Actor:  # type: ignore[no-untyped-def]
    a = actor()
    await a.register("person", "Ann")
    return a
