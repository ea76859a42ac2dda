"""The send workload: parties and connections made through the public API, and messages
pre-signed by the load side (signing is the client's cost, not the server's).

Businesses send to people who granted them the ``orders`` topic. Every connection is its
own hash chain, so with more chains than load connections nothing serialises on a chain.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from rapport_protocol import ConnectionState, MessageType
from sqlalchemy import select

from bench.limits import TYPICAL_CONTENT
from tests.helpers import Actor, FakeClock, connect

TOPIC = "orders"


class WallClock(FakeClock):
    """The real clock, for actors talking to a server that uses the real clock."""

    def __call__(self) -> int:
        return int(time.time())


@dataclass
class Link:
    """One connection the load uses: ``sender`` (a business) sends to ``recipient``."""

    sender: Actor
    recipient: Actor
    cid: str


@dataclass
class Population:
    """Who exists on the server for the send workload."""

    base_url: str
    http: httpx.AsyncClient
    businesses: list[Actor] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    def actor(self) -> Actor:
        return Actor(http=self.http, clock=WallClock(), base_url=self.base_url)


async def _gather_limited(coros: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(run(c) for c in coros)))


async def populate(
    base_url: str,
    http: httpx.AsyncClient,
    *,
    businesses: int,
    links: int,
    topic: str = TOPIC,
    concurrency: int = 32,
) -> Population:
    """Register ``businesses`` businesses and ``links`` people, each person connected to one
    business (round robin) with a grant for ``topic``."""
    pop = Population(base_url, http)
    pop.businesses = [pop.actor() for _ in range(businesses)]
    await _gather_limited(
        [b.register("business", f"Shop {i}") for i, b in enumerate(pop.businesses)], concurrency
    )

    async def one(i: int) -> Link:
        person = pop.actor()
        await person.register("person", f"Person {i}")
        business = pop.businesses[i % businesses]
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": topic}])
        return Link(business, person, cid)

    pop.links = await _gather_limited([one(i) for i in range(links)], concurrency)
    return pop


async def resync_chains(pop: Population, database_url: str) -> None:
    """Set every sender's chain head from the stored connection state (after a run, some
    pre-signed messages were sent and some were not)."""
    from rapport_server.db import create_engine
    from rapport_server.tables import Connection

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(Connection.cid, Connection.state).where(
                    Connection.cid.in_([link.cid for link in pop.links])
                )
            )
            states = {cid: ConnectionState.model_validate_json(text) for cid, text in rows}
    finally:
        await engine.dispose()
    for link in pop.links:
        state = states[link.cid]
        role = state.role_of(link.sender.did)
        head = state.heads[role]
        link.sender.rewind(link.cid, head.seq, head.last)


@dataclass(frozen=True)
class _Chain:
    """What the load tool sends as one chain: the next message of each of ``links`` (one
    link: a single send; more: a batch request), one request in flight."""

    name: str
    route: str
    links: list[Link]
    batch: bool


def _line(chain: _Chain, k: int) -> str:
    objects = [
        link.sender.sign(
            MessageType.MESSAGE, {"topic": TOPIC}, link.cid, payload=f"{TYPICAL_CONTENT} ({k})"
        )
        for link in chain.links
    ]
    member = {"objects": objects} if chain.batch else {"object": objects[0]}
    body = json.dumps(member, separators=(",", ":"), ensure_ascii=False)
    return f"{chain.name}\t{chain.route}\tBearer {chain.links[0].sender.token}\t{body}\n"


def _sign_rounds(chains: list[_Chain], rounds: int) -> list[str]:
    """``rounds`` lines of every chain, round by round (each sender's chains advanced)."""
    return [_line(chain, k) for k in range(rounds) for chain in chains]


def _sign_share(chains: list[_Chain], rounds: int, part: Path, conn: Connection) -> None:
    """A signing process's share: its lines to ``part``, its chain heads to ``conn``."""
    part.write_text("".join(_sign_rounds(chains, rounds)), encoding="utf-8")
    conn.send([link.sender.chains[link.cid] for chain in chains for link in chain.links])
    conn.close()


def signers() -> int:
    """Processes that sign a run's requests: the cores this process may use (the server
    waits idle while they sign), at most 4."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _write_signed(chains: list[_Chain], rounds: int, path: Path, workers: int) -> None:
    """Sign ``rounds`` requests of every chain into ``path`` — round by round, each chain's
    in its order, as one process would write them — over ``workers`` processes.

    Signing was a minute of a full ``make bench`` in one process (~0.1 ms a message, up
    to 120,000 messages a run). Chains are independent, so they are shared out in
    contiguous runs: the first to this process, the others to forked children, each
    handing back its lines (through a file) and its senders' chain heads, which this
    process then takes (``Actor.rewind``) as if it had signed them itself."""
    workers = max(1, min(workers, len(chains)))
    shares = [
        chains[i * len(chains) // workers : (i + 1) * len(chains) // workers]
        for i in range(workers)
    ]
    fork = multiprocessing.get_context("fork")
    children = []
    try:
        for i, share in enumerate(shares[1:], 1):
            receiver, sender = fork.Pipe(duplex=False)
            part = path.with_name(f"{path.name}.{i}")
            process = fork.Process(target=_sign_share, args=(share, rounds, part, sender))
            process.start()
            sender.close()
            children.append((process, receiver, part, share))
        parts = [_sign_rounds(shares[0], rounds)]
        for process, receiver, part, share in children:
            try:
                heads = receiver.recv()
            except EOFError:
                heads = None
            process.join()
            if heads is None or process.exitcode != 0:
                raise RuntimeError(f"a signing process failed (exit code {process.exitcode})")
            for link, (seq, prev) in zip(
                (link for chain in share for link in chain.links), heads, strict=True
            ):
                link.sender.rewind(link.cid, seq, prev)
            parts.append(part.read_text(encoding="utf-8").splitlines(keepends=True))
    finally:  # on a failure, no signing process or part file outlives this call
        for process, _, part, _ in children:
            if process.is_alive():
                process.terminate()
            process.join()
            part.unlink(missing_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for k in range(rounds):
            for share, lines in zip(shares, parts, strict=True):
                out.writelines(lines[k * len(share) : (k + 1) * len(share)])


def presign(pop: Population, per_link: int, path: Path, workers: int | None = None) -> int:
    """Sign ``per_link`` messages on every link, interleaved, into the wrk request file
    (over ``workers`` processes, by default :func:`signers`).

    Lines are ``chain<TAB>path<TAB>authorization<TAB>body``; returns the number written.
    """
    chains = [
        _Chain(link.cid, f"/v1/connections/{link.cid}/messages", [link], batch=False)
        for link in pop.links
    ]
    _write_signed(chains, per_link, path, workers or signers())
    return per_link * len(chains)


def presign_batches(
    pop: Population, per_link: int, size: int, path: Path, workers: int | None = None
) -> int:
    """Like :func:`presign`, as ``POST /v1/messages/batch`` requests: each business's links
    in groups of ``size``, a request carrying the next message of every link of its group
    (a group is one "chain" for the load tool: one request in flight). Returns the number
    of messages written."""
    by_sender: dict[str, list[Link]] = {}
    for link in pop.links:
        by_sender.setdefault(link.sender.party_id, []).append(link)
    groups = [
        links[i : i + size] for links in by_sender.values() for i in range(0, len(links), size)
    ]
    chains = [
        _Chain(f"g{n}", "/v1/messages/batch", group, batch=True) for n, group in enumerate(groups)
    ]
    _write_signed(chains, per_link, path, workers or signers())
    return per_link * len(pop.links)


async def refresh_tokens(pop: Population) -> None:
    """New access tokens for the senders (a long run may outlive the first ones)."""
    await asyncio.gather(*(b.login() for b in pop.businesses))
