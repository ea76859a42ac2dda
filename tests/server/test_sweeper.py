"""Expiry of idempotency records and used assertion ids (rapport_server.sweeper)."""

from __future__ import annotations

import asyncio

import pytest


async def test_sweep_deletes_only_what_expired_in_bounded_units(fresh_database_url: str) -> None:
    from rapport_server.db import create_engine, sessionmaker, writer_engine
    from rapport_server.migrate import upgrade
    from rapport_server.sweeper import Sweeper
    from rapport_server.tables import IdempotencyRecord, UsedAssertion
    from rapport_server.writes import WriteBatcher
    from sqlalchemy import insert, select

    await upgrade(fresh_database_url)
    engine = create_engine(fresh_database_url)
    now = 1_000_000
    ttl, grace = 86400, 300
    try:
        maker = sessionmaker(engine)
        async with maker() as session, session.begin():
            # Seven records past the TTL (one exactly at it is kept), four within it.
            ages = [ttl + 1 + i for i in range(7)] + [ttl, 10, 0, ttl - 1]
            await session.execute(
                insert(IdempotencyRecord),
                [
                    {
                        "party_id": f"p{i % 2}",
                        "key": f"k{i}",
                        "request_hash": "h",
                        "status_code": 201,
                        "response": "{}",
                        "created_at": now - age,
                    }
                    for i, age in enumerate(ages)
                ],
            )
            # Assertion ids: expired longer ago than the allowed skew go; the rest stay.
            expiries = {"old1": now - grace - 50, "old2": now - grace - 1, "edge": now - grace}
            expiries |= {"live": now + 60, "recent": now - 10}
            await session.execute(
                insert(UsedAssertion), [{"jti": j, "expires_at": e} for j, e in expiries.items()]
            )
        batcher = WriteBatcher(sessionmaker(writer_engine(engine)))
        await batcher.start()
        try:
            sweeper = Sweeper(
                batcher, lambda: now, idempotency_ttl=ttl, assertion_grace=grace, batch=3
            )
            swept = await sweeper.sweep()
            assert (swept.idempotency_records, swept.used_assertions) == (7, 2)
            again = await sweeper.sweep()
            assert (again.idempotency_records, again.used_assertions) == (0, 0)
        finally:
            await batcher.stop()
        async with maker() as session:
            keys = set((await session.execute(select(IdempotencyRecord.key))).scalars())
            jtis = set((await session.execute(select(UsedAssertion.jti))).scalars())
        assert keys == {"k7", "k8", "k9", "k10"}
        assert jtis == {"edge", "live", "recent"}
    finally:
        await engine.dispose()


async def test_a_failed_round_is_logged_and_the_next_round_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rapport_server import sweeper as module

    warnings: list[tuple[str, dict[str, object]]] = []

    class Log:  # the module's logger (structlog caches its loggers: no capture_logs)
        def warning(self, event: str, **fields: object) -> None:
            warnings.append((event, fields))

        def info(self, event: str, **fields: object) -> None:
            pass

    monkeypatch.setattr(module, "log", Log())
    calls: list[int] = []
    second = asyncio.Event()

    class Batcher:  # the database away for the first round's first unit
        async def submit(self, _unit: object) -> int:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionRefusedError
            if len(calls) == 3:  # the second round's two units
                second.set()
            return 0

    sweeper = module.Sweeper(
        Batcher(),  # type: ignore[arg-type]
        lambda: 1000,
        idempotency_ttl=10,
        assertion_grace=1,
        interval=0.01,
    )
    await sweeper.start()
    try:
        await asyncio.wait_for(second.wait(), 5)
    finally:
        await sweeper.stop()
    assert warnings == [("sweep_failed", {"error": "ConnectionRefusedError"})]
