"""PostgreSQL's connection pool: a connection is pinged at checkout unless it was in use
moments ago (db.ALIVE_BYPASS_SECONDS) and the driver has not seen it closed, so a
connection the database dropped while it sat idle in the pool is replaced, not handed to a
request. (One dropped inside the window, unseen, fails its first statement: a 503.)"""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import text

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
            # Waits (up to 5 s) until the backend is gone.
            await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})

    try:
        first = await backend_pid()  # a new connection: not pinged
        assert await backend_pid() == first  # checked in just now: not pinged
        assert pings == 0

        monkeypatch.setattr(db, "ALIVE_BYPASS_SECONDS", 0.0)  # every checkout pings
        await kill(first)
        replaced = await backend_pid()  # the ping fails, the pool connects anew
        assert replaced != first and pings >= 1

        # Inside the window, a connection the driver has seen closed is pinged (and
        # replaced) all the same.
        monkeypatch.setattr(db, "ALIVE_BYPASS_SECONDS", 60.0)
        await kill(replaced)
        await asyncio.sleep(0.3)  # the driver reads the server's goodbye
        assert await backend_pid() not in (first, replaced)
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_read_session_whose_connection_dies_after_the_read_closes_quietly(
    database_url: str,
) -> None:
    """The request's read session closes after its answer has begun (FastAPI ends a
    yield dependency then): a connection lost at that moment is discarded, not raised,
    or it would cut off an answer already being sent (seen under the fault proxy). The
    pool then hands out a live connection."""
    from types import SimpleNamespace

    from rapport_server import db
    from rapport_server.web import session

    engine = db.create_engine(database_url, pool_size=1)
    killer = db.create_engine(database_url, pool_size=1)
    svc = SimpleNamespace(sessionmaker=db.sessionmaker(engine))
    try:
        reads = session(svc)  # type: ignore[arg-type]
        s = await anext(reads)
        pid = int(await s.scalar(text("SELECT pg_backend_pid()")))  # a transaction is open
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await asyncio.sleep(0.3)
        with pytest.raises(StopAsyncIteration):
            await anext(reads)  # the dependency's exit: closes the session, raises nothing
        async with engine.connect() as conn:
            assert int(await conn.scalar(text("SELECT pg_backend_pid()"))) != pid
    finally:
        await engine.dispose()
        await killer.dispose()
