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

Refusals happen in step 3, before the first write, and concern their request only. A
database error or a lost compare-and-swap fails the group: the batcher then reruns every
request as its own unit inside a SAVEPOINT (``Sends.one``, the same code on a group of one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from rapport_protocol import ConnectionState
from rapport_protocol.envelope import SignedObject
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..connections.codec import object_json
from ..connections.repository import APPEND_LOG, SAVE_STATE
from ..connections.service import require_sender, transition
from ..connections.states import StateCache
from ..domain import DomainError, NotFound, Subject
from ..events.store import touched
from ..idempotency import stored_reply
from ..schemas import SendResult
from ..tables import Connection, Event, HeldMessage, IdempotencyRecord, LogEntry, Party
from ..writes import StaleWrite, UnitContext


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


_CONNECTIONS = cast(Table, Connection.__table__)
_LOG = cast(Table, LogEntry.__table__)
_EVENTS = cast(Table, Event.__table__)
_HELD = cast(Table, HeldMessage.__table__)
_PARTIES = cast(Table, Party.__table__)
_RECORDS = cast(Table, IdempotencyRecord.__table__)

_SELECT = select(
    _CONNECTIONS.c.cid,
    _CONNECTIONS.c.inviter_id,
    _CONNECTIONS.c.acceptor_id,
    _CONNECTIONS.c.state,
    _CONNECTIONS.c.version,
).where(_CONNECTIONS.c.cid.in_(bindparam("cids", expanding=True)))
_SELECT_LOCKED = _SELECT.order_by(_CONNECTIONS.c.cid).with_for_update()
# Two IN lists on the primary key's columns (exact pairs are picked in Python): SQLite
# answers ``(party_id, key) IN (VALUES …)`` with more than one pair by scanning the table.
_RECORDS_FOR = select(
    _RECORDS.c.party_id,
    _RECORDS.c.key,
    _RECORDS.c.request_hash,
    _RECORDS.c.status_code,
    _RECORDS.c.response,
).where(
    _RECORDS.c.party_id.in_(bindparam("parties", expanding=True)),
    _RECORDS.c.key.in_(bindparam("keys", expanding=True)),
)
_INSERT_EVENTS = insert(_EVENTS)
_BUMP = (
    update(_PARTIES)
    .where(_PARTIES.c.id == bindparam("b_party"))
    .values(event_seq=_PARTIES.c.event_seq + bindparam("b_n"))
)
_TOPS = select(_PARTIES.c.id, _PARTIES.c.event_seq).where(
    _PARTIES.c.id.in_(bindparam("parties", expanding=True))
)
_INSERT_HELD = insert(_HELD)
_INSERT_RECORDS = insert(_RECORDS)


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
    session = ctx.session
    now = max(r.now for r in requests)  # one instant for the batch: monotonic per chain
    outcomes: list[Any] = [None] * len(requests)
    pending = await _replays(session, requests, outcomes)
    chains = await _load(session, {requests[i].cid for i in pending}, states)

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
    result = await session.execute(
        SAVE_STATE,
        [
            {
                "b_cid": cid,
                "b_version": chain.version,
                "b_state": chain.state.model_dump_json(),
                "b_status": chain.state.status,
                "b_new_version": chain.version + 1,
                "b_now": now,
            }
            for cid, chain in changed
        ],
    )
    if session.get_bind().dialect.supports_sane_multi_rowcount and result.rowcount != len(changed):  # type: ignore[attr-defined]
        raise StaleWrite("a connection changed under the batch")

    def remember() -> None:  # the new states, once they are the committed ones
        for cid, chain in changed:
            states.put(cid, chain.version + 1, chain.state)

    ctx.after_commit(remember)
    seqs = (
        (
            await session.execute(
                APPEND_LOG,
                [
                    {
                        "cid": a.request.cid,
                        "object_id": a.request.obj.id,
                        "type": a.request.obj.type.value,
                        "sender_id": a.request.subject.party_id,
                        "object": object_json(a.request.obj),
                        "payload": a.request.obj.payload,
                        "received_at": now,
                    }
                    for a in accepted
                ],
            )
        )
        .scalars()
        .all()
    )
    await _deliver(session, accepted, seqs, now)

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
            records.append(
                {
                    "party_id": a.request.subject.party_id,
                    "key": key,
                    "request_hash": digest,
                    "status_code": 201,
                    "response": text,
                    "created_at": now,
                }
            )
    if records:
        await session.execute(_INSERT_RECORDS, records)
    return outcomes


async def _replays(
    session: AsyncSession, requests: list[SendRequest], outcomes: list[Any]
) -> list[int]:
    """Answer requests whose ``Idempotency-Key`` already has a stored response; returns
    the indexes of the others. A key twice in one batch: the second waits for the next
    batch, where it finds the first one's response (or, if that was refused, runs)."""
    keyed = [
        (i, r.subject.party_id, r.idempotency) for i, r in enumerate(requests) if r.idempotency
    ]
    if not keyed:
        return list(range(len(requests)))
    rows = await session.execute(
        _RECORDS_FOR,
        {"parties": sorted({p for _, p, _ in keyed}), "keys": sorted({k[0] for _, _, k in keyed})},
    )
    found = {(row.party_id, row.key): row for row in rows}
    seen: set[tuple[str, str]] = set()
    for i, party, (key, digest) in keyed:
        row = found.get((party, key))
        if row is not None:
            try:
                code, text = stored_reply(row.request_hash, row.status_code, row.response, digest)
            except DomainError as exc:
                outcomes[i] = exc
                continue
            outcomes[i] = SendReply(code, text, replayed=True)
        elif (party, key) in seen:
            outcomes[i] = StaleWrite("the same Idempotency-Key is in this batch")
        else:
            seen.add((party, key))
    return [i for i, outcome in enumerate(outcomes) if outcome is None]


async def _load(session: AsyncSession, cids: set[str], states: StateCache) -> dict[str, _Chain]:
    if not cids:
        return {}
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = await session.execute(_SELECT_LOCKED if postgres else _SELECT, {"cids": sorted(cids)})
    return {
        row.cid: _Chain(
            row.inviter_id,
            row.acceptor_id,
            row.version,
            states.parse(row.cid, row.version, row.state),
        )
        for row in rows
    }


async def _deliver(session: AsyncSession, accepted: list[_Accepted], seqs: Any, now: int) -> None:
    """Put each accepted message in its recipient's stream, or hold it for a muted one."""
    held = []
    delivered: list[tuple[str, str, int]] = []
    for a, seq in zip(accepted, seqs, strict=True):
        if a.held:
            held.append(
                {
                    "party_id": a.recipient,
                    "cid": a.request.cid,
                    "log_seq": seq,
                    "release_at": a.release_time,
                    "created_at": now,
                }
            )
        else:
            delivered.append((a.recipient, a.request.cid, seq))
    if held:
        await session.execute(_INSERT_HELD, held)
    if not delivered:
        return
    counts = Counter(party for party, _, _ in delivered)
    # Bump every recipient's counter by its number of new events, then read the new tops.
    # The UPDATE keeps the rows locked to the commit (and SQLite's writer holds the write
    # lock), so the tops read are ours and each party's numbers become visible in order.
    # In id order, as every batch does: two instances' batches never wait on each other
    # in a cycle.
    bumps = [{"b_party": p, "b_n": n} for p, n in sorted(counts.items())]
    await session.execute(_BUMP, bumps)
    rows = await session.execute(_TOPS, {"parties": list(counts)})
    tops = {row.id: int(row.event_seq) for row in rows}
    next_seq = {party: tops[party] - n + 1 for party, n in counts.items()}
    events = []
    for party, cid, seq in delivered:
        number = next_seq[party]
        next_seq[party] = number + 1
        events.append(
            {
                "party_id": party,
                "seq": number,
                "cid": cid,
                "kind": "message",
                "log_seq": seq,
                "created_at": now,
            }
        )
    await session.execute(_INSERT_EVENTS, events)
    touched(session).update(counts)
