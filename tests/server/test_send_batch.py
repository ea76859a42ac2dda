"""The set-based send (rapport_server.messages.sending): a write batch's sends applied by
one group, chained in submission order, refusals kept to their own request, and the
fallback to one unit per send when the group hits a database error."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from rapport_protocol import MessageType, envelope, verify_log
from rapport_server.domain import DomainError, Subject
from rapport_server.messages.sending import SendReply, SendRequest
from rapport_server.services import Services
from rapport_server.tables import LogEntry
from rapport_server.writes import UnitContext
from sqlalchemy import select

from tests.conftest import backend
from tests.helpers import Actor, FakeClock, actors, connect, live_server

M = MessageType
NEWS = [{"scope": "message", "topic": "news"}]


@pytest.fixture
async def served(fresh_database_url: str) -> AsyncIterator[tuple[str, Services, FakeClock]]:
    clock = FakeClock()
    apps: list[Any] = []
    async with live_server(fresh_database_url, clock, prepare=apps.append) as base:
        yield base, apps[0].state.services, clock


def request(
    svc: Services, actor: Actor, cid: str, obj: dict[str, Any], key: str | None = None
) -> SendRequest:
    verified = envelope.verify(obj, now=svc.clock(), skew=300)
    subject = Subject(actor.party_id, actor.did, actor.kind)
    idem = (key, hashlib.sha256(verified.id.encode()).hexdigest()) if key else None
    return SendRequest(subject, cid, verified, svc.clock(), idem)


async def submit_all(svc: Services, requests: list[SendRequest]) -> list[Any]:
    """Submit together (they land in one batch, in this order), on the server's loop."""

    def one(r: SendRequest) -> Any:
        async def unit(ctx: UnitContext) -> SendReply:
            return await svc.sends.one(ctx, r)

        return svc.batcher.submit_group(svc.sends, r, unit)

    async def together() -> list[Any]:
        return await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)

    assert svc.batcher._task is not None
    server_loop = svc.batcher._task.get_loop()  # uvicorn runs the app in its own thread
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(together(), server_loop))


async def plant_log_row(
    svc: Services, clock: FakeClock, cid: str, obj: dict[str, Any], sender: Actor
) -> None:
    """A log row for ``obj`` that the connection's state does not know of: a group that
    sends ``obj`` hits the unique (object_id, cid) constraint in its multi-row INSERT."""

    async def plant() -> None:
        async with svc.sessionmaker() as s, s.begin():
            s.add(
                LogEntry(
                    cid=cid,
                    object_id=obj["id"],
                    type="message",
                    sender_id=sender.party_id,
                    object="{}",
                    payload=None,
                    received_at=clock(),
                )
            )

    assert svc.batcher._task is not None
    loop = svc.batcher._task.get_loop()  # the server's own loop (its engine's connections)
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(plant(), loop))


async def test_one_batch_chains_sends_and_keeps_refusals_to_themselves(
    served: tuple[str, Services, FakeClock],
) -> None:
    base, svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann, bob, eve = await actors(base, clock, http, 4)
        c_ann = await connect(shop, ann, person_grants=NEWS)
        c_bob = await connect(shop, bob, person_grants=NEWS)
        c_eve = await connect(shop, eve, person_grants=[])  # granted nothing

        first = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="one")
        second = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="two")
        to_bob = shop.sign(M.MESSAGE, {"topic": "news"}, c_bob, payload="bob")
        to_eve = shop.sign(M.MESSAGE, {"topic": "news"}, c_eve, payload="eve")
        reply = ann.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="no grant back")
        batches, lean = svc.batcher.batches, svc.batcher.lean_batches
        out = await submit_all(
            svc,
            [
                request(svc, shop, c_ann, first, key="k1"),
                request(svc, shop, c_ann, second),  # chained on `first`, same batch
                request(svc, shop, c_ann, first),  # a replay of `first`
                request(svc, shop, c_bob, to_bob, key="k1"),  # same key: waits a batch
                request(svc, shop, c_eve, to_eve),  # refused: no grant
                request(svc, bob, c_ann, reply),  # bob is not a party to c_ann
                request(svc, ann, c_ann, reply),  # ann granted nothing to the shop
            ],
        )
        assert isinstance(out[0], SendReply) and out[0].status_code == 201
        assert isinstance(out[1], SendReply) and out[1].status_code == 201
        assert isinstance(out[2], DomainError) and out[2].code == "replayed"
        # The second use of "k1" ran in the next batch and found k1's stored response:
        # a different request under the same key is refused.
        assert isinstance(out[3], DomainError) and out[3].code == "idempotency_key_reused"
        assert isinstance(out[4], DomainError) and out[4].code == "grant_missing"
        assert isinstance(out[5], DomainError) and out[5].code == "sender_mismatch"
        assert isinstance(out[6], DomainError) and out[6].code == "grant_missing"
        assert svc.batcher.batches - batches == 2  # everything else shared one commit
        assert svc.batcher.redos == 0
        # Sends alone: both batches ran on a driver connection, without an ORM session.
        assert svc.batcher.lean_batches - lean == 2

        inbox = (await ann.get("/v1/messages", params={"cid": c_ann})).json()["data"]
        assert [m["content"] for m in inbox] == ["one", "two"]
        assert [m["id"] for m in inbox] == sorted(m["id"] for m in inbox)
        assert (await bob.get("/v1/messages")).json()["data"] == []
        log = (await ann.get(f"/v1/connections/{c_ann}/log", params={"limit": 200})).json()
        # The log holds the chain in order and verifies from the signatures alone.
        verified = verify_log([(e["object"], e["received_time"]) for e in log["data"]])
        assert second["id"] in {head.last for head in verified.state.heads}


async def test_one_batch_numbers_each_recipients_events_in_order_and_holds_for_the_muted(
    served: tuple[str, Services, FakeClock],
) -> None:
    """Several senders to one recipient, two sends on one chain and a send to a muted
    person, all in one batch (on PostgreSQL: one statement): each recipient's events are
    numbered without gaps in submission order, and the held message waits for the unmute."""
    base, svc, clock = served
    support = [{"scope": "message", "topic": "support"}]
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann, bob, carl = await actors(base, clock, http, 4)
        c_ann = await connect(shop, ann, person_grants=NEWS, business_grants=support)
        c_bob = await connect(shop, bob, person_grants=NEWS, business_grants=support)
        c_carl = await connect(shop, carl, person_grants=NEWS)
        r = await carl.act(
            "PUT", f"/v1/connections/{c_carl}/mute", M.MUTE, {"mode": "hold"}, c_carl
        )
        assert r.status_code == 200, r.text
        shop_before = (await shop.get("/v1/events")).json()["data"]
        ann_before = (await ann.get("/v1/events")).json()["data"]

        objs = [
            (shop, c_ann, shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="one")),
            (ann, c_ann, ann.sign(M.MESSAGE, {"topic": "support"}, c_ann, payload="from ann")),
            (shop, c_carl, shop.sign(M.MESSAGE, {"topic": "news"}, c_carl, payload="held")),
            (bob, c_bob, bob.sign(M.MESSAGE, {"topic": "support"}, c_bob, payload="from bob")),
            (shop, c_ann, shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="two")),
        ]
        batches = svc.batcher.batches
        out = await submit_all(svc, [request(svc, who, cid, obj) for who, cid, obj in objs])
        assert svc.batcher.batches - batches == 1 and svc.batcher.redos == 0
        assert all(isinstance(o, SendReply) and o.status_code == 201 for o in out), out
        replies = [json.loads(o.text) for o in out]
        assert [r["held"] for r in replies] == [False, False, True, False, False]
        seqs = [r["server_seq"] for r in replies]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5  # log order = submission order

        def new_events(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Any]:
            known = {e["id"] for e in before}
            return [e for e in after if e["id"] not in known]

        shop_new = new_events(shop_before, (await shop.get("/v1/events")).json()["data"])
        ann_new = new_events(ann_before, (await ann.get("/v1/events")).json()["data"])
        for before, new in ((shop_before, shop_new), (ann_before, ann_new)):
            ids = [e["id"] for e in new]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # no gaps
            assert ids[0] > max((e["id"] for e in before), default=0)
        assert [e["object"]["payload"] for e in shop_new] == ["from ann", "from bob"]
        assert [e["object"]["payload"] for e in ann_new] == ["one", "two"]
        assert (await carl.get("/v1/messages")).json()["data"] == []
        r = await carl.act("POST", f"/v1/connections/{c_carl}/unmute", M.UNMUTE, {}, c_carl)
        assert r.status_code == 200, r.text
        inbox = (await carl.get("/v1/messages")).json()["data"]
        assert [m["content"] for m in inbox] == ["held"]


async def test_a_database_error_reruns_the_batch_one_send_at_a_time(
    served: tuple[str, Services, FakeClock],
) -> None:
    base, svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann, bob = await actors(base, clock, http, 3)
        c_ann = await connect(shop, ann, person_grants=NEWS)
        c_bob = await connect(shop, bob, person_grants=NEWS)
        to_ann = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="a")
        to_bob = shop.sign(M.MESSAGE, {"topic": "news"}, c_bob, payload="b")

        await plant_log_row(svc, clock, c_bob, to_bob, shop)
        out = await submit_all(
            svc, [request(svc, shop, c_ann, to_ann), request(svc, shop, c_bob, to_bob)]
        )
        assert svc.batcher.redos == 1
        assert svc.batcher.lean_batches == 0  # the lean attempt was rolled back, rerun in
        # a session with a SAVEPOINT per send
        assert isinstance(out[0], SendReply) and out[0].status_code == 201  # unharmed
        assert not isinstance(out[1], SendReply)  # the constraint failed it alone
        inbox = (await ann.get("/v1/messages")).json()["data"]
        assert [m["content"] for m in inbox] == ["a"]
        assert (await bob.get("/v1/messages")).json()["data"] == []


async def test_many_concurrent_senders_land_in_few_commits(
    served: tuple[str, Services, FakeClock],
) -> None:
    base, svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, *people = await actors(base, clock, http, 25)
        cids = [await connect(shop, p, person_grants=NEWS) for p in people]
        objs = [
            shop.sign(M.MESSAGE, {"topic": "news"}, cid, payload=str(i))
            for i, cid in enumerate(cids)
        ]
        units = svc.batcher.units
        batches = svc.batcher.batches

        async def send(i: int) -> httpx.Response:
            return await shop.post(
                f"/v1/connections/{cids[i]}/messages",
                {"object": objs[i]},
                headers={"Idempotency-Key": f"send-{i}"},
            )

        responses = await asyncio.gather(*(send(i) for i in range(len(cids))))
        assert [r.status_code for r in responses] == [201] * len(cids)
        assert svc.batcher.units - units == len(cids)
        assert svc.batcher.batches - batches < len(cids)  # grouped
        for i, (person, cid) in enumerate(zip(people, cids, strict=True)):
            inbox = (await person.get("/v1/messages")).json()["data"]
            assert [(m["cid"], m["content"]) for m in inbox] == [(cid, str(i))]
            again = await send(i)  # a client retry after a lost answer
            assert again.status_code == 201 and again.json() == responses[i].json()
            assert again.headers.get("idempotent-replayed") == "true"


def test_stored_text_is_the_canonical_form() -> None:
    """object_json's cheap encoder gives RFC 8785 bytes for Rapport objects, including
    non-ASCII and control characters in strings."""
    from rapport_protocol import SigningKey, sign
    from rapport_protocol.canonical import canonicalize
    from rapport_server.connections.codec import object_json

    key = SigningKey.generate()
    for text in ["news", "näws €", "tab\there", 'quote"back\\slash', "\u2028 \x1f 𝄞"]:
        body = {"topic": "news", "purpose": text}
        obj = sign(key, M.MESSAGE, body, created_time=1, cid="a" * 32, seq=1, payload=text)
        raw = {k: v for k, v in obj.raw.items() if k != "payload"}
        assert object_json(obj).encode() == canonicalize(raw)


async def test_a_cached_state_is_never_used_after_another_write_changed_the_connection(
    served: tuple[str, Services, FakeClock],
) -> None:
    base, svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann = await actors(base, clock, http, 2)
        cid = await connect(shop, ann, person_grants=NEWS)
        assert (await shop.send(cid, "news", "one")).status_code == 201
        hits = svc.sends.states.hits
        assert (await shop.send(cid, "news", "two")).status_code == 201
        assert svc.sends.states.hits == hits + 1  # the state the first send committed
        # The revoke is written by another path (not the send group): the row's version
        # moves on, so the next send reads and parses the new state and is refused.
        grants = (await ann.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"]
        (grant,) = [g for g in grants if g["topic"] == "news"]
        r = await ann.act(
            "POST",
            f"/v1/connections/{cid}/grants/{grant['id']}/revoke",
            M.GRANT_REVOKE,
            {"grant_id": grant["id"]},
            cid,
        )
        assert r.status_code in (200, 201), r.text
        misses = svc.sends.states.misses
        refused = await shop.send(cid, "news", "three")
        assert refused.status_code == 403 and refused.json()["code"] == "grant_missing"
        assert svc.sends.states.misses == misses + 1


def test_the_state_cache_keeps_one_state_per_connection_and_evicts_the_oldest() -> None:
    from rapport_protocol import ConnectionState
    from rapport_server.connections.states import StateCache

    text = ConnectionState(
        status="invited",
        invitation_id="i",
        invitation_expires=None,
        inviter_kind="business",
        dids=("did:key:zA", None),
        kinds=("business", None),
    ).model_dump_json()
    cache = StateCache(size=2)
    first = cache.parse("a", 1, text)
    assert cache.parse("a", 1, text) is first  # same version: parsed once
    assert cache.parse("a", 2, text) is not first  # another version: parsed again
    cache.parse("b", 1, text)
    cache.parse("c", 1, text)  # full: "a" (the oldest) goes
    assert len(cache) == 2
    misses = cache.misses
    cache.parse("a", 2, text)
    assert cache.misses == misses + 1
    assert StateCache(size=0).parse("a", 1, text) is not None  # size 0 keeps nothing


async def test_a_refusal_by_the_grants_comes_before_a_broken_chain(
    served: tuple[str, Services, FakeClock],
) -> None:
    base, _svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann = await actors(base, clock, http, 2)
        cid = await connect(shop, ann, person_grants=NEWS)
        assert (await shop.send(cid, "news", "one")).status_code == 201
        seq, prev = shop.chains[cid]
        shop.rewind(cid, seq + 3, prev)  # the next object skips two numbers
        ungranted = await shop.send(cid, "offers", "not granted")
        assert ungranted.status_code == 403 and ungranted.json()["code"] == "grant_missing"
        granted = await shop.send(cid, "news", "granted, but the chain is broken")
        assert granted.status_code == 409 and granted.json()["code"] == "chain_broken"
        shop.rewind(cid, seq, prev)
        assert (await shop.send(cid, "news", "two")).status_code == 201


async def test_a_stale_key_cached_for_sends_cannot_send_after_a_rotation(
    served: tuple[str, Services, FakeClock],
) -> None:
    """Sends accept a party entry up to SEND_PARTY_MAX_AGE old; an instance that has not
    yet seen a rotation (simulated: the old entry put back) still refuses the old key,
    because the connection's state names the new one."""
    from rapport_protocol import SigningKey

    from tests.helpers import assertion

    base, svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann = await actors(base, clock, http, 2)
        cid = await connect(shop, ann, person_grants=NEWS, business_grants=NEWS)
        assert (await ann.send(cid, "news", "before")).status_code == 201
        old_did, old_headers = ann.did, dict(ann.headers)
        new = SigningKey.generate()
        rotation = ann.sign(M.KEY_ROTATION, {"new_key": new.did})
        r = await ann.post(
            "/v1/parties/me/keys",
            {
                "object": rotation,
                "assertion": assertion(new, f"{base}/v1/parties/me/keys", clock()),
            },
        )
        assert r.status_code == 200, r.text
        svc.parties.put(ann.party_id, old_did, "person")  # as another instance still has it
        stale = ann.sign(M.MESSAGE, {"topic": "news"}, cid, payload="old key")
        r = await http.post(
            f"{base}/v1/connections/{cid}/messages", json={"object": stale}, headers=old_headers
        )
        assert r.status_code == 403 and r.json()["code"] == "not_a_party", r.text


async def test_sends_beside_another_write_share_its_session_and_commit(
    served: tuple[str, Services, FakeClock],
) -> None:
    """A batch holding a unit that is not a send runs in an ORM session (the unit needs
    it), the sends' group included; one commit for all, and the sends' events wake up."""
    base, svc, clock = served
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann = await actors(base, clock, http, 2)
        c_ann = await connect(shop, ann, person_grants=NEWS)
        first = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="one")
        second = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="two")
        seen: list[int] = []

        async def other(ctx: UnitContext) -> int:
            rows = await ctx.session.execute(select(LogEntry.seq).where(LogEntry.cid == c_ann))
            seen.append(len(rows.all()))
            return 7

        sends = [request(svc, shop, c_ann, first), request(svc, shop, c_ann, second)]

        def one(r: SendRequest) -> Any:
            async def unit(ctx: UnitContext) -> SendReply:
                return await svc.sends.one(ctx, r)

            return svc.batcher.submit_group(svc.sends, r, unit)

        async def together() -> list[Any]:
            return await asyncio.gather(
                one(sends[0]), svc.batcher.submit(other), one(sends[1]), return_exceptions=True
            )

        assert svc.batcher._task is not None
        batches, lean = svc.batcher.batches, svc.batcher.lean_batches
        loop = svc.batcher._task.get_loop()
        out = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(together(), loop))
        assert [getattr(o, "status_code", o) for o in out] == [201, 7, 201]
        assert svc.batcher.batches - batches == 1 and svc.batcher.lean_batches == lean
        # The unit ran after the group in the same transaction: it saw the sends' rows.
        log = (await ann.get(f"/v1/connections/{c_ann}/log")).json()["data"]
        assert seen == [len(log)] and [e["object"]["id"] for e in log[-2:]] == [
            first["id"],
            second["id"],
        ]
        inbox = (await ann.get("/v1/messages", params={"cid": c_ann})).json()["data"]
        assert [m["content"] for m in inbox] == ["one", "two"]


@pytest.mark.skipif(backend() != "postgres", reason="LISTEN/NOTIFY is PostgreSQL's")
async def test_a_send_batch_notifies_each_recipient_once_from_its_write_statement(
    served: tuple[str, Services, FakeClock], fresh_database_url: str
) -> None:
    """On PostgreSQL a lean batch of sends sends its recipients' wake-up hints from the
    write statement itself (no statement of the notifier's own: one round trip fewer).
    Each recipient of a delivered message is hinted once, on commit; a held message
    hints nobody; a batch whose statement failed and was rerun one send at a time hints
    the sends that landed, once."""
    import asyncpg
    from rapport_server.events.notify import CHANNEL
    from sqlalchemy.engine import make_url

    base, svc, clock = served
    notifier = svc.notifier
    by_batcher: list[str] = []
    publish = notifier.publish_on_driver

    async def counted(driver: Any, postgres: bool, party_ids: Any) -> None:
        by_batcher.extend(party_ids)
        await publish(driver, postgres, party_ids)

    notifier.publish_on_driver = counted  # type: ignore[method-assign]
    hinted: list[str] = []
    dsn = make_url(fresh_database_url).set(drivername="postgresql")
    listener = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    await listener.add_listener(CHANNEL, lambda *args: hinted.extend(args[3].split(",")))

    async def hints_for(expected: set[str]) -> list[str]:
        for _ in range(100):
            if set(hinted) >= expected:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # and nothing more arrives
        got = list(hinted)
        hinted.clear()
        return got

    try:
        async with httpx.AsyncClient(timeout=30) as http:
            shop, ann, bob, carl = await actors(base, clock, http, 4)
            support = [{"scope": "message", "topic": "support"}]
            c_ann = await connect(shop, ann, person_grants=NEWS, business_grants=support)
            c_bob = await connect(shop, bob, person_grants=NEWS)
            c_carl = await connect(shop, carl, person_grants=NEWS)
            r = await carl.act(
                "PUT", f"/v1/connections/{c_carl}/mute", M.MUTE, {"mode": "hold"}, c_carl
            )
            assert r.status_code == 200, r.text
            await hints_for(set())
            by_batcher.clear()

            sends = [
                request(
                    svc, shop, c_ann, shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="x")
                ),
                request(
                    svc, shop, c_ann, shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="x")
                ),
                request(
                    svc, shop, c_bob, shop.sign(M.MESSAGE, {"topic": "news"}, c_bob, payload="x")
                ),
                request(
                    svc, ann, c_ann, ann.sign(M.MESSAGE, {"topic": "support"}, c_ann, payload="x")
                ),
                request(
                    svc, shop, c_carl, shop.sign(M.MESSAGE, {"topic": "news"}, c_carl, payload="x")
                ),
            ]
            lean, batches = svc.batcher.lean_batches, svc.batcher.batches
            out = await submit_all(svc, sends)
            assert all(isinstance(o, SendReply) and o.status_code == 201 for o in out), out
            assert svc.batcher.batches - batches == 1 and svc.batcher.lean_batches - lean == 1
            got = await hints_for({ann.party_id, bob.party_id, shop.party_id})
            assert sorted(got) == sorted([ann.party_id, bob.party_id, shop.party_id])
            assert by_batcher == []  # the write statement sent them all

            # A group whose write statement fails (a planted log row for bob's message):
            # rolled back, nothing hinted; rerun a send at a time, ann's lands and is
            # hinted once, through the notifier's own statement.
            to_ann = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="a")
            to_bob = shop.sign(M.MESSAGE, {"topic": "news"}, c_bob, payload="b")
            await plant_log_row(svc, clock, c_bob, to_bob, shop)
            redos = svc.batcher.redos
            out = await submit_all(
                svc, [request(svc, shop, c_ann, to_ann), request(svc, shop, c_bob, to_bob)]
            )
            assert svc.batcher.redos - redos == 1
            assert isinstance(out[0], SendReply) and not isinstance(out[1], SendReply)
            assert await hints_for({ann.party_id}) == [ann.party_id]
            assert by_batcher == [ann.party_id]
    finally:
        await listener.close()
