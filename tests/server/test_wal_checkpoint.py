"""SQLite's WAL is checkpointed beside the writer, never inside a commit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import backend
from tests.helpers import Actor, FakeClock, actors, connect, live_server

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="SQLite only (a WAL file)")


async def twenty_sends(
    base: str, clock: FakeClock, http: httpx.AsyncClient
) -> tuple[Actor, Actor, str]:
    """A shop and a person connected, and twenty messages sent: (shop, person, cid)."""
    shop, ann = await actors(base, clock, http, 2)
    cid = await connect(shop, ann, person_grants=[{"scope": "message", "topic": "n"}])
    for i in range(20):
        assert (await shop.send(cid, "n", f"m{i}")).status_code == 201
    return shop, ann, cid


async def test_commits_do_not_checkpoint_and_the_checkpointer_catches_up(
    fresh_database_url: str,
) -> None:
    clock = FakeClock()
    apps: list[Any] = []
    async with live_server(fresh_database_url, clock, prepare=apps.append) as base:
        svc = apps[0].state.services
        checkpointer = apps[0].state.checkpointer
        async with svc.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            async with driver.execute("PRAGMA wal_autocheckpoint") as cursor:
                assert (await cursor.fetchone())[0] == 0  # no commit checkpoints
        async with httpx.AsyncClient(timeout=30) as http:
            await twenty_sends(base, clock, http)
        before = checkpointer.checkpoints
        for _ in range(50):  # the background task runs every second
            if checkpointer.checkpoints > before:
                break
            await asyncio.sleep(0.1)
        assert checkpointer.checkpoints > before
        busy, frames, done = await checkpointer.checkpoint()
        assert busy == 0 and frames == done  # everything committed is in the database file


async def test_a_long_wal_is_restarted_between_batches_so_it_stops_growing(
    fresh_database_url: str,
) -> None:
    """Past ``restart_frames`` the checkpointer waits for the writer's current batch,
    checkpoints with RESTART, and the next commit writes the WAL from its start."""
    from rapport_server.db import WalCheckpointer

    clock = FakeClock()
    apps: list[Any] = []
    async with live_server(fresh_database_url, clock, prepare=apps.append) as base:
        svc = apps[0].state.services
        assert svc.batcher._task is not None
        server_loop = svc.batcher._task.get_loop()
        checkpointer = WalCheckpointer(svc.engine, restart_frames=1)
        checkpointer.writer = svc.batcher

        def on_server(coro: Any) -> Any:
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, server_loop))

        async with httpx.AsyncClient(timeout=30) as http:
            shop, ann, cid = await twenty_sends(base, clock, http)
            _, long_wal, _ = await on_server(checkpointer.checkpoint())
            assert long_wal > 1 and checkpointer.restarts == 1
            assert (await shop.send(cid, "n", "after")).status_code == 201
            busy, frames, done = await on_server(checkpointer.checkpoint())
            # The commit after the RESTART wrote from the WAL's start: a few frames.
            assert busy == 0 and 0 < frames < long_wal and frames == done
            inbox = (await ann.get("/v1/messages", params={"cid": cid})).json()["data"]
            assert [m["content"] for m in inbox][-2:] == ["m19", "after"]
