"""The committed OpenAPI document and the migrations match the code."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_app() -> None:
    from rapport_server.app import create_app

    live = create_app().openapi()
    committed = json.loads((ROOT / "spec" / "openapi.json").read_text())
    assert committed == live, "spec/openapi.json is stale: run `make openapi`"


def test_every_operation_is_documented() -> None:
    from rapport_server.app import create_app

    spec = create_app().openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
            assert op.get("description"), (method, path)


def test_single_head() -> None:
    from alembic.script import ScriptDirectory
    from rapport_server.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1


async def test_upgrade_downgrade_upgrade_and_no_drift(fresh_database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from rapport_server import tables
    from rapport_server.db import Base, create_engine
    from rapport_server.migrate import downgrade, upgrade
    from sqlalchemy import inspect

    assert tables.Party.__tablename__ == "parties"
    await upgrade(fresh_database_url)
    await downgrade(fresh_database_url, "base")
    engine = create_engine(fresh_database_url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert set(names) <= {"alembic_version"}
    await upgrade(fresh_database_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    assert diff == [], diff
