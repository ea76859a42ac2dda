"""Bulk seeding straight into the tables, set-based (no HTTP, no per-row round trips).

A *template* connection is first made through the public API, so its stored state is
exactly what the server writes. Seeding then clones it ``count`` times with one
``INSERT … SELECT`` per table over a generated series (``WITH RECURSIVE`` on SQLite,
``generate_series`` on PostgreSQL), giving every clone its own person (party row and
did), its own cid, the template's grants, and ``messages`` stored messages with their
inbox events.

Clones are realistic for the server's queries and indexes (same row shapes and sizes,
same index keys), but their logs are not signed by their seeded parties: a seeded
connection cannot be verified offline or written to by its seeded person.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Template:
    """A connection made through the API, to be cloned. The person is the acceptor."""

    cid: str
    person_id: str
    person_did: str


def _sql(dialect: str) -> dict[str, str]:
    if dialect == "postgresql":
        series = "SELECT generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS i"
        per = "SELECT generate_series(1, CAST(:per AS integer)) AS j"
        pid = "'seed-' || lpad(n.i::text, 31, '0')"
        cid = "'f' || lpad(to_hex(n.i), 31, '0')"
        did = "'did:key:z6MkSeed' || lpad(n.i::text, 40, '0')"
        oid = "lpad(to_hex(n.i), 56, '0') || lpad(k.j::text, 8, '0')"
        seq_of = "CAST(substr(l.object_id, 57, 8) AS bigint)"
        prefix = "WITH "
        now, count, after = "CAST(:now AS bigint)", "CAST(:per AS bigint)", "CAST(:after AS bigint)"
        tdid, obj, payload = (
            "CAST(:tdid AS text)",
            "CAST(:object AS text)",
            "CAST(:payload AS text)",
        )
    else:
        series = "SELECT :start AS i UNION ALL SELECT i + 1 FROM n WHERE i < :stop"
        per = "SELECT 1 AS j UNION ALL SELECT j + 1 FROM k WHERE j < :per"
        pid = "'seed-' || printf('%031d', n.i)"
        cid = "'f' || printf('%031x', n.i)"
        did = "'did:key:z6MkSeed' || printf('%040d', n.i)"
        oid = "printf('%056x%08d', n.i, k.j)"
        seq_of = "CAST(substr(l.object_id, 57, 8) AS INTEGER)"
        prefix = "WITH RECURSIVE "
        now, count, after = ":now", ":per", ":after"
        tdid, obj, payload = ":tdid", ":object", ":payload"
    return {
        "parties": f"""{prefix} n(i) AS ({series})
            INSERT INTO parties (id, kind, did, display_name, created_at, event_seq)
            SELECT {pid}, 'person', {did}, 'Seeded person', {now}, {count} FROM n""",
        "connections": f"""{prefix} n(i) AS ({series})
            INSERT INTO connections (cid, invitation_id, inviter_id, acceptor_id, status,
                state, version, created_at, updated_at, data_instruction)
            SELECT {cid}, c.invitation_id, c.inviter_id, {pid}, c.status,
                replace(replace(c.state, c.cid, {cid}), {tdid}, {did}),
                c.version, c.created_at, c.updated_at, c.data_instruction
            FROM n, connections c WHERE c.cid = :tcid""",
        "grants": f"""{prefix} n(i) AS ({series})
            INSERT INTO active_grants (cid, grantor_id, scope, topic, grantee_id, grant_id)
            SELECT {cid},
                CASE WHEN g.grantor_id = :tpid THEN {pid} ELSE g.grantor_id END,
                g.scope, g.topic,
                CASE WHEN g.grantee_id = :tpid THEN {pid} ELSE g.grantee_id END,
                g.grant_id
            FROM n, active_grants g WHERE g.cid = :tcid""",
        "log": f"""{prefix} n(i) AS ({series}), k(j) AS ({per})
            INSERT INTO log_entries (cid, object_id, type, sender_id, object, payload,
                received_at)
            SELECT {cid}, {oid}, 'message', c.inviter_id, {obj}, {payload}, {now}
            FROM n, k, connections c WHERE c.cid = :tcid""",
        "events": f"""INSERT INTO events (party_id, seq, cid, kind, log_seq, created_at)
            SELECT c.acceptor_id, {seq_of}, l.cid, 'message', l.seq, {now}
            FROM log_entries l JOIN connections c ON c.cid = l.cid
            WHERE l.seq > {after}""",
    }


async def clone(
    conn: AsyncConnection,
    template: Template,
    *,
    start: int,
    count: int,
    messages: int,
    message_object: str,
    payload: str,
) -> None:
    """Clone ``template`` as connections number ``start`` … ``start + count - 1``.

    Each clone gets ``messages`` messages from the template's inviter (with inbox events).
    Numbers must not overlap between calls on one database.
    """
    if count <= 0:
        return
    sql = _sql(conn.dialect.name)
    now = int(time.time())
    params = {
        "start": start,
        "stop": start + count - 1,
        "per": messages,
        "now": now,
        "tcid": template.cid,
        "tpid": template.person_id,
        "tdid": template.person_did,
    }
    await conn.execute(text(sql["parties"]), params)
    await conn.execute(text(sql["connections"]), params)
    await conn.execute(text(sql["grants"]), params)
    if messages:
        after = (await conn.execute(text("SELECT coalesce(max(seq), 0) FROM log_entries"))).scalar()
        await conn.execute(
            text(sql["log"]), {**params, "object": message_object, "payload": payload}
        )
        await conn.execute(text(sql["events"]), {"now": now, "after": after})


async def sample_message(conn: AsyncConnection) -> tuple[str, str]:
    """The stored text and payload of one real message (to size the seeded ones)."""
    row = (
        await conn.execute(
            text(
                "SELECT object, payload FROM log_entries WHERE type = 'message' "
                "AND payload IS NOT NULL LIMIT 1"
            )
        )
    ).first()
    if row is None:
        raise RuntimeError("no stored message to copy; send one first")
    return str(row[0]), str(row[1])


async def analyze(conn: AsyncConnection) -> None:
    """Refresh planner statistics after a bulk load (as autovacuum would)."""
    await conn.execute(text("ANALYZE"))


async def checkpoint(url: str) -> None:
    """Write the bulk load out now (PostgreSQL CHECKPOINT, SQLite WAL checkpoint), so the
    measured load that follows does not pay for the seed's I/O."""
    if url.startswith("sqlite"):
        import sqlite3

        from sqlalchemy.engine import make_url

        with contextlib.closing(sqlite3.connect(make_url(url).database or "")) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CHECKPOINT"))
    finally:
        await engine.dispose()


async def table_counts(conn: AsyncConnection) -> dict[str, int]:
    """Row counts of the tables the figures depend on."""
    counts = {}
    for table in ("parties", "connections", "log_entries", "events", "active_grants"):
        found = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        counts[table] = int(found)
    return counts
