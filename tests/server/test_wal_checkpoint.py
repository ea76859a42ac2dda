"""SQLite's WAL is checkpointed beside the writer, never inside a commit."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

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
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``restart_frames`` the checkpointer copies again, flushes the database file,
    waits for the writer's current batch, catches up with a last PASSIVE checkpoint, and
    the next commit writes the WAL from its start."""
    from rapport_server import db
    from rapport_server.db import WalCheckpointer

    database = make_url(fresh_database_url).database
    assert database
    synced: list[tuple[int, int]] = []  # (inode, restarts so far) of each flush
    real = db._datasync

    def datasync(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, checkpointer.restarts))
        real(fd)

    monkeypatch.setattr(db, "_datasync", datasync)
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
            # The database file itself, flushed once, before the catch-up.
            assert synced == [(os.stat(database).st_ino, 0)]
            assert (await shop.send(cid, "n", "after")).status_code == 201
            busy, frames, done = await on_server(checkpointer.checkpoint())
            # The commit after the catch-up wrote from the WAL's start: a few frames.
            assert busy == 0 and 0 < frames < long_wal and frames == done
            inbox = (await ann.get("/v1/messages", params={"cid": cid})).json()["data"]
            assert [m["content"] for m in inbox][-2:] == ["m19", "after"]
            # restart_frames=1: the second round is long too, and flushed the same file
            assert [ino for ino, _ in synced] == [os.stat(database).st_ino] * 2
        await on_server(checkpointer.stop())
        # The server's own checkpointer, after a long round, holds a descriptor too ...
        own = apps[0].state.checkpointer
        own._restart_frames = 1
        await on_server(own.checkpoint())
        assert own._fd is not None
    # ... and let go of it after the server closed its engine.
    assert own._fd is None
    fd = checkpointer._fd
    assert fd is not None
    checkpointer.release()
    assert checkpointer._fd is None
    with pytest.raises(OSError):
        os.fstat(fd)


async def test_no_database_file_to_flush_in_memory_or_on_postgresql() -> None:
    from rapport_server.db import _database_path
    from sqlalchemy.ext.asyncio import create_async_engine

    cases = {
        "sqlite+aiosqlite://": None,
        "sqlite+aiosqlite:///:memory:": None,
        "sqlite+aiosqlite:///file:x.db?uri=true": None,
        "sqlite+aiosqlite:///some/dir/r.db": "some/dir/r.db",
        "postgresql+asyncpg://u@127.0.0.1/x": None,
    }
    for url, path in cases.items():
        engine = create_async_engine(url)  # never connects
        try:
            assert _database_path(engine) == path, url
        finally:
            await engine.dispose()


def _thread_alive(tid: int) -> bool:
    return os.path.exists(f"/proc/self/task/{tid}")


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priorities")
async def test_the_long_copy_runs_on_a_lower_priority_thread_that_never_serves_the_pool(
    fresh_database_url: str,
) -> None:
    """The PASSIVE copy competes with the event loop for its core: it runs on a connection
    whose thread has a raised nice value, held by the checkpointer, never a pooled one."""
    from rapport_server.db import CHECKPOINT_NICENESS, WalCheckpointer, create_engine

    engine = create_engine(fresh_database_url)
    checkpointer = WalCheckpointer(engine)
    try:
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        await checkpointer.checkpoint()
        tid = checkpointer.background_thread
        assert tid and tid != threading.get_native_id()
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(19, own + CHECKPOINT_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
        await checkpointer.checkpoint()  # the same connection again
        assert checkpointer.background_thread == tid and checkpointer.checkpoints == 2
        # Pooled connections keep the server's priority.
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.create_function("tid", 0, threading.get_native_id)
            ((pooled,),) = await driver.execute_fetchall("SELECT tid()")
        assert pooled != tid and os.getpriority(os.PRIO_PROCESS, pooled) == own
        await checkpointer.stop()
        for _ in range(100):  # closed, not checked in: its thread ends
            if not _thread_alive(tid):
                break
            await asyncio.sleep(0.02)
        assert not _thread_alive(tid)
    finally:
        await checkpointer.stop()
        await engine.dispose()
