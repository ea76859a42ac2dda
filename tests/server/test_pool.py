"""PostgreSQL's connection pool: a connection is pinged at checkout unless it was in use
moments ago (db.ALIVE_BYPASS_SECONDS), so a connection the database dropped while it sat
idle in the pool is replaced, not handed to a request."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

pytestmark = pytest.mark.skipif(
    os.environ.get("RAPPORT_TEST_DB", "sqlite") != "postgres", reason="PostgreSQL pool"
)


async def test_a_connection_dropped_while_idle_is_replaced_and_a_recent_one_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rapport_server import db

    engine = db.create_engine(database_url, pool_size=1)
    killer = db.create_engine(database_url, pool_size=1)
    pings = 0
    original = db.asyncpg.Connection.fetchrow

    async def counted(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal pings
        pings += query == ";"  # the dialect's ping
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(db.asyncpg.Connection, "fetchrow", counted)

    async def backend_pid() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT pg_backend_pid()")))

    async def kill(pid: int) -> None:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    try:
        first = await backend_pid()  # a new connection: pinged once
        assert pings == 1
        assert await backend_pid() == first  # checked in just now: no ping
        assert pings == 1

        monkeypatch.setattr(db, "ALIVE_BYPASS_SECONDS", 0.0)  # every checkout pings
        await kill(first)
        replaced = await backend_pid()  # the ping fails, the pool connects anew
        assert replaced != first and pings >= 2

        # Inside the window a dropped connection is not noticed before use: the statement
        # fails (a 503 for the request) and the pool replaces the connection.
        monkeypatch.setattr(db, "ALIVE_BYPASS_SECONDS", 60.0)
        await kill(replaced)
        with pytest.raises(DBAPIError):
            await backend_pid()
        assert await backend_pid() not in (first, replaced)
    finally:
        await engine.dispose()
        await killer.dispose()
