"""Idempotency, replay protection, compare-and-swap races, durability, limits."""

from __future__ import annotations

import asyncio

import pytest
from rapport_protocol import MessageType

from tests.helpers import Actor, connect

M = MessageType


async def test_idempotency_key_replays_the_stored_response(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    obj = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="once")
    first = await business.post(
        f"/v1/connections/{cid}/messages", {"object": obj}, headers={"Idempotency-Key": "k-1"}
    )
    again = await business.post(
        f"/v1/connections/{cid}/messages", {"object": obj}, headers={"Idempotency-Key": "k-1"}
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="twice")
    r = await business.post(
        f"/v1/connections/{cid}/messages", {"object": other}, headers={"Idempotency-Key": "k-1"}
    )
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    inbox = (await person.get("/v1/messages", params={"cid": cid})).json()["data"]
    assert [m["content"] for m in inbox] == ["once"]


async def test_replayed_object_is_refused(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    obj = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="x")
    assert (
        await business.post(f"/v1/connections/{cid}/messages", {"object": obj})
    ).status_code == 201
    r = await business.post(f"/v1/connections/{cid}/messages", {"object": obj})
    assert r.status_code == 409 and r.json()["code"] == "replayed"


async def test_hundred_concurrent_identical_sends_accept_exactly_one(
    business: Actor, person: Actor
) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    obj = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="race")
    results = await asyncio.gather(
        *[business.post(f"/v1/connections/{cid}/messages", {"object": obj}) for _ in range(100)]
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1, codes
    assert set(codes) == {201, 409}
    inbox = (await person.get("/v1/messages", params={"cid": cid})).json()["data"]
    assert len(inbox) == 1


async def test_concurrent_grant_amendments_exactly_one_wins(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    grant = (await person.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"][0]
    # Two devices of the same person amend from the same head: same seq, same replaces.
    seq, prev = person.chains[cid]
    objects = []
    for count in (1, 2):
        person.rewind(cid, seq, prev)
        objects.append(
            person.sign(
                M.GRANT_AMEND,
                {
                    "replaces": grant["id"],
                    "grant": {
                        "scope": "message",
                        "topic": "news",
                        "rate": {"count": count, "period": "PT1H"},
                    },
                },
                cid,
            )
        )
    results = await asyncio.gather(
        *[
            person.post(f"/v1/connections/{cid}/grants/{grant['id']}/amend", {"object": o})
            for o in objects
        ]
    )
    assert sorted(r.status_code for r in results) == [201, 409]
    grants = (await person.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"]
    assert len(grants) == 1 and grants[0]["replaces"] == grant["id"]


async def test_oversize_and_malformed_bodies_are_problems_not_500s(
    business: Actor, person: Actor
) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    path = f"/v1/connections/{cid}/messages"
    cases = [
        b"{" * 10,
        b'{"object": {"a": 1, "a": 2}}',
        b'{"object": 1.5}',
        b'{"object": {}}',
        b'{"object": {"id": "x"}, "extra": 1}',
        b"\xff\xfe",
        b"x" * (200 * 1024),
        b'{"object": ' + b"[" * 100 + b"]" * 100 + b"}",
    ]
    for body in cases:
        r = await business.http.post(
            business.base_url + path,
            content=body,
            headers={**business.headers, "content-type": "application/json"},
        )
        assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"]


async def test_wrong_sender_and_wrong_type_are_refused(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    obj = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="x", advance=False)
    r = await person.post(f"/v1/connections/{cid}/messages", {"object": obj})
    assert r.status_code == 403 and r.json()["code"] == "sender_mismatch"
    mute = business.sign(M.MUTE, {}, cid, advance=False)
    r = await business.post(f"/v1/connections/{cid}/messages", {"object": mute})
    assert r.status_code == 422 and r.json()["code"] == "type_mismatch"


async def test_mute_hold_releases_messages_in_order_when_lifted(
    business: Actor, person: Actor
) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    r = await person.act("PUT", f"/v1/connections/{cid}/mute", M.MUTE, {"mode": "hold"}, cid)
    assert r.status_code == 200
    for text in ("one", "two"):
        r = await business.send(cid, "news", text)
        assert r.status_code == 201 and r.json()["held"] is True
    assert (await person.get("/v1/messages", params={"cid": cid})).json()["data"] == []
    r = await person.act("POST", f"/v1/connections/{cid}/unmute", M.UNMUTE, {}, cid)
    assert r.status_code == 200
    inbox = (await person.get("/v1/messages", params={"cid": cid})).json()["data"]
    assert [m["content"] for m in inbox] == ["one", "two"]
    ack = await person.post(f"/v1/messages/{inbox[0]['id']}/ack")
    assert ack.status_code == 200 and ack.json()["acked_time"] is not None
    unacked = (await person.get("/v1/messages", params={"cid": cid, "unacked": "true"})).json()[
        "data"
    ]
    assert [m["content"] for m in unacked] == ["two"]


async def test_timed_mute_releases_held_messages_after_expiry(
    business: Actor, person: Actor, clock
) -> None:  # type: ignore[no-untyped-def]
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    r = await person.act(
        "PUT", f"/v1/connections/{cid}/mute", M.MUTE, {"until": clock() + 3600, "mode": "hold"}, cid
    )
    assert r.status_code == 200
    assert (await business.send(cid, "news", "later")).json()["release_time"] == clock() + 3600
    assert (await person.get("/v1/messages", params={"cid": cid})).json()["data"] == []
    clock.advance(3600)
    await person.login()
    inbox = (await person.get("/v1/messages", params={"cid": cid})).json()["data"]
    assert [m["content"] for m in inbox] == ["later"]


async def test_broadcast_is_set_based_and_counts_outcomes(actor) -> None:  # type: ignore[no-untyped-def]
    shop = actor()
    await shop.register("business", "Shop")
    people = [actor() for _ in range(6)]
    cids = []
    for p in people:
        await p.register("person", "p")
        grants = [{"scope": "message", "topic": "news"}] if len(cids) < 4 else []
        cids.append(await connect(shop, p, person_grants=grants))
    await people[1].act(
        "PUT", f"/v1/connections/{cids[1]}/mute", M.MUTE, {"mode": "reject"}, cids[1]
    )
    await people[2].act("PUT", f"/v1/connections/{cids[2]}/mute", M.MUTE, {"mode": "hold"}, cids[2])
    await people[3].act(
        "POST", f"/v1/connections/{cids[3]}/sever", M.SEVER, {"data": "retain_legal"}, cids[3]
    )
    cast = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="to all")
    r = await shop.post("/v1/broadcasts", {"object": cast})
    assert r.status_code == 201, r.text
    assert r.json() == {
        "id": cast["id"],
        "candidates": 3,
        "delivered": 1,
        "held": 1,
        "refused": {"muted": 1},
    }
    inbox = (await people[0].get("/v1/messages")).json()["data"]
    assert [m["content"] for m in inbox] == ["to all"]
    again = await shop.post("/v1/broadcasts", {"object": cast})
    assert again.status_code in (201, 409)
    assert len((await people[0].get("/v1/messages")).json()["data"]) == 1


async def test_multi_use_invitation_counts_uses(actor) -> None:  # type: ignore[no-untyped-def]
    shop = actor()
    await shop.register("business", "Shop")
    r = await shop.invite(multi_use=True)
    inv = r.json()["id"]
    for _ in range(2):
        p = actor()
        await p.register("person", "p")
        assert (await p.accept(inv)).status_code == 201
    single = (await shop.invite()).json()["id"]
    a, b = actor(), actor()
    await a.register("person", "a")
    await b.register("person", "b")
    assert (await a.accept(single)).status_code == 201
    r = await b.accept(single)
    assert r.status_code == 409 and r.json()["code"] == "invitation_used"
    again = await a.accept(inv)
    assert again.status_code == 201
    dup = await a.accept(inv)
    assert dup.status_code == 409


async def test_invitation_expiry_and_addressing(actor, clock) -> None:  # type: ignore[no-untyped-def]
    shop, ann, bob = actor(), actor(), actor()
    await shop.register("business", "Shop")
    await ann.register("person", "Ann")
    await bob.register("person", "Bob")
    addressed = (await shop.invite(to=[ann.did])).json()["id"]
    r = await bob.accept(addressed)
    assert r.status_code == 404
    expiring = (await shop.invite(expires_in=60)).json()["id"]
    clock.advance(61)
    await ann.login()
    r = await ann.accept(expiring)
    assert r.status_code == 410 and r.json()["code"] == "invitation_expired"


async def test_account_export_and_delete(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    await business.send(cid, "news", "hi")
    export = (await person.get("/v1/account/export")).json()
    assert export["party"]["did"] == person.did
    assert export["connections"][0]["connection"]["cid"] == cid
    assert len(export["connections"][0]["log"]) == 3
    r = await person.post("/v1/account/delete", {"objects": []})
    assert r.status_code == 422 and r.json()["code"] == "missing_sever"
    sever = person.sign(M.SEVER, {"data": "export_then_delete"}, cid)
    r = await person.post("/v1/account/delete", {"objects": [sever]})
    assert r.status_code == 200 and r.json()["severed"] == 1
    assert (await person.get("/v1/parties/me")).status_code == 401
    r = await business.send(cid, "news", "gone?")
    assert r.status_code == 410


async def test_consent_receipts_have_both_shapes(business: Actor, person: Actor) -> None:
    cid = await connect(
        business,
        person,
        person_grants=[{"scope": "message", "topic": "news", "purpose": "Weekly coffee news"}],
    )
    grant = (await person.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"][0]
    kantara = (await person.get(f"/v1/connections/{cid}/grants/{grant['id']}/receipt")).json()
    assert kantara["version"] == "KI-CR-v1.1.0"
    assert kantara["piiPrincipalId"] == person.did
    assert kantara["services"][0]["purposes"][0]["purpose"] == "Weekly coffee news"
    dpv = (
        await business.get(
            f"/v1/connections/{cid}/grants/{grant['id']}/receipt", params={"format": "dpv"}
        )
    ).json()
    assert dpv["@type"] == "dpv:ConsentRecord"
    assert dpv["dpv:hasConsentStatus"]["@id"] == "dpv:ConsentGiven"
    assert dpv["dpv:hasDataSubject"]["@id"] == person.did


async def test_pagination_walks_every_connection(actor) -> None:  # type: ignore[no-untyped-def]
    shop = actor()
    await shop.register("business", "Shop")
    for _ in range(5):
        p = actor()
        await p.register("person", "p")
        await connect(shop, p, person_grants=[])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await shop.get("/v1/connections", params=params)).json()
        seen += [c["cid"] for c in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 5
    r = await shop.get("/v1/connections", params={"cursor": "garbage!"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"


async def test_pages_merge_both_sides_in_cid_order_with_filters(actor) -> None:  # type: ignore[no-untyped-def]
    from rapport_protocol import MessageType as M

    me = actor()
    await me.register("person", "Me")
    others, cids = [], []
    for i in range(6):
        other = actor()
        await other.register("business" if i % 2 else "person", f"o{i}")
        # Alternate sides: ``me`` invites the even ones and accepts the odd ones' invitations.
        inviter, acceptor = (me, other) if i % 2 == 0 else (other, me)
        cids.append(await connect(inviter, acceptor, person_grants=[]))
        others.append(other)

    async def walk(**params: str) -> list[str]:
        seen, cursor = [], None
        while True:
            query = {"limit": "2", **params, **({"cursor": cursor} if cursor else {})}
            r = await me.get("/v1/connections", params=query)
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [c["cid"] for c in page["data"]]
            if not page["has_more"]:
                return seen
            cursor = page["next_cursor"]

    assert await walk() == sorted(cids)
    for k in (1, 2):
        r = await me.act(
            "POST", f"/v1/connections/{cids[k]}/sever", M.SEVER, {"data": "retain_legal"}, cids[k]
        )
        assert r.status_code == 200, r.text
    assert await walk(status="severed") == sorted(cids[1:3])
    assert await walk(status="active") == sorted(cids[:1] + cids[3:])
    for k in (0, 3):
        assert await walk(counterparty=others[k].party_id) == [cids[k]]


async def test_broadcast_runs_in_chunks_and_a_retry_reaches_only_the_missed(
    actor, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from rapport_server.messages import endpoints as message_endpoints

    monkeypatch.setattr(message_endpoints, "BROADCAST_CHUNK", 2)
    shop = actor()
    await shop.register("business", "Shop")
    people = [actor() for _ in range(6)]
    for n, p in enumerate(people[:5]):
        await p.register("person", f"p{n}")
        await connect(shop, p, person_grants=[{"scope": "message", "topic": "news"}])
    cast = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="chunked")
    key = {"Idempotency-Key": "cast-1"}
    r = await shop.post("/v1/broadcasts", {"object": cast}, headers=key)
    assert r.status_code == 201, r.text
    assert (r.json()["candidates"], r.json()["delivered"]) == (5, 5)  # over three chunks
    again = await shop.post("/v1/broadcasts", {"object": cast}, headers=key)
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    other = await shop.post("/v1/broadcasts", {"object": cast}, headers={"Idempotency-Key": "x"})
    assert other.status_code == 409 and other.json()["code"] == "replayed"
    # A connection the first try did not reach (here: a new one) gets it on a retry; the
    # others are not delivered twice.
    await people[5].register("person", "late")
    await connect(shop, people[5], person_grants=[{"scope": "message", "topic": "news"}])
    late = await shop.post("/v1/broadcasts", {"object": cast})
    assert late.status_code == 201 and late.json()["delivered"] == 1
    for p in people:
        inbox = (await p.get("/v1/messages")).json()["data"]
        assert [m["content"] for m in inbox] == ["chunked"]


async def test_acks_raise_the_floor_that_unacked_pages_start_from(
    business: Actor, person: Actor, database_url: str
) -> None:
    from rapport_server.tables import Party
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    for i in range(6):
        assert (await business.send(cid, "news", f"m{i}")).status_code == 201
    inbox = (await person.get("/v1/messages", params={"cid": cid})).json()["data"]
    ids = [m["id"] for m in inbox]
    engine = create_async_engine(database_url)

    async def floor() -> int:
        async with engine.connect() as conn:
            q = select(Party.ack_floor).where(Party.id == person.party_id)
            return int((await conn.execute(q)).scalar_one())

    async def unacked() -> list[str]:
        page = await person.get("/v1/messages", params={"unacked": "true"})
        return [m["content"] for m in page.json()["data"]]

    try:
        start = await floor()
        assert start < ids[0]  # the connection's own events came first
        for i in (1, 2, 4):  # out of order: m0 is still waiting
            assert (await person.post(f"/v1/messages/{ids[i]}/ack")).status_code == 200
        assert await floor() == ids[0] - 1
        assert await unacked() == ["m0", "m3", "m5"]
        assert (await person.post(f"/v1/messages/{ids[0]}/ack")).status_code == 200
        assert await floor() == ids[3] - 1  # past m0, m1, m2, to just below m3
        assert await unacked() == ["m3", "m5"]
        assert (await person.post(f"/v1/messages/{ids[0]}/ack")).status_code == 200  # again
        for i in (3, 5):
            assert (await person.post(f"/v1/messages/{ids[i]}/ack")).status_code == 200
        assert await floor() == ids[5]  # everything acknowledged: up to the last message
        assert await unacked() == []
        assert (await business.send(cid, "news", "new")).status_code == 201
        assert await unacked() == ["new"]  # a message above the floor is listed
    finally:
        await engine.dispose()
