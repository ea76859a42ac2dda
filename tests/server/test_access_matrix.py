"""Every route with an id × {owner, counterparty, stranger, anonymous}.

Generated from the app's OpenAPI so a new route without an entry here fails the test.
Strangers always get 404 (existence never leaks); anonymous callers 401.
"""

from __future__ import annotations

from typing import Any

import pytest
from rapport_protocol import MessageType, derive_cid

from tests.helpers import Actor, connect

M = MessageType

# path template -> (method, object type the route takes or None, who owns it)
ROUTES: dict[tuple[str, str], MessageType | None] = {
    ("GET", "/v1/connections/{cid}"): None,
    ("GET", "/v1/connections/{cid}/log"): None,
    ("GET", "/v1/connections/{cid}/grants"): None,
    ("POST", "/v1/connections/{cid}/grants"): M.GRANT_ISSUE,
    ("POST", "/v1/connections/{cid}/grants/{grant_id}/amend"): M.GRANT_AMEND,
    ("POST", "/v1/connections/{cid}/grants/{grant_id}/revoke"): M.GRANT_REVOKE,
    ("GET", "/v1/connections/{cid}/grants/{grant_id}/receipt"): None,
    ("PUT", "/v1/connections/{cid}/mute"): M.MUTE,
    ("POST", "/v1/connections/{cid}/unmute"): M.UNMUTE,
    ("POST", "/v1/connections/{cid}/sever"): M.SEVER,
    ("GET", "/v1/connections/{cid}/favours"): None,
    ("POST", "/v1/connections/{cid}/favours"): M.FAVOUR_REQUEST,
    ("POST", "/v1/connections/{cid}/favours/{favour_id}/{step}"): M.FAVOUR_ACCEPT,
    ("GET", "/v1/connections/{cid}/ledger"): None,
    ("POST", "/v1/connections/{cid}/messages"): M.MESSAGE,
    ("POST", "/v1/messages/{message_id}/ack"): None,
    ("POST", "/v1/invitations/{invitation_id}/accept"): M.ACCEPT,
    ("POST", "/v1/invitations/{invitation_id}/decline"): M.DECLINE,
}
PUBLIC = {("GET", "/v1/invitations/by-token/{token}")}
# Owned by one party, not by a connection: tests/server/test_webhooks.py checks them.
WEBHOOK_ROUTES = {
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/disable"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/enable"),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"),
}


def test_every_route_with_an_id_is_in_the_matrix(server_url: str) -> None:
    from rapport_server.app import create_app

    spec = create_app().openapi()
    with_ids = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if "{" in path
    }
    assert with_ids == set(ROUTES) | PUBLIC | WEBHOOK_ROUTES


def body_for(mtype: MessageType, ids: dict[str, str]) -> dict[str, Any]:
    return {
        M.GRANT_ISSUE: {"grant": {"scope": "message", "topic": "fresh"}},
        M.GRANT_AMEND: {
            "replaces": ids["grant_id"],
            "grant": {"scope": "message", "topic": "news"},
        },
        M.GRANT_REVOKE: {"grant_id": ids["grant_id"]},
        M.MUTE: {"mode": "reject"},
        M.UNMUTE: {},
        M.SEVER: {"data": "delete"},
        M.FAVOUR_REQUEST: {"kind": "callback", "description": "x"},
        M.FAVOUR_ACCEPT: {"favour": ids["favour_id"]},
        M.MESSAGE: {"topic": "news"},
        M.ACCEPT: {
            "invitation": ids["invitation_id"],
            "label": "s",
            "kind": "person",
            "grants": [],
        },
        M.DECLINE: {"invitation": ids["invitation_id"]},
    }[mtype]


@pytest.mark.parametrize(("method", "template"), sorted(ROUTES))
async def test_strangers_get_404_and_anonymous_401(method: str, template: str, actor) -> None:  # type: ignore[no-untyped-def]
    owner, other, stranger = actor(), actor(), actor()
    await owner.register("person", "owner")
    await other.register("business", "other")
    await stranger.register("person", "stranger")
    cid = await connect(
        other,
        owner,
        person_grants=[{"scope": "message", "topic": "news"}],
        business_grants=[{"scope": "favour", "topic": "callback"}],
    )
    grant_id = (await owner.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"][0]["id"]
    favour = await owner.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        M.FAVOUR_REQUEST,
        {"kind": "callback", "description": "call"},
        cid,
    )
    assert (await other.send(cid, "news", "hi")).status_code == 201
    message_id = (await owner.get("/v1/messages")).json()["data"][0]["id"]
    invitation = (await other.invite(to=[owner.did])).json()["id"]
    ids = {
        "cid": cid,
        "grant_id": grant_id,
        "favour_id": favour.json()["id"],
        "message_id": str(message_id),
        "invitation_id": invitation,
        "step": "accept",
    }
    path = template.format(**ids)
    mtype = ROUTES[(method, template)]

    async def call(who: Actor | None) -> int:
        kwargs: dict[str, Any] = {}
        if mtype is not None and who is not None:
            obj_cid = derive_cid(invitation, who.did) if "invitation_id" in template else cid
            payload = {"payload": "x"} if mtype is M.MESSAGE else {}
            thid = {"thid": invitation} if "invitation_id" in template else {}
            kwargs["json"] = {
                "object": who.sign(
                    mtype, body_for(mtype, ids), obj_cid, advance=False, **payload, **thid
                )
            }
        headers = who.headers if who is not None else {}
        r = await owner.http.request(method, owner.base_url + path, headers=headers, **kwargs)
        return r.status_code

    assert await call(stranger) == 404
    assert await call(None) == 401
    # The counterparty of an inbox message or of an invitation addressed to the owner
    # cannot touch it either.
    if template in ("/v1/messages/{message_id}/ack",):
        assert await call(other) == 404
    if "invitation_id" in template:
        assert await call(owner) != 404
    elif mtype is None:
        assert await call(owner) == 200
        if "message_id" not in template:
            assert await call(other) == 200
