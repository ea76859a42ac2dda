"""The send's statements find their rows by key: a send costs the same with a thousand
connections or a million (the scale figure of BENCHMARKS.md measures it; this test shows
why, and fails the day a statement on the send path stops seeking).

A server sends over a database seeded with thousands of connections, messages, inbox
items and stored responses; every statement it issues while the sends are answered —
the send group's SQL on the driver (``SendSQL``) and anything through SQLAlchemy — is then
asked for its plan (tests/plans.py says how each backend is judged).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rapport_protocol import MessageType
from rapport_server.db import create_engine, writer_engine
from rapport_server.messages import send_sql
from rapport_server.messages.send_sql import SendSQL
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from bench import seed
from tests.helpers import Actor, FakeClock, connect, free_port, live_server
from tests.plans import price_out_whole_reads, whole_reads

CLONES = 3_000
# The tables the seed fills (PostgreSQL's plans are judged on these: tests/plans.py).
POPULATED = (
    "parties",
    "connections",
    "log_entries",
    "events",
    "active_grants",
    "idempotency_records",
)
ORDERS = [{"scope": "message", "topic": "orders"}]
REPLIES = [{"scope": "message", "topic": "replies"}]


async def test_every_statement_of_a_send_seeks_by_an_index(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    port = free_port()
    async with httpx.AsyncClient(timeout=30) as http:
        async with live_server(fresh_database_url, clock, port=port) as base:
            shop = Actor(http=http, clock=clock, base_url=base)
            ann = Actor(http=http, clock=clock, base_url=base)
            await shop.register("business", "Shop")
            await ann.register("person", "Ann")
            cid = await connect(shop, ann, person_grants=ORDERS, business_grants=REPLIES)
            assert (await shop.send(cid, "orders", "first")).status_code == 201
        await _seed(fresh_database_url, seed.Template(cid, ann.party_id, ann.did))

        issued: list[tuple[str, Any]] = []  # everything, in order
        group: list[str] = []  # the send group's, on the driver
        fetch, records = SendSQL._fetch, SendSQL.insert_records

        async def fetching(self: SendSQL, sql: str, args: Any) -> list[Any]:
            issued.append((sql, tuple(args)))
            group.append(sql)
            return await fetch(self, sql, args)

        async def recording(self: SendSQL, rows: list[tuple[Any, ...]]) -> None:
            if self.postgres:  # an executemany, not through _fetch
                issued.append((send_sql._PG["records"], tuple(rows[0])))
                group.append(send_sql._PG["records"])
            await records(self, rows)

        def through_sqlalchemy(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            issued.append((statement, params))

        monkeypatch.setattr(SendSQL, "_fetch", fetching)
        monkeypatch.setattr(SendSQL, "insert_records", recording)
        async with live_server(fresh_database_url, clock, port=port):
            event.listen(Engine, "before_cursor_execute", through_sqlalchemy)
            try:
                # One send, one under an Idempotency-Key, a keyed batch of three, and
                # the person's reply (the other direction).
                assert (await shop.send(cid, "orders", "one")).status_code == 201
                keyed = shop.sign(MessageType.MESSAGE, {"topic": "orders"}, cid, payload="two")
                r = await shop.post(
                    f"/v1/connections/{cid}/messages",
                    {"object": keyed},
                    headers={"Idempotency-Key": "plan-1"},
                )
                assert r.status_code == 201, r.text
                batch = [
                    shop.sign(MessageType.MESSAGE, {"topic": "orders"}, cid, payload=f"b{n}")
                    for n in range(3)
                ]
                r = await shop.post(
                    "/v1/messages/batch", {"objects": batch}, headers={"Idempotency-Key": "plan-2"}
                )
                assert r.status_code == 200, r.text
                assert [x["status"] for x in r.json()["results"]] == [201, 201, 201]
                assert (await ann.send(cid, "replies", "thanks")).status_code == 201
            finally:
                event.remove(Engine, "before_cursor_execute", through_sqlalchemy)

    # Every statement of the group was among them (the stored responses looked up and
    # written for the keyed requests).
    pg = fresh_database_url.startswith("postgresql")
    expected = _PG_GROUP if pg else _SQLITE_GROUP
    assert {marker for marker in expected for sql in group if marker in sql} == set(expected)
    statements = _distinct((s, p) for s, p in issued if s.lstrip().split()[0].upper() in _JUDGED)
    engine = create_engine(fresh_database_url)
    try:
        async with engine.connect() as conn:
            await price_out_whole_reads(conn)
            for statement, params in statements:
                unbounded = await whole_reads(conn, statement, params, POPULATED)
                assert not unbounded, (statement, unbounded)
    finally:
        await engine.dispose()


_JUDGED = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
_SQLITE_GROUP = (
    "FROM idempotency_records",
    "FROM connections",
    "UPDATE connections",
    "INSERT INTO log_entries",
    "UPDATE parties",
    "INSERT INTO events",
    "INSERT INTO idempotency_records",
)
_PG_GROUP = (
    "FROM idempotency_records",
    "FROM connections",
    "WITH saved AS",
    "INSERT INTO idempotency_records",
)


async def _seed(url: str, template: seed.Template) -> None:
    """``CLONES`` connections of the template's business, three messages each (the last
    a reply into the business's inbox), a stored response per seeded person, statistics."""
    engine = create_engine(url)
    try:
        async with writer_engine(engine).begin() as conn:
            obj, payload = await seed.sample_message(conn)
            await seed.clone(
                conn,
                template,
                start=1,
                count=CLONES,
                messages=3,
                message_object=obj,
                payload=payload,
                replies=True,
            )
            await conn.execute(
                text(
                    "INSERT INTO idempotency_records (party_id, key, request_hash, "
                    "status_code, response, created_at) SELECT id, 'k-' || id, 'h', 201, "
                    "'{}', 0 FROM parties"
                )
            )
            await conn.execute(text("ANALYZE"))
            counts = await seed.table_counts(conn)
    finally:
        await engine.dispose()
    assert counts["connections"] > CLONES
    assert counts["events"] >= 3 * CLONES


def _distinct(pairs: Any) -> list[tuple[str, Any]]:
    """One (statement, params) per statement text: the first seen."""
    seen: dict[str, Any] = {}
    for statement, params in pairs:
        seen.setdefault(statement, params)
    return list(seen.items())
