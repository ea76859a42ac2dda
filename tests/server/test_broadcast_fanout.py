"""Broadcast fan-out: the storage settings it relies on, and decisions made ahead of
their chunk's transaction."""

from __future__ import annotations

import os

import pytest


@pytest.mark.skipif(
    os.environ.get("RAPPORT_TEST_DB", "sqlite") != "postgres", reason="PostgreSQL option"
)
async def test_broadcast_tables_fillfactor_matches_models_after_migrations(
    fresh_database_url: str,
) -> None:
    from rapport_server import tables  # noqa: F401  (registers every table)
    from rapport_server.db import Base, create_engine
    from rapport_server.migrate import downgrade, upgrade
    from sqlalchemy import text

    wanted = {
        name: sorted(f"{k}={v}" for k, v in (t.dialect_options["postgresql"]["with"] or {}).items())
        for name, t in Base.metadata.tables.items()
    }
    assert wanted["connections"] == ["fillfactor=50"] and wanted["parties"] == ["fillfactor=50"]

    async def options() -> dict[str, list[str]]:
        engine = create_engine(fresh_database_url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT relname, coalesce(reloptions, '{}') FROM pg_class "
                    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            )
            found = {name: sorted(opts) for name, opts in rows.all()}
        await engine.dispose()
        return found

    await upgrade(fresh_database_url)
    found = options()
    assert {n: o for n, o in (await found).items() if n in wanted} == wanted
    await downgrade(fresh_database_url, "0003")
    assert all(not o for n, o in (await options()).items() if n in ("connections", "parties"))
    await upgrade(fresh_database_url)
    assert (await options())["connections"] == ["fillfactor=50"]


@pytest.mark.parametrize("change", ["mute", "sever"])
@pytest.mark.parametrize("which", ["first", "last"])
async def test_broadcast_decided_ahead_is_not_used_once_the_connection_changed(
    actor, monkeypatch: pytest.MonkeyPatch, which: str, change: str
) -> None:  # type: ignore[no-untyped-def]
    """A chunk's candidates are decided before its transaction (the first chunk's just
    before, the next ones while the previous chunk is written). A connection changed after
    that (here: right after its decision) fails its compare-and-swap and is selected and
    decided again, locked: muted, it is refused; severed, it is no longer a candidate."""
    import asyncio

    from rapport_protocol import MessageType as M
    from rapport_server.messages import endpoints as message_endpoints
    from rapport_server.messages import service

    from tests.helpers import connect

    monkeypatch.setattr(message_endpoints, "BROADCAST_CHUNK", 2)
    shop = actor()
    await shop.register("business", "Shop")
    people = [actor() for _ in range(4)]
    by_cid = {}
    for n, p in enumerate(people):
        await p.register("person", f"p{n}")
        cid = await connect(shop, p, person_grants=[{"scope": "message", "topic": "news"}])
        by_cid[cid] = p
    target = min(by_cid) if which == "first" else max(by_cid)

    async def mute() -> None:
        person = by_cid[target]
        if change == "mute":
            r = await person.act(
                "PUT", f"/v1/connections/{target}/mute", M.MUTE, {"mode": "reject"}, target
            )
        else:
            path, body = f"/v1/connections/{target}/sever", {"data": "retain_legal"}
            r = await person.act("POST", path, M.SEVER, body, target)
        assert r.status_code == 200, r.text

    test_loop = asyncio.get_running_loop()
    original = service.decide_ahead
    muted: list[str] = []

    async def then_mute(*args, **kwargs):  # type: ignore[no-untyped-def]
        decided = await original(*args, **kwargs)
        if not muted and any(c.cid == target for c in decided.candidates):
            muted.append(target)  # the server runs in its own thread and loop
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(mute(), test_loop))
        return decided

    monkeypatch.setattr(service, "decide_ahead", then_mute)
    cast = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="to all")
    r = await shop.post("/v1/broadcasts", {"object": cast})
    assert r.status_code == 201, r.text
    assert muted == [target]
    body = r.json()
    expected = (4, 3, {"muted": 1}) if change == "mute" else (3, 3, {})
    assert (body["candidates"], body["delivered"], body["refused"]) == expected
    for cid, p in by_cid.items():
        inbox = (await p.get("/v1/messages")).json()["data"]
        assert [m["content"] for m in inbox] == ([] if cid == target else ["to all"])


async def test_broadcast_pages_through_both_topics_grants_in_cid_order(
    actor, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A broadcast's pages of recipients merge two ordered ranges of the grants index (the
    message's topic and ``*``), each cut at the page size: with pages of two, a
    connection granting both topics is reached once, one granting another topic or
    severed not at all, and every other one once — wherever the page ends fall."""
    from rapport_protocol import MessageType as M
    from rapport_server.messages import endpoints as message_endpoints

    from tests.helpers import connect

    monkeypatch.setattr(message_endpoints, "BROADCAST_CHUNK", 2)
    shop = actor()
    await shop.register("business", "Shop")
    topics = [["news"], ["*"], ["news", "*"], ["offers"], ["*"], ["news"], ["*"], ["news"]]
    people, reached = [], []
    for n, granted in enumerate(topics):
        p = actor()
        await p.register("person", f"p{n}")
        grants = [{"scope": "message", "topic": t} for t in granted]
        cid = await connect(shop, p, person_grants=grants)
        if n == 4:
            r = await p.act(
                "POST", f"/v1/connections/{cid}/sever", M.SEVER, {"data": "delete"}, cid
            )
            assert r.status_code == 200, r.text
        people.append(p)
        reached.append("offers" not in granted and n != 4)
    cast = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="to all")
    r = await shop.post("/v1/broadcasts", {"object": cast})
    assert r.status_code == 201, r.text
    assert (r.json()["candidates"], r.json()["delivered"]) == (sum(reached), sum(reached))
    for p, expected in zip(people, reached, strict=True):
        inbox = (await p.get("/v1/messages")).json()["data"]
        assert [m["content"] for m in inbox] == (["to all"] if expected else [])


async def test_broadcast_chunk_failure_answers_503_and_a_retry_reaches_the_rest(
    actor, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL chunks are written in parallel lanes, each its own transaction. One
    failing fails the request (503, retry) once the chunks already in flight are done; the
    retry delivers to the connections the first try missed, and to nobody twice."""
    from rapport_protocol import MessageType as M
    from rapport_server.messages import endpoints as message_endpoints
    from rapport_server.messages import service
    from rapport_server.writes import StoreUnavailable

    from tests.helpers import connect

    monkeypatch.setattr(message_endpoints, "BROADCAST_CHUNK", 2)
    shop = actor()
    await shop.register("business", "Shop")
    people = [actor() for _ in range(7)]
    by_cid = {}
    for n, p in enumerate(people):
        await p.register("person", f"p{n}")
        cid = await connect(shop, p, person_grants=[{"scope": "message", "topic": "news"}])
        by_cid[cid] = p
    in_order = [by_cid[cid] for cid in sorted(by_cid)]  # chunks are ranges of cids
    original = service.broadcast_chunk
    calls: list[str] = []

    async def second_fails(ctx, broadcast, now, *, after, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(after)
        if len(calls) == 2:
            raise StoreUnavailable("disk gone")
        return await original(ctx, broadcast, now, after=after, **kwargs)

    monkeypatch.setattr(service, "broadcast_chunk", second_fails)
    cast = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="to all")
    r = await shop.post("/v1/broadcasts", {"object": cast})
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "store_unavailable"
    reached = [
        bool((await p.get("/v1/messages")).json()["data"]) for p in in_order
    ]  # the first chunk (and, on PostgreSQL, the one written beside the failed one)
    assert 2 <= sum(reached) <= 5 and not any(reached[2:4])
    monkeypatch.setattr(service, "broadcast_chunk", original)
    again = await shop.post("/v1/broadcasts", {"object": cast})
    assert again.status_code == 201, again.text
    assert again.json()["delivered"] == 7 - sum(reached)
    for p in people:
        inbox = (await p.get("/v1/messages")).json()["data"]
        assert [m["content"] for m in inbox] == ["to all"]


@pytest.mark.parametrize("case", ["uncapped", "earlier", "capped", "held", "muted", "stranger"])
def test_broadcast_decision_gives_the_state_text_that_apply_and_dump_give(case: str) -> None:
    """A chunk's decisions skip dumping the new state when only ``last_time`` changed
    (the stored text with that member replaced): the text must be the same."""
    from rapport_protocol import ConnectionState, SigningKey, apply, decide, sign
    from rapport_protocol import MessageType as M
    from rapport_protocol.decision import Allowed
    from rapport_protocol.types import GrantSpec
    from rapport_server.messages.service import _decide

    from tests.protocol.conftest import T0, connect

    rate = {"count": 3, "period": "P1D"} if case == "capped" else None
    c = connect(
        person_grants=[
            GrantSpec.model_validate({"scope": "message", "topic": "news", "rate": rate})
        ]
    )
    if case in ("held", "muted"):
        c.send(c.person, M.MUTE, {"mode": "hold" if case == "held" else "reject"}, T0 + 1)
    key = SigningKey.from_seed(b"\x55" * 32) if case == "stranger" else c.business.key
    cast = sign(key, M.MESSAGE, {"topic": "news"}, created_time=T0 + 10, payload="hi")
    now = T0 - 100 if case == "earlier" else T0 + 10
    text = c.state.model_dump_json()
    state = ConnectionState.model_validate_json(text)
    verdict = decide(state, cast, now)
    got = _decide(cast, text, now)
    if isinstance(verdict, Allowed):
        assert got.state == apply(state, cast, now).model_dump_json()
        assert (got.held, got.release_at) == (verdict.held, verdict.release_time)
        assert case in ("uncapped", "earlier", "capped", "held")
    else:
        assert (got.state, got.code) == (None, verdict.code)
        assert case in ("muted", "stranger")


@pytest.mark.skipif(
    os.environ.get("RAPPORT_TEST_DB", "sqlite") != "postgres",
    reason="PostgreSQL writes chunks and sends in concurrent transactions",
)
async def test_a_broadcast_chunk_locks_its_recipients_in_id_order(actor, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """Send batches lock their recipients' rows by id; a broadcast chunk, written beside
    them (lanes, other instances), must too, or the two can wait on each other in a
    cycle. Another transaction holds the lowest-id recipient: the chunk waits for it
    holding none of the others (each can be taken at once, NOWAIT); once released, the
    broadcast completes. (Before the chunk locked explicitly, its order was the plan's:
    sorted for a chunk this small, hashed for large ones.)"""
    import asyncio

    from rapport_protocol import MessageType as M
    from rapport_server.db import create_engine
    from sqlalchemy import text

    from tests.helpers import connect

    shop = actor()
    await shop.register("business", "Shop")
    people = [actor() for _ in range(12)]
    for n, p in enumerate(people):
        await p.register("person", f"p{n}")
        await connect(shop, p, person_grants=[{"scope": "message", "topic": "news"}])
    ids = sorted(p.party_id for p in people)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(
                text("SELECT id FROM parties WHERE id = :id FOR NO KEY UPDATE"), {"id": ids[0]}
            )
            cast = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="to all")
            sent = asyncio.create_task(shop.post("/v1/broadcasts", {"object": cast}))
            async with engine.connect() as watcher:
                for _ in range(200):  # until the chunk waits on the held row
                    waiting = await watcher.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database()"
                        )
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.02)
                assert waiting == 1
            for other in ids[1:]:  # not taken by the waiting chunk
                await holder.execute(
                    text("SELECT id FROM parties WHERE id = :id FOR NO KEY UPDATE NOWAIT"),
                    {"id": other},
                )
            await holder.rollback()
        r = await asyncio.wait_for(sent, 30)
        assert r.status_code == 201, r.text
        assert r.json()["delivered"] == len(people)
    finally:
        await engine.dispose()
