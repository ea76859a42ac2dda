"""Reads that must not grow with the table: the database's own plan shows the index used.

Timings would be flaky and slow to reach the sizes where a scan shows; the plan is what
decides it. Each test captures the statement a service function really issues and asks
the backend (SQLite or PostgreSQL, whichever the suite runs on) how it would run it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from rapport_server.db import create_engine, sessionmaker
from rapport_server.domain import Subject
from rapport_server.messages.service import inbox
from rapport_server.migrate import upgrade
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

PARTY = "b" * 36
CONNECTIONS = 400
MESSAGES = 20_000


@pytest.fixture
async def engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database where one party holds many messages over many connections."""
    await upgrade(fresh_database_url)
    engine = create_engine(fresh_database_url)
    async with engine.begin() as conn:
        rows = [
            {"cid": f"{n % CONNECTIONS:032x}", "seq": n, "log": n, "object": f"o{n}"}
            for n in range(1, MESSAGES + 1)
        ]
        await conn.execute(
            text(
                "INSERT INTO log_entries (seq, cid, object_id, type, sender_id, object, "
                "received_at) VALUES (:log, :cid, :object, 'message', 'x', '{}', 0)"
            ),
            rows,
        )
        await conn.execute(
            text(
                "INSERT INTO events (party_id, seq, cid, kind, log_seq, created_at) "
                f"VALUES ('{PARTY}', :seq, :cid, 'message', :log, 0)"
            ),
            rows,
        )
        await conn.execute(text("ANALYZE"))
    try:
        yield engine
    finally:
        await engine.dispose()


async def plan_of_inbox(engine: AsyncEngine, cid: str | None) -> tuple[str, int]:
    """The plan of the statement ``inbox`` issues (as text), and how many items it gave."""
    issued: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM events" in statement:
            issued.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with sessionmaker(engine)() as session:
            page = await inbox(
                session,
                Subject(PARTY, "did:key:z", "business"),
                after=0,
                limit=50,
                cid=cid,
                unacked=False,
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    [(statement, params)] = issued  # the page is one statement
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(explain + statement, params)
        plan = "\n".join(" ".join(str(v) for v in row) for row in result.all())
    return plan, len(page)


async def test_one_connections_inbox_page_seeks_to_that_connection(engine: AsyncEngine) -> None:
    plan, items = await plan_of_inbox(engine, f"{7:032x}")
    assert items == MESSAGES // CONNECTIONS  # all 50 of that connection, no other
    assert "ix_events_party_cid_kind_seq" in plan, plan
    assert "ix_events_party_kind_seq" not in plan, plan


async def test_the_whole_inbox_pages_in_sequence_order(engine: AsyncEngine) -> None:
    plan, items = await plan_of_inbox(engine, None)
    assert items == 50
    # Either of the party's indexes in seq order (all the events here are messages).
    assert "ix_events_party_kind_seq" in plan or "uq_events_party_id_seq" in plan, plan
    assert "ix_events_party_cid_kind_seq" not in plan, plan
    if engine.dialect.name == "sqlite":
        assert "TEMP B-TREE" not in plan, plan  # no sort: the index is in seq order
    else:
        assert "Sort" not in plan, plan
