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

With ``replies``, each clone's last message is its person's, to the business: the
template's business then holds an inbox of one message per clone, spread over all of
them (what a page of one connection's inbox is measured on at scale).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(frozen=True)
class Template:
    """A connection made through the API, to be cloned. The person is the acceptor."""

    cid: str
    person_id: str
    person_did: str


def _sql(dialect: str, replies: bool = False) -> dict[str, str]:
    if dialect == "postgresql":
        series = "SELECT generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS i"
        per = "SELECT generate_series(1, CAST(:per AS integer)) AS j"
        pid = "'seed-' || lpad(n.i::text, 31, '0')"
        cid = "'f' || lpad(to_hex(n.i), 31, '0')"
        did = "'did:key:z6MkSeed' || lpad(n.i::text, 40, '0')"
        oid = "lpad(to_hex(n.i), 56, '0') || lpad(k.j::text, 8, '0')"
        seq_of = "CAST(substr(l.object_id, 57, 8) AS bigint)"
        prefix = "WITH "
        now, count = "CAST(:now AS bigint)", "CAST(:per AS bigint)"
        after, upto = "CAST(:after AS bigint)", "CAST(:upto AS bigint)"
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
        now, count, after, upto = ":now", ":per", ":after", ":upto"
        tdid, obj, payload = ":tdid", ":object", ":payload"
    # With replies, message number ``per`` of a clone is its person's, and its event goes
    # to the business, numbered above the business's stream (``:base`` + the log's seq:
    # unique and in the log's order; the stream may have gaps, as after a sever).
    reply = f"k.j = {count}" if replies else "1 = 0"
    is_reply = "l.sender_id = c.acceptor_id" if replies else "1 = 0"
    base = "CAST(:base AS bigint)" if dialect == "postgresql" else ":base"
    received = f"{count} - 1" if replies else count
    return {
        "parties": f"""{prefix} n(i) AS ({series})
            INSERT INTO parties (id, kind, did, display_name, created_at, event_seq)
            SELECT {pid}, 'person', {did}, 'Seeded person', {now}, {received} FROM n""",
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
            SELECT {cid}, {oid}, 'message',
                CASE WHEN {reply} THEN {pid} ELSE c.inviter_id END, {obj}, {payload}, {now}
            FROM n, k, connections c WHERE c.cid = :tcid""",
        "events": f"""INSERT INTO events (party_id, seq, cid, kind, log_seq, created_at)
            SELECT CASE WHEN {is_reply} THEN c.inviter_id ELSE c.acceptor_id END,
                CASE WHEN {is_reply} THEN {base} + l.seq ELSE {seq_of} END,
                l.cid, 'message', l.seq, {now}
            FROM log_entries l JOIN connections c ON c.cid = l.cid
            WHERE l.seq > {after} AND l.seq <= {upto}""",
        # After the events: the business's stream goes on above its seeded replies.
        "stream": """UPDATE parties SET event_seq = (
                SELECT max(e.seq) FROM events e WHERE e.party_id = parties.id)
            WHERE id = (SELECT inviter_id FROM connections WHERE cid = :tcid)""",
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
    replies: bool = False,
) -> None:
    """Clone ``template`` as connections number ``start`` … ``start + count - 1``.

    Each clone gets ``messages`` messages from the template's inviter (with inbox events);
    with ``replies``, the last of them is from its person to the inviter instead.
    Numbers must not overlap between calls on one database.
    """
    if count <= 0:
        return
    after = await _top_seq(conn)
    base = await _inviter_stream(conn, template)
    await _clone_rows(
        conn,
        template,
        start=start,
        count=count,
        messages=messages,
        message_object=message_object,
        payload=payload,
        replies=replies,
    )
    if messages:
        await _clone_events(conn, after, await _top_seq(conn), replies=replies, base=base)
        if replies:
            await _continue_stream(conn, template)


async def _inviter_stream(conn: AsyncConnection, template: Template) -> int:
    """The template inviter's last event number."""
    found = await conn.execute(
        text(
            "SELECT p.event_seq FROM parties p JOIN connections c ON c.inviter_id = p.id "
            "WHERE c.cid = :tcid"
        ),
        {"tcid": template.cid},
    )
    return int(found.scalar_one())


async def _continue_stream(conn: AsyncConnection, template: Template) -> None:
    """Move the inviter's event counter past the seeded replies' numbers."""
    sql = _sql(conn.dialect.name, replies=True)
    await conn.execute(text(sql["stream"]), {"tcid": template.cid})


async def _top_seq(conn: AsyncConnection) -> int:
    return int(
        (await conn.execute(text("SELECT coalesce(max(seq), 0) FROM log_entries"))).scalar_one()
    )


async def _clone_rows(
    conn: AsyncConnection,
    template: Template,
    *,
    start: int,
    count: int,
    messages: int,
    message_object: str,
    payload: str,
    replies: bool = False,
) -> None:
    """Parties, connections, grants and log entries of clones ``start`` … (no events)."""
    sql = _sql(conn.dialect.name, replies)
    params = {
        "start": start,
        "stop": start + count - 1,
        "per": messages,
        "now": int(time.time()),
        "tcid": template.cid,
        "tpid": template.person_id,
        "tdid": template.person_did,
    }
    await conn.execute(text(sql["parties"]), params)
    await conn.execute(text(sql["connections"]), params)
    await conn.execute(text(sql["grants"]), params)
    if messages:
        await conn.execute(
            text(sql["log"]), {**params, "object": message_object, "payload": payload}
        )


async def _clone_events(
    conn: AsyncConnection, after: int, upto: int, *, replies: bool = False, base: int = 0
) -> None:
    """Inbox events of the seeded log entries with ``after < seq <= upto`` (a reply's
    numbered ``base`` + its log seq in its inviter's stream)."""
    sql = _sql(conn.dialect.name, replies)
    params = {"now": int(time.time()), "after": after, "upto": upto, "base": base}
    await conn.execute(text(sql["events"]), params)


SEEDED_TABLES = ("parties", "connections", "active_grants", "log_entries", "events")

# The secondary indexes and the foreign-key and unique constraints of the seeded tables,
# as PostgreSQL itself prints them, so they come back exactly as the migrations made them
# (a unique constraint is rebuilt from its index's definition, then attached to it).
# Primary keys stay: the seed statements join on them, and other tables' keys refer to them.
_PG_SECONDARY = """
SELECT 'index', i.indexrelid::regclass::text, c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relname = ANY(:tables) AND c.relnamespace = 'public'::regnamespace
  AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
UNION ALL
SELECT CASE k.contype WHEN 'f' THEN 'foreign' ELSE 'unique' END, k.conname, c.relname,
       CASE k.contype WHEN 'f' THEN pg_get_constraintdef(k.oid)
            ELSE pg_get_indexdef(k.conindid) END
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relname = ANY(:tables) AND c.relnamespace = 'public'::regnamespace
  AND k.contype IN ('f', 'u')
ORDER BY 1, 3, 2
"""

# The seed's own sessions only: index builds sort in memory; a seed statement's commit
# need not wait for its WAL flush (a crash mid-seed loses only the seed; the bench fails).
_PG_SEED_SESSION = ("SET maintenance_work_mem = '512MB'", "SET synchronous_commit = off")


async def _seed_session(conn: AsyncConnection) -> AsyncConnection:
    for statement in _PG_SEED_SESSION:
        await conn.execute(text(statement))
    return conn


async def bulk_clone(
    engine: AsyncEngine,
    template: Template,
    *,
    start: int,
    count: int,
    messages: int,
    message_object: str,
    payload: str,
    replies: bool = False,
    sessions: int = 2,
    log: Callable[[str], None] = lambda _: None,
) -> None:
    """:func:`clone` for a million-row seed on PostgreSQL, in three phases.

    1. Drop the seeded tables' secondary indexes and foreign-key / unique constraints:
       maintaining them row by row, and a foreign-key trigger per inserted row (a
       ``SELECT … FOR KEY SHARE`` of the parent), is where a large ``INSERT … SELECT``
       spends most of its time.
    2. Load the rows, the clone numbers split over ``sessions`` concurrent sessions (one
       core each), then the events split by log sequence ranges.
    3. Rebuild every index (a sorted build) and every constraint, then validate each
       foreign key against all rows (one set-based check each), again over ``sessions``.

    The tables stay ordinary logged tables and end with exactly the indexes and validated
    constraints they began with. ``engine`` must be the seed's own (its sessions keep the
    seed's settings). Not atomic: if it fails the database is only fit to be
    dropped (as the bench does with its databases). Not while a server uses the database.
    """
    if count <= 0:
        return
    began = time.monotonic()

    async def run(statements: list[str]) -> None:
        # Each statement its own transaction: no lock is held while waiting for another.
        async with engine.connect() as conn:
            await _seed_session(await conn.execution_options(isolation_level="AUTOCOMMIT"))
            for statement in statements:
                await conn.execute(text(statement))

    async with engine.begin() as conn:
        found = (await conn.execute(text(_PG_SECONDARY), {"tables": list(SEEDED_TABLES)})).all()
        after = await _top_seq(conn)
        base = await _inviter_stream(conn, template)
        for kind, name, table, _ in found:
            if kind == "index":
                await conn.execute(text(f'DROP INDEX "{name}"'))
            else:
                await conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))

    async def rows(first: int, n: int) -> None:
        async with engine.begin() as conn:
            await _clone_rows(
                await _seed_session(conn),
                template,
                start=first,
                count=n,
                messages=messages,
                message_object=message_object,
                payload=payload,
                replies=replies,
            )

    async def events(low: int, high: int) -> None:
        async with engine.begin() as conn:
            await _clone_events(await _seed_session(conn), low, high, replies=replies, base=base)

    await asyncio.gather(*(rows(first, n) for first, n in _split(start, count, sessions)))
    loaded = time.monotonic()
    if messages:
        upto = await _scalar(engine, "SELECT coalesce(max(seq), 0) FROM log_entries")
        await asyncio.gather(
            *(
                events(first - 1, first + n - 1)
                for first, n in _split(after + 1, upto - after, sessions)
            )
        )
    evented = time.monotonic()

    # Indexes (unique ones attached to their constraint) before the foreign keys, which
    # are checked through them; largest tables first so the sessions finish together.
    size = {t: await _scalar(engine, f"SELECT pg_table_size('{t}')") for t in SEEDED_TABLES}
    by_size = sorted(found, key=lambda f: -size[f[2]])
    builds = [
        [definition]
        + (
            [f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"']
            if kind == "unique"
            else []
        )
        for kind, name, table, definition in by_size
        if kind != "foreign"
    ]
    await _share(run, builds, sessions)
    indexed = time.monotonic()
    foreign = [f for f in by_size if f[0] == "foreign"]
    await run([f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" {d} NOT VALID' for _, n, t, d in foreign])
    await _share(
        run,
        [[f'ALTER TABLE "{t}" VALIDATE CONSTRAINT "{n}"'] for _, n, t, _ in foreign],
        sessions,
    )
    if messages and replies:
        async with engine.begin() as conn:
            await _continue_stream(conn, template)
    log(
        f"rows {loaded - began:.0f} s, events {evented - loaded:.0f} s, "
        f"indexes {indexed - evented:.0f} s, foreign keys {time.monotonic() - indexed:.0f} s"
    )


def _split(first: int, n: int, parts: int) -> list[tuple[int, int]]:
    """``n`` numbers from ``first`` as up to ``parts`` (first, count) runs."""
    size = -(-n // max(1, parts))
    return [(first + k, min(size, n - k)) for k in range(0, n, size)] if n > 0 else []


async def _share(
    run: Callable[[list[str]], Awaitable[None]], work: list[list[str]], sessions: int
) -> None:
    """Run the statement groups of ``work``, in order, over ``sessions`` sessions."""
    queue = list(reversed(work))

    async def worker() -> None:
        while queue:
            await run(queue.pop())

    await asyncio.gather(*(worker() for _ in range(sessions)))


async def _scalar(engine: AsyncEngine, query: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(query))).scalar_one())


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
    """Planner statistics as the server's own database would have them after growing.

    PostgreSQL: refreshed, as autovacuum does after a bulk load (without them its plans
    assume the tables are still small). SQLite gathers none unless told to, and the server
    never runs ANALYZE, so the seed adds none either: with statistics for the large seeded
    tables but none for the empty ``webhook_endpoints``, SQLite's planner drives the webhook
    worker's "endpoint behind?" probe from ``parties`` (a full scan, ≈ 15-20 ms at 100 k
    parties, after every commit), which the bench once mistook for the cost of scale.
    """
    if conn.dialect.name == "postgresql":
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
