"""``POST /v1/messages/batch``: several signed messages in one request, each decided as if
sent alone and in list order; one result per object; the body's shape and the token are
the whole request's; a retry under the same Idempotency-Key replays what was accepted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from rapport_protocol import MessageType, SigningKey, sign, verify_log

from tests.helpers import Actor, FakeClock, actors, connect, live_server

M = MessageType
NEWS = [{"scope": "message", "topic": "news"}]
BATCH = "/v1/messages/batch"


@pytest.fixture
async def base(fresh_database_url: str) -> AsyncIterator[tuple[str, FakeClock]]:
    clock = FakeClock()
    async with live_server(fresh_database_url, clock) as url:
        yield url, clock


def message(actor: Actor, cid: str, content: str, topic: str = "news") -> dict[str, Any]:
    return actor.sign(M.MESSAGE, {"topic": topic}, cid, payload=content)


def codes(answer: httpx.Response) -> list[tuple[int, str | None]]:
    assert answer.status_code == 200, answer.text
    return [(r["status"], (r["problem"] or {}).get("code")) for r in answer.json()["results"]]


async def contents(actor: Actor, cid: str) -> list[str]:
    inbox = (await actor.get("/v1/messages", params={"cid": cid})).json()["data"]
    return [m["content"] for m in inbox]


async def test_each_object_is_decided_alone_in_list_order(base: tuple[str, FakeClock]) -> None:
    url, clock = base
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann, bob, eve = await actors(url, clock, http, 4)
        c_ann = await connect(shop, ann, person_grants=NEWS)
        c_bob = await connect(shop, bob, person_grants=NEWS)
        c_eve = await connect(shop, eve, person_grants=[])  # granted nothing
        c_other = await connect(eve, bob, person_grants=NEWS)  # the shop is not a party

        first = message(shop, c_ann, "one")
        second = message(shop, c_ann, "two")  # chained on `first`, same request
        tampered = message(shop, c_bob, "bob")
        tampered["body"]["topic"] = "offers"  # the id and signature no longer match
        shop.rewind(c_bob, 0, None)
        to_bob = message(shop, c_bob, "bob")
        to_eve = message(shop, c_eve, "eve")
        outsider = shop.sign(M.MESSAGE, {"topic": "news"}, c_other, payload="x")
        forged = sign(  # signed by another key than the token's
            SigningKey.generate(),
            M.MESSAGE,
            {"topic": "news"},
            created_time=clock(),
            cid=c_ann,
            seq=3,
            prev=second["id"],
            payload="forged",
        ).to_json()
        unchained = shop.sign(M.MESSAGE, {"topic": "news"}, None, payload="no cid")
        not_a_message = shop.sign(M.MUTE, {"mode": "hold"}, c_bob, advance=False)

        objects = [
            first, second, tampered, to_bob, to_eve, outsider, forged, unchained,
            not_a_message, first,
        ]  # fmt: skip
        answer = await shop.post(BATCH, {"objects": objects})
        assert codes(answer) == [
            (201, None),
            (201, None),
            (422, "id_mismatch"),
            (201, None),
            (403, "grant_missing"),
            (404, "not_found"),
            (403, "sender_mismatch"),
            (422, "invalid_object"),
            (422, "type_mismatch"),
            (409, "replayed"),  # `first` again: its place in the chain is taken
        ]
        results = answer.json()["results"]
        assert results[0]["message"]["id"] == first["id"]
        assert results[1]["message"]["server_seq"] > results[0]["message"]["server_seq"]
        assert results[4]["problem"]["type"].endswith("/grant_missing")
        assert all(r["replayed"] is False for r in results)

        assert await contents(ann, c_ann) == ["one", "two"]
        assert await contents(bob, c_bob) == ["bob"]
        assert await contents(eve, c_eve) == []
        log = (await ann.get(f"/v1/connections/{c_ann}/log", params={"limit": 200})).json()
        verified = verify_log([(e["object"], e["received_time"]) for e in log["data"]])
        assert second["id"] in {head.last for head in verified.state.heads}

        # The single-send route sees the chain where the batch left it.
        r = await shop.send(c_ann, "news", "three")
        assert r.status_code == 201, r.text
        assert await contents(ann, c_ann) == ["one", "two", "three"]


async def test_the_request_as_a_whole_is_refused_with_a_problem(
    base: tuple[str, FakeClock],
) -> None:
    url, clock = base
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann = await actors(url, clock, http, 2)
        c_ann = await connect(shop, ann, person_grants=NEWS)
        one = message(shop, c_ann, "x")
        cases: list[tuple[Any, int, str]] = [
            ({"object": one}, 422, "validation_error"),
            ({"objects": []}, 422, "validation_error"),
            ({"objects": one}, 422, "validation_error"),
            ({"objects": [one] * 101}, 422, "validation_error"),
            ({"objects": [one], "extra": 1}, 422, "validation_error"),
        ]
        for body, status, code in cases:
            r = await shop.post(BATCH, body)
            assert (r.status_code, r.json()["code"]) == (status, code), body
            assert r.headers["content-type"] == "application/problem+json"
        r = await shop.post(BATCH, content=b'{"objects": [1, 2', headers={"content-type": "x"})
        assert r.status_code == 400 and r.json()["code"].startswith("json_")
        r = await http.post(url + BATCH, json={"objects": [one]})  # no token
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        r = await shop.post(BATCH, {"objects": [one]}, headers={"Idempotency-Key": "k" * 256})
        assert r.status_code == 400 and r.json()["code"] == "invalid_idempotency_key"
        assert await contents(ann, c_ann) == []  # nothing of these was applied


async def test_a_retry_under_the_same_key_replays_the_accepted_and_decides_the_rest(
    base: tuple[str, FakeClock],
) -> None:
    url, clock = base
    async with httpx.AsyncClient(timeout=30) as http:
        shop, ann, bob = await actors(url, clock, http, 3)
        c_ann = await connect(shop, ann, person_grants=NEWS)
        c_bob = await connect(shop, bob, person_grants=[])
        body = {"objects": [message(shop, c_ann, "a1"), message(shop, c_bob, "b1")]}
        key = {"Idempotency-Key": "k" * 255}  # the longest key a client may send

        first = await shop.post(BATCH, body, headers=key)
        assert codes(first) == [(201, None), (403, "grant_missing")]

        # Bob grants the topic; the same request again: the accepted message is answered
        # from its stored result (not sent twice), the refused one is decided anew.
        r = await bob.act(
            "POST",
            f"/v1/connections/{c_bob}/grants",
            M.GRANT_ISSUE,
            {"grant": {"scope": "message", "topic": "news"}},
            c_bob,
        )
        assert r.status_code == 201, r.text
        again = await shop.post(BATCH, body, headers=key)
        assert codes(again) == [(201, None), (201, None)]
        results = again.json()["results"]
        assert results[0] == {**first.json()["results"][0], "replayed": True}
        assert results[1]["replayed"] is False
        assert await contents(ann, c_ann) == ["a1"]
        assert await contents(bob, c_bob) == ["b1"]

        # The same key with another body: refused for what it stored, per item.
        a2 = shop.sign(M.MESSAGE, {"topic": "news"}, c_ann, payload="a2", advance=False)
        other = {"objects": [a2, body["objects"][1]]}
        reused = await shop.post(BATCH, other, headers=key)
        assert codes(reused) == [(422, "idempotency_key_reused")] * 2
        # A single send may use the same key: batch items are stored apart from it.
        r = await shop.post(
            f"/v1/connections/{c_ann}/messages",
            {"object": a2},
            headers={"Idempotency-Key": "k" * 255},
        )
        assert r.status_code == 201, r.text
