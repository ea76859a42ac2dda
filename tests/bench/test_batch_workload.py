"""The send figures' requests (bench/workload.py: presign, presign_batches) are accepted by
the server, also when signed over several processes, and the batch answers carry the marks
bench/send.lua counts messages by."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from rapport_protocol import MessageType

from bench.workload import TOPIC, Population, populate, presign, presign_batches
from tests.helpers import FakeClock, live_server

# What bench/send.lua counts in a 2xx answer of POST /v1/messages/batch.
RESULT_MARK = '"replayed":'
ACCEPTED_MARK = '{"status":201,"message":{'


@asynccontextmanager
async def _populated(
    url: str, businesses: int, links: int
) -> AsyncIterator[tuple[str, httpx.AsyncClient, Population]]:
    """A live server on ``url`` with the send workload's parties and connections."""
    async with live_server(url, FakeClock()) as base, httpx.AsyncClient(timeout=30) as http:
        yield base, http, await populate(base, http, businesses=businesses, links=links)


def _lines(path: Path) -> list[list[str]]:
    """The request file's lines: chain, route, authorization, body."""
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


async def _send(
    http: httpx.AsyncClient, base: str, route: str, auth: str, body: str
) -> httpx.Response:
    """One line of the request file, sent as the load tool sends it."""
    return await http.post(
        base + route,
        content=body.encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )


async def test_presigned_batches_are_accepted_and_counted(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with _populated(fresh_database_url, businesses=1, links=6) as (base, http, pop):
        path = tmp_path / "batches.tsv"
        assert presign_batches(pop, 2, 4, path, workers=4) == 12  # 2 chains, 4 processes asked
        lines = _lines(path)
        assert [(chain, route) for chain, route, _, _ in lines] == [
            ("g0", "/v1/messages/batch"),
            ("g1", "/v1/messages/batch"),
        ] * 2  # 2 rounds of the groups of 4 and 2 links

        async def post(auth: str, body: str) -> tuple[int, int]:
            r = await _send(http, base, "/v1/messages/batch", auth, body)
            assert r.status_code == 200, r.text
            assert r.text.startswith('{"results":[')
            return r.text.count(RESULT_MARK), r.text.count(ACCEPTED_MARK)

        assert [await post(auth, body) for _, _, auth, body in lines] == [
            (4, 4),
            (2, 2),
            (4, 4),
            (2, 2),
        ]
        # The last batch again: its places in the chains are taken, each one refused,
        # and a refused message is a result that is not counted as accepted.
        _, _, auth, body = lines[-1]
        assert await post(auth, body) == (2, 0)


async def test_presigned_sends_over_processes_continue_every_chain(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with _populated(fresh_database_url, businesses=2, links=5) as (base, http, pop):
        path = tmp_path / "sends.tsv"
        assert presign(pop, 3, path, workers=3) == 15
        lines = _lines(path)
        # Round by round, every link in its order, as one process writes them.
        assert [chain for chain, _, _, _ in lines] == [link.cid for link in pop.links] * 3
        for chain, route, auth, body in lines:
            assert route == f"/v1/connections/{chain}/messages"
            r = await _send(http, base, route, auth, body)
            assert r.status_code == 201, r.text
        # The senders took the heads the signing processes reached: the next message of
        # each chain, signed here, follows on.
        for link in pop.links:
            obj = link.sender.sign(
                MessageType.MESSAGE, {"topic": TOPIC}, link.cid, payload="one more"
            )
            r = await link.sender.post(f"/v1/connections/{link.cid}/messages", {"object": obj})
            assert r.status_code == 201, r.text
