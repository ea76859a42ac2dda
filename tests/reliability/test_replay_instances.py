"""Family 5 — replay and races across two app instances on one database.

``tests/server/test_guarantees.py`` already shows, on one instance: an idempotency key
replays its stored response, a replayed object is refused, 100 concurrent identical sends
accept exactly one, and two concurrent amendments of one grant let exactly one win;
``tests/server/test_auth.py`` covers assertion (``jti``) replay. Here the same attacks are
split across two instances sharing the database (behind one public URL, as behind a load
balancer), where in-process locks and caches cannot help.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from rapport_protocol import MessageType

from tests.helpers import Actor, FakeClock, assertion, connect, free_port
from tests.reliability.conftest import profile, record
from tests.reliability.world import app_instance

M = MessageType


async def test_replays_and_races_split_across_two_instances(
    database_url: str, clock: FakeClock
) -> None:
    public = f"http://127.0.0.1:{free_port()}"
    copies = profile(40, 200)
    async with (
        app_instance(database_url, clock, public_url=public) as a,
        app_instance(database_url, clock, public_url=public) as b,
        httpx.AsyncClient(timeout=60) as http,
    ):
        shop = Actor(http=http, clock=clock, base_url=a)
        ann = Actor(http=http, clock=clock, base_url=a)
        # Register through a, with the shared public URL as the JWT audience.
        for who, kind in ((shop, "business"), (ann, "person")):
            r = await http.post(
                f"{a}/v1/parties",
                json={
                    "kind": kind,
                    "display_name": kind,
                    "assertion": assertion(who.key, f"{public}/v1/parties", clock()),
                },
            )
            assert r.status_code == 201, r.text
            who.kind = kind
            r = await http.post(
                f"{b}/v1/oauth/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": assertion(who.key, f"{public}/v1/oauth/token", clock()),
                },
            )
            assert r.status_code == 200, r.text
            who.token = r.json()["access_token"]
        cid = await connect(shop, ann, person_grants=[{"scope": "message", "topic": "news"}])
        figures: Counter[str] = Counter()

        # 1. An object accepted by a is a replay at b.
        obj = shop.sign(M.MESSAGE, {"topic": "news"}, cid, payload="once")
        path = f"/v1/connections/{cid}/messages"
        r1 = await http.post(a + path, json={"object": obj}, headers=shop.headers)
        r2 = await http.post(b + path, json={"object": obj}, headers=shop.headers)
        assert r1.status_code == 201 and r2.status_code == 409, (r1.text, r2.text)
        assert r2.json()["code"] == "replayed"
        figures["sequential replay refused"] += 1

        # 2. Concurrent identical sends, alternating instances: exactly one accepted.
        obj = shop.sign(M.MESSAGE, {"topic": "news"}, cid, payload="race")
        results = await asyncio.gather(
            *[
                http.post((a, b)[i % 2] + path, json={"object": obj}, headers=shop.headers)
                for i in range(copies)
            ]
        )
        codes = Counter(r.status_code for r in results)
        assert codes[201] == 1 and set(codes) <= {201, 409}, codes
        figures["concurrent copies"] += copies

        # 3. The same Idempotency-Key at both instances: one effect, the same answer.
        obj = shop.sign(M.MESSAGE, {"topic": "news"}, cid, payload="idem")
        key = {"Idempotency-Key": "two-instances-1", **shop.headers}
        first = await http.post(a + path, json={"object": obj}, headers=key)
        again = await http.post(b + path, json={"object": obj}, headers=key)
        assert first.status_code == again.status_code == 201, (first.text, again.text)
        assert first.json() == again.json()
        assert again.headers.get("idempotent-replayed") == "true"
        figures["idempotent replay across instances"] += 1

        # 4. Two devices amend the same grant through different instances: one wins.
        grant = (await ann.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"][0]
        seq, prev = ann.chains[cid]
        amendments = []
        for count in (1, 2):
            ann.rewind(cid, seq, prev)
            body = {
                "replaces": grant["id"],
                "grant": {
                    "scope": "message",
                    "topic": "news",
                    "rate": {"count": count * 50, "period": "PT1H"},
                },
            }
            amendments.append(ann.sign(M.GRANT_AMEND, body, cid))
        amend = f"/v1/connections/{cid}/grants/{grant['id']}/amend"
        results = await asyncio.gather(
            *[
                http.post(base + amend, json={"object": o}, headers=ann.headers)
                for base, o in zip((a, b), amendments, strict=True)
            ]
        )
        assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
        figures["amendment race"] += 1

        # 5. A login assertion used at a is refused at b (jti replay).
        jwt = assertion(ann.key, f"{public}/v1/oauth/token", clock())
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": jwt}
        assert (await http.post(f"{a}/v1/oauth/token", data=form)).status_code == 200
        r = await http.post(f"{b}/v1/oauth/token", data=form)
        assert r.status_code == 400, r.text
        figures["assertion replay refused"] += 1

        inbox = (await ann.get("/v1/messages", params={"cid": cid})).json()["data"]
        assert [m["content"] for m in inbox] == ["once", "race", "idem"]
    record(
        "replay-two-instances",
        f"{dict(figures)}; inbox holds exactly 3 messages, 0 duplicates",
    )


async def test_a_replay_is_refused_as_a_replay_after_the_grant_is_revoked(
    business: Actor, person: Actor
) -> None:
    """Found by the stateful model: a retried message whose grant was revoked since was
    answered 403 grant_missing, so a client retrying after a lost answer would believe a
    delivered message was refused. A replay is a replay (409) whatever the grants say now."""
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    obj = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="delivered")
    path = f"/v1/connections/{cid}/messages"
    assert (await business.post(path, {"object": obj})).status_code == 201
    grant = (await person.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"][0]
    r = await person.act(
        "POST",
        f"/v1/connections/{cid}/grants/{grant['id']}/revoke",
        M.GRANT_REVOKE,
        {"grant_id": grant["id"]},
        cid,
    )
    assert r.status_code == 200, r.text
    again = await business.post(path, {"object": obj})
    assert again.status_code == 409 and again.json()["code"] == "replayed", again.text
