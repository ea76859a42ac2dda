"""The set-based send: all messages of a write batch in a handful of statements.

A send's rules are all decided in Python (``rapport_protocol``'s ``decide`` and ``apply``)
on the connection's state snapshot; only the reads and writes around them touch the
database. Issued one send at a time that was ~5 statements per message, and per-statement
overhead in Python (SQLAlchemy, the driver hand-off) was most of a send's CPU
(bench/PROFILE.md). Here the write batcher hands over every send waiting for the same
commit, and the whole group costs, whatever its size:

1. one SELECT of the stored responses for the requests' ``Idempotency-Key`` s;
2. one SELECT of the connections (``FOR UPDATE`` on PostgreSQL, in cid order, so another
   instance cannot change them before the commit; SQLite's writer holds the write lock);
3. the decisions, in submission order, each on the state left by the previous send of the
   same connection (two sends on one chain in one batch are applied in turn);
4. one executemany compare-and-swap UPDATE of the touched connections;
5. one multi-row INSERT of the log entries (RETURNING their numbers in parameter order);
6. one executemany UPDATE of the recipients' event counters, one SELECT of the new tops
   and one multi-row INSERT of the events — or of the held messages for muted recipients;
7. one multi-row INSERT of the stored responses.

On PostgreSQL steps 4–6 are one statement (``SendSQL.write_postgres``), which also sends
the recipients' wake-up notifications: a batch of sends is then BEGIN, the SELECT(s), that
statement, the stored responses if any, and COMMIT — fewer round trips, each of which
waits behind whatever the event loop is doing.

Refusals happen in step 3, before the first write, and concern their request only. A
database error or a lost compare-and-swap fails the group: the batcher then reruns every
request as its own unit inside a SAVEPOINT (``Sends.one``, the same code on a group of one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from rapport_protocol import ConnectionState
from rapport_protocol.envelope import SignedObject

from ..connections.codec import object_json
from ..connections.service import require_sender, transition
from ..connections.states import StateCache
from ..domain import DomainError, NotFound, Subject
from ..idempotency import stored_reply
from ..schemas import SendResult
from ..writes import StaleWrite, UnitContext
from .send_sql import SendSQL


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One ``POST /v1/connections/{cid}/messages``, verified but not yet applied."""

    subject: Subject
    cid: str
    obj: SignedObject
    now: int
    idempotency: tuple[str, str] | None = None
    """(Idempotency-Key, digest of the request) when the client sent a key."""


@dataclass(frozen=True, slots=True)
class SendReply:
    status_code: int
    text: str
    replayed: bool = False


@dataclass(slots=True)
class _Chain:
    """A connection touched by this group: its row and its state after the sends so far."""

    inviter_id: str
    acceptor_id: str
    version: int
    state: ConnectionState
    changed: bool = False


@dataclass(frozen=True, slots=True)
class _Accepted:
    index: int
    request: SendRequest
    recipient: str
    held: bool
    release_time: int | None


class Sends:
    """The send group handler (:class:`~rapport_server.writes.GroupHandler`) of one app,
    with the parsed states of the connections it wrote (see ``connections/states``)."""

    lean = True
    """It needs only the transaction's driver connection: a batch of sends alone runs
    without an ORM session (``WriteBatcher._lean_groups``)."""

    def __init__(self, states: StateCache) -> None:
        self.states = states

    async def __call__(self, ctx: UnitContext, requests: list[SendRequest]) -> list[Any]:
        return await send_group(ctx, requests, self.states)

    async def one(self, ctx: UnitContext, request: SendRequest) -> SendReply:
        """The same send as a plain write unit (the batcher's fallback)."""
        (outcome,) = await send_group(ctx, [request], self.states)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, SendReply)
        return outcome


async def send_group(
    ctx: UnitContext, requests: list[SendRequest], states: StateCache
) -> list[Any]:
    """Apply ``requests`` (a write batch's sends); one reply or exception per request."""
    sql = SendSQL(*await ctx.driver())
    now = max(r.now for r in requests)  # one instant for the batch: monotonic per chain
    outcomes: list[Any] = [None] * len(requests)
    pending = await _replays(sql, requests, outcomes)
    chains = await _load(sql, {requests[i].cid for i in pending}, states)

    accepted: list[_Accepted] = []
    for i in pending:
        request = requests[i]
        try:
            require_sender(request.subject, request.obj)
            chain = chains.get(request.cid)
            party = request.subject.party_id
            if chain is None or party not in (chain.inviter_id, chain.acceptor_id):
                raise NotFound("no such connection")
            new_state, verdict = transition(chain.state, request.obj, now)
        except DomainError as exc:
            outcomes[i] = exc
            continue
        chain.state = new_state
        chain.changed = True
        recipient = chain.acceptor_id if chain.inviter_id == party else chain.inviter_id
        held = verdict is not None and verdict.held
        release = verdict.release_time if verdict is not None else None
        accepted.append(_Accepted(i, request, recipient, held, release))
    if not accepted:
        return outcomes

    # From here on, every statement writes: an error fails the whole group (rerun one by one).
    changed = [(cid, chain) for cid, chain in chains.items() if chain.changed]
    if sql.postgres:
        seqs = await _write_postgres(sql, ctx, changed, accepted, now)
    else:
        seqs = await _write(sql, ctx, changed, accepted, now)

    def remember() -> None:  # the new states, once they are the committed ones
        for cid, chain in changed:
            states.put(cid, chain.version + 1, chain.state)

    ctx.after_commit(remember)

    records = []
    for a, seq in zip(accepted, seqs, strict=True):
        text = SendResult(
            id=a.request.obj.id,
            cid=a.request.cid,
            server_seq=seq,
            held=a.held,
            release_time=a.release_time,
        ).model_dump_json()
        outcomes[a.index] = SendReply(201, text)
        if a.request.idempotency is not None:
            key, digest = a.request.idempotency
            records.append((a.request.subject.party_id, key, digest, 201, text, now))
    if records:
        await sql.insert_records(records)
    return outcomes


def _log_row(a: _Accepted) -> tuple[str, str, str, str, str, str | None]:
    """(cid, object_id, type, sender_id, object, payload) of an accepted send's log entry."""
    obj = a.request.obj
    return (
        a.request.cid,
        obj.id,
        obj.type.value,
        a.request.subject.party_id,
        object_json(obj),
        obj.payload,
    )


async def _write(
    sql: SendSQL,
    ctx: UnitContext,
    changed: list[tuple[str, _Chain]],
    accepted: list[_Accepted],
    now: int,
) -> list[int]:
    """The group's writes, a statement per table (SQLite); returns the log numbers."""
    saved = await sql.save_states(
        [
            (
                chain.state.model_dump_json(),
                chain.state.status,
                chain.version + 1,
                now,
                cid,
                chain.version,
            )
            for cid, chain in changed
        ]
    )
    if saved != len(changed):
        raise StaleWrite("a connection changed under the batch")
    seqs = await sql.append_log([(*_log_row(a), now) for a in accepted])
    await _deliver(sql, ctx, accepted, seqs, now)
    return seqs


async def _write_postgres(
    sql: SendSQL,
    ctx: UnitContext,
    changed: list[tuple[str, _Chain]],
    accepted: list[_Accepted],
    now: int,
) -> list[int]:
    """The same writes in one statement (PostgreSQL), with the recipients' wake-up hints
    where the batch allows (``UnitContext.hints``); returns the log numbers."""
    woken = {a.recipient for a in accepted if not a.held}
    saved, seqs = await sql.write_postgres(
        [
            (cid, chain.state.model_dump_json(), chain.state.status, chain.version)
            for cid, chain in changed
        ],
        [(*_log_row(a), a.recipient, a.held, a.release_time) for a in accepted],
        now,
        ctx.hints(woken),
    )
    if saved != len(changed):
        raise StaleWrite("a connection changed under the batch")
    ctx.touched().update(woken)
    return seqs


async def _replays(sql: SendSQL, requests: list[SendRequest], outcomes: list[Any]) -> list[int]:
    """Answer requests whose ``Idempotency-Key`` already has a stored response; returns
    the indexes of the others. A key twice in one batch: the second waits for the next
    batch, where it finds the first one's response (or, if that was refused, runs)."""
    keyed = [
        (i, r.subject.party_id, r.idempotency) for i, r in enumerate(requests) if r.idempotency
    ]
    if not keyed:
        return list(range(len(requests)))
    rows = await sql.stored_replies(
        sorted({p for _, p, _ in keyed}), sorted({k[0] for _, _, k in keyed})
    )
    found = {(row[0], row[1]): row for row in rows}
    seen: set[tuple[str, str]] = set()
    for i, party, (key, digest) in keyed:
        row = found.get((party, key))
        if row is not None:
            try:
                code, text = stored_reply(row[2], row[3], row[4], digest)
            except DomainError as exc:
                outcomes[i] = exc
                continue
            outcomes[i] = SendReply(code, text, replayed=True)
        elif (party, key) in seen:
            outcomes[i] = StaleWrite("the same Idempotency-Key is in this batch")
        else:
            seen.add((party, key))
    return [i for i, outcome in enumerate(outcomes) if outcome is None]


async def _load(sql: SendSQL, cids: set[str], states: StateCache) -> dict[str, _Chain]:
    if not cids:
        return {}
    return {
        cid: _Chain(inviter, acceptor, version, states.parse(cid, version, state))
        for cid, inviter, acceptor, state, version in await sql.connections(list(cids))
    }


async def _deliver(
    sql: SendSQL, ctx: UnitContext, accepted: list[_Accepted], seqs: list[int], now: int
) -> None:
    """Put each accepted message in its recipient's stream, or hold it for a muted one."""
    held = []
    delivered: list[tuple[str, str, int]] = []
    for a, seq in zip(accepted, seqs, strict=True):
        if a.held:
            held.append((a.recipient, a.request.cid, seq, a.release_time, now))
        else:
            delivered.append((a.recipient, a.request.cid, seq))
    if held:
        await sql.insert_held(held)
    if not delivered:
        return
    counts = Counter(party for party, _, _ in delivered)
    # Bump every recipient's counter by its number of new events, then read the new tops.
    # The UPDATE keeps the rows locked to the commit (and SQLite's writer holds the write
    # lock), so the tops read are ours and each party's numbers become visible in order.
    # In id order, as every batch does: two instances' batches never wait on each other
    # in a cycle.
    tops = await sql.bump_parties([(n, p) for p, n in sorted(counts.items())])
    next_seq = {party: tops[party] - n + 1 for party, n in counts.items()}
    events = []
    for party, cid, seq in delivered:
        number = next_seq[party]
        next_seq[party] = number + 1
        events.append((party, number, cid, "message", seq, now))
    await sql.insert_events(events)
    ctx.touched().update(counts)
