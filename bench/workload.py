"""The send workload: parties and connections made through the public API, and messages
pre-signed by the load side (signing is the client's cost, not the server's).

Businesses send to people who granted them the ``orders`` topic. Every connection is its
own hash chain, so with more chains than load connections nothing serialises on a chain.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
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


def presign(pop: Population, per_link: int, path: Path) -> int:
    """Sign ``per_link`` messages on every link, interleaved, into the wrk request file.

    Lines are ``chain<TAB>path<TAB>authorization<TAB>body``; returns the number written.
    """
    lines: list[str] = []
    for k in range(per_link):
        for link in pop.links:
            obj = link.sender.sign(
                MessageType.MESSAGE,
                {"topic": TOPIC},
                link.cid,
                payload=f"{TYPICAL_CONTENT} ({k})",
            )
            body = json.dumps({"object": obj}, separators=(",", ":"), ensure_ascii=False)
            lines.append(
                f"{link.cid}\t/v1/connections/{link.cid}/messages\t"
                f"Bearer {link.sender.token}\t{body}\n"
            )
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def presign_batches(pop: Population, per_link: int, size: int, path: Path) -> int:
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
    lines: list[str] = []
    for k in range(per_link):
        for n, group in enumerate(groups):
            objects = [
                link.sender.sign(
                    MessageType.MESSAGE,
                    {"topic": TOPIC},
                    link.cid,
                    payload=f"{TYPICAL_CONTENT} ({k})",
                )
                for link in group
            ]
            body = json.dumps({"objects": objects}, separators=(",", ":"), ensure_ascii=False)
            lines.append(f"g{n}\t/v1/messages/batch\tBearer {group[0].sender.token}\t{body}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return per_link * len(pop.links)


async def refresh_tokens(pop: Population) -> None:
    """New access tokens for the senders (a long run may outlive the first ones)."""
    await asyncio.gather(*(b.login() for b in pop.businesses))
