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


async def test_0008_parks_the_backlogs_of_endpoints_disabled_before_it(
    fresh_database_url: str,
) -> None:
    from rapport_server.db import create_engine
    from rapport_server.migrate import upgrade
    from rapport_server.tables import Event, WebhookDelivery, WebhookEndpoint
    from rapport_server.webhooks.service import PARKED
    from sqlalchemy import insert, select, text

    await upgrade(fresh_database_url, "0007")
    engine = create_engine(fresh_database_url)
    endpoint = {"party_id": "p", "url": "https://example.com/h", "secret": "s", "cursor": 0}
    try:
        async with engine.begin() as conn:
            # The columns of 0007's parties table only (later versions add more).
            await conn.execute(
                text(
                    "INSERT INTO parties (id, kind, did, display_name, created_at)"
                    " VALUES ('p', 'person', 'did:key:z6Mkp', 'P', 1)"
                )
            )
            await conn.execute(
                insert(WebhookEndpoint),
                [
                    {"id": "on", "status": "enabled", "created_at": 1, **endpoint},
                    {"id": "off", "status": "disabled", "created_at": 1, **endpoint},
                ],
            )
            await conn.execute(
                insert(Event),
                [
                    {"id": i, "party_id": "p", "seq": i, "cid": "c", "kind": "m", "created_at": 1}
                    for i in (1, 2, 3)
                ],
            )
            row = {"attempts": 2, "next_attempt_at": 500.0, "created_at": 1}
            await conn.execute(
                insert(WebhookDelivery),
                [
                    {"id": 1, "endpoint_id": "on", "event_id": 1, "status": "pending", **row},
                    {"id": 2, "endpoint_id": "off", "event_id": 2, "status": "pending", **row},
                    {"id": 3, "endpoint_id": "off", "event_id": 3, "status": "dead", **row},
                ],
            )
        await upgrade(fresh_database_url)
        async with engine.connect() as conn:
            result = await conn.execute(
                select(WebhookDelivery.id, WebhookDelivery.next_attempt_at).order_by(
                    WebhookDelivery.id
                )
            )
            times = {int(i): float(t) for i, t in result.all()}
    finally:
        await engine.dispose()
    # Only the disabled endpoint's pending delivery moves; the enabled one's and a dead one
    # keep their times.
    assert times == {1: 500.0, 2: PARKED, 3: 500.0}
