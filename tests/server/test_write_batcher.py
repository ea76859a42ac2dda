"""The group-commit write batcher, directly: grouping, isolation of failing units, and the
savepoint-free path used by sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rapport_server.db import create_engine, sessionmaker, writer_engine
from rapport_server.domain import DomainError
from rapport_server.writes import StaleWrite, UnitContext, WriteBatcher
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError


@pytest.fixture
async def batcher(tmp_path: Path) -> AsyncIterator[WriteBatcher]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES ('taken', 0)"))
    b = WriteBatcher(sessionmaker(writer_engine(engine)), max_batch=64)
    await b.start()
    yield b
    await b.stop()
    await engine.dispose()


def insert(key: str, *, refuse: bool = False, stale_times: list[int] | None = None):  # type: ignore[no-untyped-def]
    async def unit(ctx: UnitContext) -> str:
        if refuse:
            raise DomainError("no", status=403, code="refused")
        if stale_times is not None and stale_times[0] > 0:
            stale_times[0] -= 1
            raise StaleWrite(key)
        await ctx.session.execute(text("INSERT INTO t VALUES (:k, 1)"), {"k": key})
        return key

    return unit


async def keys(b: WriteBatcher) -> set[str]:
    async def read(ctx: UnitContext) -> set[str]:
        rows = await ctx.session.execute(text("SELECT k FROM t"))
        return {r[0] for r in rows}

    return await b.submit(read)


@pytest.mark.parametrize("savepoint", [True, False])
async def test_concurrent_units_share_commits_and_failures_stay_their_own(
    batcher: WriteBatcher, savepoint: bool
) -> None:
    units = [insert(f"k{i}") for i in range(50)]
    units += [insert("taken"), insert("x", refuse=True), insert("s", stale_times=[2])]
    results = await asyncio.gather(
        *(batcher.submit(u, savepoint=savepoint) for u in units), return_exceptions=True
    )
    assert results[:50] == [f"k{i}" for i in range(50)]
    assert isinstance(results[50], IntegrityError)  # the duplicate fails alone
    assert isinstance(results[51], DomainError)
    assert results[52] == "s"  # retried after its stale write
    assert await keys(batcher) == {"taken", "s", *(f"k{i}" for i in range(50))}
    assert batcher.batches < batcher.units  # grouped, not one commit per unit
    # Without savepoints the duplicate's batch was rolled back and rerun with them.
    assert batcher.redos == (0 if savepoint else 1)
