from __future__ import annotations

import httpx
from rapport_protocol import MessageType

from tests.helpers import Actor, connect

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
