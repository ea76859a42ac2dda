"""Test legs: RAPPORT_TEST_DB=sqlite (default) or postgres (RAPPORT_TEST_PG_URL).

Each session gets a fresh database: a temporary SQLite file, or a new PostgreSQL database
created for the run and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Actor, FakeClock, live_server

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def backend() -> str:
    return os.environ.get("RAPPORT_TEST_DB", "sqlite")


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "test",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A URL to an empty database for this test session."""
    if backend() == "postgres":
        from sqlalchemy.engine import make_url

        admin = os.environ.get("RAPPORT_TEST_PG_URL", DEFAULT_PG)
        name = "rapport_test_" + secrets.token_hex(6)
        await _pg_admin(admin, f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin).set(database=name).render_as_string(hide_password=False)
        finally:
            await _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path: Path = tmp_path_factory.mktemp("db") / "rapport.db"
        yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """A second, empty database per test (for migration tests); SQLite file or PG db."""
    if backend() == "postgres":
        import asyncio

        from sqlalchemy.engine import make_url

        admin = os.environ.get("RAPPORT_TEST_PG_URL", DEFAULT_PG)
        name = "rapport_mig_" + secrets.token_hex(6)
        asyncio.run(_pg_admin(admin, f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin).set(database=name).render_as_string(hide_password=False)
        finally:
            asyncio.run(_pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
async def server_url(database_url: str, clock: FakeClock) -> AsyncIterator[str]:
    # Webhooks to 127.0.0.1 receivers need dev mode; the ~3-day retry schedule is scaled to ~5 s.
    async with live_server(
        database_url, clock, webhook_dev_mode=True, webhook_retry_scale=0.00002
    ) as base:
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
