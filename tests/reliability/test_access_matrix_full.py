"""Family 4 — every operation of the OpenAPI × seven identities.

Identities: the owner of the resources, the counterparty of its connection, a stranger
(another person), another business, an anonymous caller, a caller with an expired token
and one whose key was rotated away (its token names the old key). Expectations:

* anonymous, expired and rotated-away callers get 401 on every operation that declares the
  bearer scheme — 0 answers in 2xx;
* strangers and other businesses get 404 on every route that names one of the owner's
  resources (existence never leaks) and, on list routes, a 2xx that mentions none of the
  owner's ids;
* the counterparty reaches the shared connection's read routes but not the owner's own
  resources (inbox messages, webhook endpoints); the owner reaches every read route.

``tests/server/test_access_matrix.py`` already pins stranger/anonymous on the id routes;
this generalises it to every operation (including the ones added later) and adds the other
identities. Unknown routes fail the test until they are classified here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from rapport_protocol import MessageType, SigningKey, derive_cid

from tests.helpers import Actor, FakeClock, assertion, connect
from tests.reliability.conftest import record
from tests.server.test_access_matrix import ROUTES as OBJECT_ROUTES
from tests.server.test_access_matrix import body_for

M = MessageType
OWNER_ONLY_PREFIXES = ("/v1/webhook-endpoints/{endpoint_id}", "/v1/messages/{message_id}")
EXTRA_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): {"after": 0},
    ("POST", "/v1/webhook-endpoints"): {"url": "https://hooks.example.com/other"},
    ("POST", "/v1/account/delete"): {"objects": []},
}
# Operations on the caller's own account: called only by identities that must get 401 (as a
# registered party they would delete or re-key that party and spoil the rest of the matrix).
SELF_ONLY = {("POST", "/v1/account/delete"), ("POST", "/v1/parties/me/keys")}
# Operations the matrix does not call as the owner.
NOT_AS_OWNER = {
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),  # would remove the fixture
    ("POST", "/v1/account/delete"),
    ("POST", "/v1/parties/me/keys"),
}


async def _world(actor, clock: FakeClock) -> tuple[dict[str, Actor], dict[str, str]]:  # type: ignore[no-untyped-def]
    owner, counterparty, stranger, other_business, rotated = (actor() for _ in range(5))
    await owner.register("person", "owner")
    await counterparty.register("business", "counterparty")
    await stranger.register("person", "stranger")
    await other_business.register("business", "other business")
    await rotated.register("person", "rotated")
    cid = await connect(
        counterparty,
        owner,
        person_grants=[{"scope": "message", "topic": "news"}],
        business_grants=[{"scope": "favour", "topic": "callback"}],
    )
    grants = (await owner.get(f"/v1/connections/{cid}/grants")).json()
    favour = await owner.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        M.FAVOUR_REQUEST,
        {"kind": "callback", "description": "call"},
        cid,
    )
    assert (await counterparty.send(cid, "news", "hi")).status_code == 201
    message_id = (await owner.get("/v1/messages")).json()["data"][0]["id"]
    invitation = (await counterparty.invite(to=[owner.did])).json()
    hook = await owner.post("/v1/webhook-endpoints", {"url": "https://hooks.example.com/owner"})
    assert hook.status_code == 201, hook.text
    # A party whose key is rotated away: its old token must stop working.
    new = SigningKey.generate()
    r = await rotated.post(
        "/v1/parties/me/keys",
        {
            "object": rotated.sign(M.KEY_ROTATION, {"new_key": new.did}),
            "assertion": assertion(new, f"{rotated.base_url}/v1/parties/me/keys", clock()),
        },
    )
    assert r.status_code == 200, r.text
    ids = {
        "cid": cid,
        "grant_id": grants["granted_by_me"][0]["id"],
        "favour_id": favour.json()["id"],
        "message_id": str(message_id),
        "invitation_id": invitation["id"],
        "token": invitation["token"],
        "endpoint_id": str(hook.json()["id"]),
        "step": "accept",
    }
    parties = {
        "owner": owner,
        "counterparty": counterparty,
        "stranger": stranger,
        "other_business": other_business,
        "rotated": rotated,
    }
    return parties, ids


def _body(method: str, template: str, who: Actor | None, ids: dict[str, str]) -> Any:
    mtype = OBJECT_ROUTES.get((method, template))
    if mtype is None:
        return EXTRA_BODIES.get((method, template))
    signer = who
    if signer is None:
        return {"object": {}}
    invitation_route = "invitation_id" in template
    cid = derive_cid(ids["invitation_id"], signer.did) if invitation_route else ids["cid"]
    extra: dict[str, Any] = {"payload": "x"} if mtype is M.MESSAGE else {}
    if invitation_route:
        extra["thid"] = ids["invitation_id"]
    return {"object": signer.sign(mtype, body_for(mtype, ids), cid, advance=False, **extra)}


async def test_every_operation_by_every_identity_has_no_unexpected_2xx(
    actor, clock: FakeClock, server_url: str
) -> None:  # type: ignore[no-untyped-def]
    from rapport_server.app import create_app

    parties, ids = await _world(actor, clock)
    owner = parties["owner"]
    # Markers of the owner's data that must not show up in another party's 2xx answers.
    owner_ids = {v for v in ids.values() if len(v) >= 16} | {
        "hooks.example.com/owner",
        owner.did,
    }
    spec = create_app().openapi()
    http: httpx.AsyncClient = owner.http
    calls: Counter[str] = Counter()
    unexpected: list[str] = []

    async def call(
        method: str, template: str, who: Actor | None, token: str | None
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = _body(method, template, who, ids)
        return await http.request(
            method, server_url + template.format(**ids), headers=headers, json=body
        )

    def expect(label: str, ok: bool, r: httpx.Response) -> None:
        calls[label] += 1
        if not ok:
            unexpected.append(
                f"{label}: {r.request.method} {r.request.url.path} -> {r.status_code}"
            )

    ttl = 900
    for path, operations in sorted(spec["paths"].items()):
        for method_lower, operation in sorted(operations.items()):
            method = method_lower.upper()
            if not operation.get("security"):
                continue
            names_resource = any(f"{{{k}}}" in path for k in ids if k not in ("step", "token"))
            # Unauthenticated identities: 401 everywhere.
            r = await call(method, path, None, None)
            expect("anonymous", r.status_code == 401, r)
            r = await call(method, path, parties["rotated"], parties["rotated"].token)
            expect("rotated_key", r.status_code == 401, r)
            clock.advance(ttl + 1)
            try:
                r = await call(method, path, owner, owner.token)
            finally:
                clock.now -= ttl + 1
            expect("expired_token", r.status_code == 401, r)
            if (method, path) in SELF_ONLY:
                continue
            # Other parties.
            for name in ("stranger", "other_business"):
                who = parties[name]
                r = await call(method, path, who, who.token)
                if names_resource:
                    expect(name, r.status_code == 404, r)
                else:
                    leaked = r.status_code < 300 and any(v in r.text for v in owner_ids)
                    expect(name, r.status_code < 500 and not leaked, r)
            if method == "GET" and names_resource:
                counterparty = parties["counterparty"]
                r = await call(method, path, counterparty, counterparty.token)
                owner_only = path.startswith(OWNER_ONLY_PREFIXES)
                expect("counterparty", (r.status_code == 404) if owner_only else r.is_success, r)
            if method == "GET" and (method, path) not in NOT_AS_OWNER:
                r = await call(method, path, owner, owner.token)
                expect("owner", r.is_success, r)
    total = sum(calls.values())
    record(
        "access-matrix",
        f"{total} calls over every bearer operation × identities {dict(sorted(calls.items()))}, "
        f"{len(unexpected)} unexpected answers (0 unexpected 2xx required)",
    )
    assert not unexpected, unexpected
