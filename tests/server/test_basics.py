from __future__ import annotations

import httpx
from rapport_protocol import MessageType

from tests.helpers import Actor, FakeClock, connect

M = MessageType


async def test_health_and_version(http: httpx.AsyncClient, server_url: str) -> None:
    r = await http.get(server_url + "/healthz")
    assert r.json()["status"] == "ok"
    r = await http.get(server_url + "/v1/")
    assert r.json()["protocol_version"] == "1.0"


async def test_connect_send_and_inbox(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    r = await business.send(cid, "news", "fresh beans")
    assert r.status_code == 201, r.text
    r = await business.send(cid, "marketing", "buy")
    assert r.status_code == 403 and r.json()["code"] == "grant_missing"
    assert r.headers["content-type"] == "application/problem+json"
    r = await person.get("/v1/messages")
    items = r.json()["data"]
    assert [m["content"] for m in items] == ["fresh beans"]


async def test_used_in_window_counts_the_deliveries_still_inside_the_caps_window(
    business: Actor, person: Actor, clock: FakeClock
) -> None:
    capped = {"scope": "message", "topic": "news", "rate": {"count": 3, "period": "PT1M"}}
    cid = await connect(business, person, person_grants=[capped])
    for n in range(2):
        assert (await business.send(cid, "news", f"n{n}")).status_code == 201

    async def used() -> tuple[int, int, int]:
        mine = (await person.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"]
        theirs = (await business.get(f"/v1/connections/{cid}/grants")).json()["granted_to_me"]
        conn = (await business.get(f"/v1/connections/{cid}")).json()["grants"]
        shown = [g["used_in_window"] for g in conn if g["topic"] == "news"]
        return mine[0]["used_in_window"], theirs[0]["used_in_window"], shown[0]

    assert await used() == (2, 2, 2)
    clock.advance(61)  # both deliveries leave the minute's window; the record still holds them
    await person.login()
    await business.login()
    assert await used() == (0, 0, 0)
    assert (await business.send(cid, "news", "again")).status_code == 201
    assert await used() == (1, 1, 1)
