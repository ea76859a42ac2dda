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

from tests.plans import price_out_whole_reads, whole_reads

PARTY = "b" * 36
CONNECTIONS = 400
MESSAGES = 20_000
ENDPOINTS = 2_000
# The tables the fixture fills (PostgreSQL judges plans on these only: see tests/plans.py).
POPULATED = ("events", "webhook_deliveries", "log_entries")


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
        # Every message delivered to one of the party's webhook endpoints (many of them,
        # or SQLite's statistics let it skip-scan the (endpoint_id, event_id) key).
        await conn.execute(
            text(
                "INSERT INTO parties (id, kind, did, display_name, created_at) "
                f"VALUES ('{PARTY}', 'business', 'did:key:zPlan', 'Plan', 0)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, party_id, url, secret, status, cursor, "
                f"created_at) VALUES (:id, '{PARTY}', 'https://h.example/', 's', 'enabled', "
                "0, 0)"
            ),
            [{"id": f"e{n}"} for n in range(ENDPOINTS)],
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, status, attempts, "
                f"next_attempt_at, created_at) SELECT 'e' || (id % {ENDPOINTS}), id, "
                "'delivered', 1, 0, 0 FROM events"
            )
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


async def test_every_statement_of_a_sever_that_deletes_seeks_by_an_index(
    engine: AsyncEngine,
) -> None:
    """The sever's own writes (grants, held messages, the payloads and both inboxes of that
    connection) each find their rows through an index: a sever costs what the connection
    holds, not what the database holds. PostgreSQL is asked with sequential scans priced
    out, and only for the tables that hold rows here (events, their deliveries, the log):
    on an empty table any index serves as well as another, and it picks among them
    without regard to the statement's key."""
    from types import SimpleNamespace

    from rapport_protocol.types import SeverBody
    from rapport_server.connections.service import _sever_effects
    from rapport_server.tables import Connection

    cid = f"{7:032x}"
    row = Connection(cid=cid, inviter_id=PARTY, acceptor_id="p" * 36)
    sever = SimpleNamespace(body=SeverBody(data="delete"))
    issued: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        issued.append((statement, params))

    async with sessionmaker(engine)() as session:
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            await _sever_effects(
                session,
                row,
                Subject(PARTY, "did:key:z", "business"),
                row.acceptor_id,
                sever,  # type: ignore[arg-type]
            )
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
        await session.rollback()
    writes = [(s, p) for s, p in issued if s.lstrip().split()[0] in ("DELETE", "UPDATE")]
    tables = {_table_of(s) for s, _ in writes}
    assert tables == {
        "active_grants",
        "held_messages",
        "connections",
        "log_entries",
        "webhook_deliveries",
        "events",
    }
    async with engine.connect() as conn:
        await price_out_whole_reads(conn)
        for statement, params in writes:
            unbounded = await whole_reads(conn, statement, params, POPULATED)
            assert not unbounded, (statement, unbounded)


def _table_of(statement: str) -> str:
    """The table a DELETE or UPDATE writes."""
    words = statement.split()
    return words[2] if words[0] == "DELETE" else words[1]
