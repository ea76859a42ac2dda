"""The benchmark's set-based seeding makes connections the server treats as its own."""

from __future__ import annotations

import httpx
import pytest
from rapport_protocol import ConnectionState
from rapport_server.db import create_engine, writer_engine
from sqlalchemy import text

from bench import seed
from bench.figures import seeded_cids
from tests.helpers import Actor, FakeClock, connect, free_port, live_server


async def test_cloned_connections_are_readable_through_the_api(fresh_database_url: str) -> None:
    clock = FakeClock()
    async with live_server(fresh_database_url, clock) as base, httpx.AsyncClient() as http:
        business = Actor(http=http, clock=clock, base_url=base)
        person = Actor(http=http, clock=clock, base_url=base)
        await business.register("business", "Shop")
        await person.register("person", "Ann")
        cid = await connect(
            business, person, person_grants=[{"scope": "message", "topic": "orders"}]
        )
        assert (await business.send(cid, "orders", "first")).status_code == 201
        engine = create_engine(fresh_database_url)
        try:
            async with writer_engine(engine).begin() as conn:
                obj, payload = await seed.sample_message(conn)
                await seed.clone(
                    conn,
                    seed.Template(cid, person.party_id, person.did),
                    start=7,
                    count=3,
                    messages=2,
                    message_object=obj,
                    payload=payload,
                )
            async with engine.connect() as conn:
                counts = await seed.table_counts(conn)
                rows = (
                    await conn.execute(
                        text("SELECT cid, acceptor_id, state FROM connections WHERE cid LIKE 'f%'")
                    )
                ).all()
                events = (
                    await conn.execute(
                        text(
                            "SELECT party_id, seq FROM events WHERE party_id LIKE 'seed-%' "
                            "ORDER BY party_id, seq"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        assert counts["connections"] == 4
        assert counts["active_grants"] == 4
        clones = {r.cid: r for r in rows if r.acceptor_id.startswith("seed-")}
        assert len(clones) == 3
        for clone_cid, row in clones.items():
            state = ConnectionState.model_validate_json(row.state)
            assert state.cid == clone_cid
            assert state.dids[0] == business.did
            assert state.dids[1] != person.did and state.dids[1].startswith("did:key:z6MkSeed")
        # Two inbox events per seeded person, numbered 1 and 2 like the server numbers them.
        assert [tuple(e) for e in events] == [
            (pid, n) for pid in sorted({r.acceptor_id for r in clones.values()}) for n in (1, 2)
        ]
        # The server serves a clone to its business like any connection of its own.
        some = next(iter(clones))
        r = await business.get(f"/v1/connections/{some}")
        assert r.status_code == 200, r.text
        assert r.json()["counterparty_did"].startswith("did:key:z6MkSeed")
        assert r.json()["status"] == "active"


@pytest.mark.parametrize(
    ("ratio", "goal", "verdict"),
    [(0.6, "≥ 0.5×", "met"), (0.4, "≥ 0.5×", "MISSED"), (1.2, "≤ 1.5×", "met"), (0.4, "", "")],
)
def test_rows_judge_their_goal(ratio: float, goal: str, verdict: str) -> None:
    from bench.report import Row

    assert Row("x", "sqlite", "1", "2", ratio, goal).verdict == verdict


@pytest.mark.parametrize("bulk", [False, True], ids=["clone", "bulk_clone"])
async def test_seeded_replies_fill_the_business_inbox_and_its_stream_goes_on(
    fresh_database_url: str, bulk: bool
) -> None:
    """With ``replies`` each clone's last message is its person's: one inbox item per
    seeded connection for the business, found by the one-connection page, and the
    business's next event is numbered above them (no unique-key clash)."""
    if bulk and not fresh_database_url.startswith("postgresql"):
        pytest.skip("bulk_clone is PostgreSQL's")
    from sqlalchemy.ext.asyncio import create_async_engine

    clock = FakeClock()
    port = free_port()
    async with httpx.AsyncClient() as http:
        async with live_server(fresh_database_url, clock, port=port) as base:
            business = Actor(http=http, clock=clock, base_url=base)
            person = Actor(http=http, clock=clock, base_url=base)
            await business.register("business", "Shop")
            await person.register("person", "Ann")
            cid = await connect(
                business,
                person,
                person_grants=[{"scope": "message", "topic": "orders"}],
                business_grants=[{"scope": "message", "topic": "replies"}],
            )
            assert (await business.send(cid, "orders", "first")).status_code == 201
        # No server while the bulk seed drops and rebuilds the indexes.
        engine = (
            create_async_engine(fresh_database_url) if bulk else create_engine(fresh_database_url)
        )
        template = seed.Template(cid, person.party_id, person.did)
        try:
            async with writer_engine(engine).begin() as conn:
                obj, payload = await seed.sample_message(conn)
            job = {
                "start": 11,
                "count": 4,
                "messages": 3,
                "message_object": obj,
                "payload": payload,
                "replies": True,
            }
            if bulk:
                await seed.bulk_clone(engine, template, **job)  # type: ignore[arg-type]
            else:
                async with writer_engine(engine).begin() as conn:
                    await seed.clone(conn, template, **job)  # type: ignore[arg-type]
            async with engine.connect() as conn:
                people = (
                    await conn.execute(
                        text(
                            "SELECT e.party_id, e.seq, p.event_seq FROM events e "
                            "JOIN parties p ON p.id = e.party_id "
                            "WHERE e.party_id LIKE 'seed-%' ORDER BY e.party_id, e.seq"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        # Each seeded person received messages 1 and 2; the third was its own reply.
        assert {(r.seq, r.event_seq) for r in people} == {(1, 2), (2, 2)}
        assert len(people) == 8
        async with live_server(fresh_database_url, clock, port=port):
            # The bench's names for the seeded cids are the seed's.
            seeded = seeded_cids(11, 4, n=4)
            inbox = (await business.get("/v1/messages", params={"limit": "50"})).json()
            # One reply from each clone. Their order is the order their log numbers were
            # drawn in, which bulk_clone's concurrent sessions do not fix.
            assert sorted(m["cid"] for m in inbox["data"]) == sorted(seeded)
            for clone_cid in seeded:
                one = await business.get("/v1/messages", params={"cid": clone_cid})
                assert one.status_code == 200, one.text
                assert [m["cid"] for m in one.json()["data"]] == [clone_cid]
            # The real person replies; the business's stream goes on above the seeded ones.
            r = await person.send(cid, "replies", "thanks")
            assert r.status_code == 201, r.text
            after = (await business.get("/v1/messages", params={"limit": "50"})).json()["data"]
            assert [m["cid"] for m in after] == [m["cid"] for m in inbox["data"]] + [cid]
            assert after[-1]["id"] > max(m["id"] for m in inbox["data"])
