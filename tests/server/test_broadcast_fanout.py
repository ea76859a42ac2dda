"""Broadcast fan-out: the storage settings it relies on, and decisions made ahead of
their chunk's transaction."""

from __future__ import annotations

import os

import pytest


@pytest.mark.skipif(
    os.environ.get("RAPPORT_TEST_DB", "sqlite") != "postgres", reason="PostgreSQL option"
)
async def test_broadcast_tables_fillfactor_matches_models_after_migrations(
    fresh_database_url: str,
) -> None:
    from rapport_server import tables  # noqa: F401  (registers every table)
    from rapport_server.db import Base, create_engine
    from rapport_server.migrate import downgrade, upgrade
    from sqlalchemy import text

    wanted = {
        name: sorted(f"{k}={v}" for k, v in (t.dialect_options["postgresql"]["with"] or {}).items())
        for name, t in Base.metadata.tables.items()
    }
    assert wanted["connections"] == ["fillfactor=50"] and wanted["parties"] == ["fillfactor=50"]

    async def options() -> dict[str, list[str]]:
        engine = create_engine(fresh_database_url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT relname, coalesce(reloptions, '{}') FROM pg_class "
                    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            )
            found = {name: sorted(opts) for name, opts in rows.all()}
        await engine.dispose()
        return found

    await upgrade(fresh_database_url)
    found = options()
    assert {n: o for n, o in (await found).items() if n in wanted} == wanted
    await downgrade(fresh_database_url, "0003")
    assert all(not o for n, o in (await options()).items() if n in ("connections", "parties"))
    await upgrade(fresh_database_url)
    assert (await options())["connections"] == ["fillfactor=50"]
