"""The send group's statements, issued on the driver connection of the batch's transaction.

Through SQLAlchemy each of the group's statements cost ~0.3 ms of Python (statement
cache lookup, parameter processing for every row, result adaptation, the greenlet hop)
against ~0.07 ms for the same statement on the driver (bench/PROFILE.md, session 4): with
eight statements a batch, that was a tenth of a send's CPU. So the group speaks SQL to the
driver directly — aiosqlite or asyncpg, whichever the engine uses — on the very connection
of the write batcher's transaction (the statements are part of it: same BEGIN, same
SAVEPOINTs, same COMMIT). The SQL is that of the Core statements it replaces, written
once per dialect. Values are always bound parameters; only markers vary with the batch.
Driver errors are raised as SQLAlchemy's exception types, so the batcher's rules (rerun
on a database error, refuse one unit on an integrity error) hold unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import exc

from ..db import DRIVER_ERRORS, driver_error

# PostgreSQL: one text per statement whatever the batch size (arrays, not marker lists),
# so asyncpg prepares each once.
_PG = {
    "replies": "SELECT party_id, key, request_hash, status_code, response "
    "FROM idempotency_records WHERE party_id = ANY($1::text[]) AND key = ANY($2::text[])",
    "connections": "SELECT cid, inviter_id, acceptor_id, state, version FROM connections "
    "WHERE cid = ANY($1::text[]) ORDER BY cid FOR NO KEY UPDATE",
    "records": "INSERT INTO idempotency_records "
    "(party_id, key, request_hash, status_code, response, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)",
}
# PostgreSQL: every write of a send group in one statement (one round trip, one statement
# for the server to plan) — the shape of the broadcast chunk's (messages/service.py).
# Log numbers are drawn in the order of the messages (two sends on one connection in one
# batch keep their order); the recipients' counters are locked in id order, as every
# batch, broadcast chunk and instance does, before they are bumped (a one-time condition
# of the UPDATE: the CTE is read in full before its first row). Locks are FOR NO KEY
# UPDATE, what an UPDATE of non-key columns takes: FOR UPDATE would also block the KEY
# SHARE locks of other transactions' foreign-key checks (a log entry's sender) and let
# a send batch and a broadcast chunk deadlock. The recipients' wake-up hints ($15, $16:
# the notifier's channel and payloads, none for a notifier that sends none) go out with
# it, as pg_notify, delivered on commit like the notifier's own statement, which the
# batch then skips. Returns the connections saved, the log numbers in message order, the
# rows written per table and the notifications sent.
_PG_WRITE = """
WITH saved AS (
    UPDATE connections SET state = u.state, status = u.status, version = u.version + 1,
        updated_at = $5
    FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[]) AS u(cid, state, status, version)
    WHERE connections.cid = u.cid AND connections.version = u.version
    RETURNING 1
),
numbered AS (
    SELECT m.*,
        nextval(CAST((SELECT pg_get_serial_sequence('log_entries', 'seq')) AS regclass)) AS seq
    FROM (
        SELECT * FROM unnest(
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::text[], $13::boolean[], $14::bigint[]
        ) WITH ORDINALITY
            AS u(cid, object_id, type, sender_id, object, payload, recipient, held, release_at, i)
        ORDER BY i
    ) AS m
),
log AS (
    INSERT INTO log_entries (seq, cid, object_id, type, sender_id, object, payload, received_at)
    SELECT seq, cid, object_id, type, sender_id, object, payload, $5 FROM numbered
    RETURNING 1
),
counts AS (
    SELECT recipient, count(*) AS n, array_agg(cid ORDER BY i) AS cids,
        array_agg(seq ORDER BY i) AS seqs
    FROM numbered WHERE NOT held GROUP BY recipient
),
locked AS (
    SELECT id FROM parties WHERE id IN (SELECT recipient FROM counts)
    ORDER BY id FOR NO KEY UPDATE
),
bumped AS (
    UPDATE parties SET event_seq = parties.event_seq + counts.n
    FROM counts
    WHERE parties.id = counts.recipient AND (SELECT count(*) FROM locked) >= 0
    RETURNING parties.id, parties.event_seq - counts.n AS base, counts.cids, counts.seqs
),
events AS (
    INSERT INTO events (party_id, seq, cid, kind, log_seq, created_at)
    SELECT bumped.id, bumped.base + e.n, e.cid, 'message', e.log_seq, $5
    FROM bumped, unnest(bumped.cids, bumped.seqs) WITH ORDINALITY AS e(cid, log_seq, n)
    RETURNING 1
),
held AS (
    INSERT INTO held_messages (party_id, cid, log_seq, release_at, created_at)
    SELECT recipient, cid, seq, release_at, $5 FROM numbered WHERE held
    RETURNING 1
),
hinted AS (
    SELECT pg_notify($15, payload) FROM unnest($16::text[]) AS payload
)
SELECT (SELECT count(*) FROM saved), ARRAY(SELECT seq FROM numbered ORDER BY i),
    (SELECT count(*) FROM log), (SELECT count(*) FROM events), (SELECT count(*) FROM held),
    (SELECT count(*) FROM hinted)
"""


def _marks(n: int) -> str:
    return ", ".join("?" * n)


# SQLite: marker lists sized to the batch; each text is made once per size (and sqlite3
# keeps the prepared statements). Only "?" markers are joined in (hence the noqa for S608):
# no value ever enters the SQL text. Every statement is one multi-row statement run with
# ``execute_fetchall``: one trip to aiosqlite's thread each, where ``executemany`` or a
# cursor took two or three (and a write batch waits for each trip behind whatever the
# event loop is doing: PROFILE.md, session 9).
def _rows(n: int, width: int) -> str:
    return ", ".join(["(" + _marks(width) + ")"] * n)


def _flat(rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The rows' values in order: the parameters of a multi-row statement."""
    return [value for row in rows for value in row]


@cache
def _sqlite_replies(parties: int, keys: int) -> str:
    return (
        "SELECT party_id, key, request_hash, status_code, response FROM idempotency_records "  # noqa: S608
        "WHERE party_id IN (" + _marks(parties) + ") AND key IN (" + _marks(keys) + ")"
    )


@cache
def _sqlite_connections(n: int) -> str:
    return (
        "SELECT cid, inviter_id, acceptor_id, state, version FROM connections WHERE cid IN ("  # noqa: S608
        + _marks(n)
        + ")"
    )


@cache
def _sqlite_save(n: int) -> str:
    # u: (state, status, new version, now, cid, old version) per row
    return (
        "UPDATE connections SET state = u.column1, status = u.column2, version = u.column3, "  # noqa: S608
        "updated_at = u.column4 FROM (VALUES " + _rows(n, 6) + ") AS u "
        "WHERE connections.cid = u.column5 AND connections.version = u.column6 RETURNING 1"
    )


@cache
def _sqlite_log(n: int) -> str:
    return (
        "INSERT INTO log_entries (cid, object_id, type, sender_id, object, payload, "  # noqa: S608
        "received_at) VALUES " + _rows(n, 7) + " RETURNING seq"
    )


@cache
def _sqlite_bump(n: int) -> str:
    # u: (n, party id) per row
    return (
        "UPDATE parties SET event_seq = event_seq + u.column1 FROM (VALUES "  # noqa: S608
        + _rows(n, 2)
        + ") AS u WHERE parties.id = u.column2 RETURNING parties.id, parties.event_seq"
    )


@cache
def _sqlite_insert(table: str, columns: str, width: int, n: int) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES " + _rows(n, width)  # noqa: S608


_EVENTS = ("events", "party_id, seq, cid, kind, log_seq, created_at", 6)
_HELD = ("held_messages", "party_id, cid, log_seq, release_at, created_at", 5)
_RECORDS = (
    "idempotency_records",
    "party_id, key, request_hash, status_code, response, created_at",
    6,
)


class SendSQL:
    """The driver connection of a write batch's transaction (``UnitContext.driver``),
    with the send group's SQL."""

    def __init__(self, driver: Any, postgres: bool) -> None:
        self._db = driver
        self._pg = postgres

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        try:
            if self._pg:
                return list(await self._db.fetch(sql, *args))
            return list(await self._db.execute_fetchall(sql, args))
        except DRIVER_ERRORS as error:
            raise driver_error(sql, error) from error

    async def _insert(self, into: tuple[str, str, int], rows: list[tuple[Any, ...]]) -> None:
        """SQLite: ``rows`` into (table, columns, width) with one multi-row INSERT."""
        sql = _sqlite_insert(*into, len(rows))
        await self._fetch(sql, _flat(rows))

    @property
    def postgres(self) -> bool:
        return self._pg

    async def stored_replies(self, parties: list[str], keys: list[str]) -> list[Any]:
        """(party_id, key, request_hash, status_code, response) of stored responses whose
        party and key are among these: two lists on the primary key's columns, the exact
        pairs picked by the caller (SQLite answers a ``(party_id, key) IN (VALUES …)`` of
        several pairs by scanning the table)."""
        if self._pg:
            return await self._fetch(_PG["replies"], [parties, keys])
        return await self._fetch(_sqlite_replies(len(parties), len(keys)), [*parties, *keys])

    async def connections(self, cids: list[str]) -> list[Any]:
        """(cid, inviter_id, acceptor_id, state, version) of these connections; on
        PostgreSQL locked in cid order (no other instance changes them before the commit,
        and two batches never wait on each other in a cycle). SQLite's writer holds the
        write lock already."""
        ordered = sorted(cids)
        if self._pg:
            return await self._fetch(_PG["connections"], [ordered])
        return await self._fetch(_sqlite_connections(len(ordered)), ordered)

    # SQLite: the group's writes a statement per table (PostgreSQL: write_postgres).

    async def save_states(self, rows: list[tuple[str, str, int, int, str, int]]) -> int:
        """Compare-and-swap (state, status, new version, now, cid, old version) each;
        returns the rows changed."""
        found = await self._fetch(_sqlite_save(len(rows)), _flat(rows))
        return len(found)

    async def append_log(self, rows: list[tuple[Any, ...]]) -> list[int]:
        """(cid, object_id, type, sender_id, object, payload, received_at) each; returns
        the log numbers in row order."""
        sql = _sqlite_log(len(rows))
        found = await self._fetch(sql, _flat(rows))
        # Numbers are handed out in insertion order, the rows' order (under SQLite's write
        # lock); RETURNING promises no order of its own, so sort.
        seqs = sorted(int(row[0]) for row in found)
        if len(seqs) != len(rows):
            raise exc.DBAPIError(sql, None, RuntimeError("the log append lost rows"))
        return seqs

    async def write_postgres(
        self,
        saves: list[tuple[str, str, str, int]],
        messages: list[tuple[Any, ...]],
        now: int,
        hints: tuple[str, list[str]] | None = None,
    ) -> tuple[int, list[int]]:
        """PostgreSQL: the group's writes in one statement. ``saves``: (cid, state, status,
        version decided on) per connection, compare-and-swapped; ``messages``: (cid,
        object_id, type, sender_id, object, payload, recipient, held, release_at) each, in
        order — logged, then put in the recipient's events or held; ``hints``: (channel,
        payloads) to ``pg_notify`` in the same statement (``UnitContext.hints``). Returns
        the connections saved and the log numbers in message order."""
        assert self._pg
        channel, payloads = hints or ("", [])
        columns = [list(column) for column in zip(*saves, strict=True)]
        columns += [list(column) for column in zip(*messages, strict=True)]
        rows = await self._fetch(_PG_WRITE, [*columns[:4], now, *columns[4:], channel, payloads])
        saved, seqs, logged, events, held, hinted = rows[0]
        if logged != len(messages) or events + held != len(messages) or hinted != len(payloads):
            raise exc.DBAPIError(_PG_WRITE, None, RuntimeError("the send write lost rows"))
        return int(saved), [int(seq) for seq in seqs]

    async def bump_parties(self, counts: list[tuple[int, str]]) -> dict[str, int]:
        """Add n to each party's event counter ((n, party id) each, in id order); returns
        the new tops by party."""
        rows = await self._fetch(_sqlite_bump(len(counts)), _flat(counts))
        return {row[0]: int(row[1]) for row in rows}

    async def insert_events(self, rows: list[tuple[Any, ...]]) -> None:
        """(party_id, seq, cid, kind, log_seq, created_at) each."""
        await self._insert(_EVENTS, rows)

    async def insert_held(self, rows: list[tuple[Any, ...]]) -> None:
        """(party_id, cid, log_seq, release_at, created_at) each."""
        await self._insert(_HELD, rows)

    async def insert_records(self, rows: list[tuple[Any, ...]]) -> None:
        """(party_id, key, request_hash, status_code, response, created_at) each."""
        if not self._pg:
            await self._insert(_RECORDS, rows)
            return
        try:
            await self._db.executemany(_PG["records"], rows)
        except DRIVER_ERRORS as error:
            raise driver_error(_PG["records"], error) from error
