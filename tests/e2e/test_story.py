"""The whole story over real HTTP: a coffee roaster and a person, from connection to cut-off."""

from __future__ import annotations

from rapport_protocol import MessageType, derive_cid, verify_log

from tests.helpers import Actor, FakeClock

M = MessageType
DAY = 86400


async def fetch_log(actor: Actor, cid: str) -> list[dict]:  # type: ignore[type-arg]
    entries: list[dict] = []  # type: ignore[type-arg]
    cursor = None
    while True:
        r = await actor.get(
            f"/v1/connections/{cid}/log",
            params={"limit": 7, **({"cursor": cursor} if cursor else {})},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        entries.extend(page["data"])
        if not page["has_more"]:
            return entries
        cursor = page["next_cursor"]


async def test_roaster_and_person_story(actor, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    roaster: Actor = actor()
    await roaster.register("business", "Kettle & Bean Roasters")
    ann: Actor = actor()
    await ann.register("person", "Ann")

    # 1. Connect: the roaster offers support messages and callback favours; it asks to send
    #    order updates (3 a day) and marketing. Ann grants order updates, security notices
    #    and review requests, and not marketing.
    r = await roaster.invite(
        offered=[
            {"scope": "message", "topic": "support"},
            {"scope": "favour", "topic": "callback"},
        ],
        requested=[
            {"scope": "message", "topic": "order_updates", "rate": {"count": 3, "period": "P1D"}},
            {"scope": "message", "topic": "marketing"},
        ],
        label="Kettle & Bean",
    )
    assert r.status_code == 201, r.text
    invitation = r.json()
    looked_up = await roaster.http.get(
        f"{roaster.base_url}/v1/invitations/by-token/{invitation['token']}"
    )
    assert looked_up.json()["id"] == invitation["id"] and looked_up.json()["token"] is None
    r = await ann.accept(
        invitation["id"],
        [
            {"scope": "message", "topic": "order_updates", "rate": {"count": 3, "period": "P1D"}},
            {"scope": "message", "topic": "security"},
            {"scope": "favour", "topic": "review"},
        ],
    )
    assert r.status_code == 201, r.text
    cid = r.json()["cid"]
    assert cid == derive_cid(invitation["id"], ann.did)

    # 2. Order updates flow, three a day; marketing never does.
    for i in range(3):
        r = await roaster.send(cid, "order_updates", f"order #{i} shipped")
        assert r.status_code == 201, r.text
    r = await roaster.send(cid, "order_updates", "one too many")
    assert r.status_code == 429 and r.json()["code"] == "rate_exceeded"
    assert 0 < int(r.headers["Retry-After"]) <= DAY
    r = await roaster.send(cid, "marketing", "50% off!")
    assert r.status_code == 403 and r.json()["code"] == "grant_missing"

    # 3. Ann mutes the roaster for a week, except security notices.
    clock.advance(DAY)
    await roaster.login()
    await ann.login()
    week = clock() + 7 * DAY
    r = await ann.act(
        "PUT",
        f"/v1/connections/{cid}/mute",
        M.MUTE,
        {"until": week, "exempt_topics": ["security"], "mode": "reject"},
        cid,
    )
    assert r.status_code == 200, r.text
    assert r.json()["muted_by_me"]["until"] == week
    r = await roaster.send(cid, "order_updates", "while muted")
    assert r.status_code == 403 and r.json()["code"] == "muted"
    assert r.json()["muted_until"] == week
    r = await roaster.send(cid, "security", "new login from Lisbon")
    assert r.status_code == 201, r.text

    # 4. Ann asks a favour: a callback. The roaster accepts and calls; Ann acknowledges.
    r = await ann.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        M.FAVOUR_REQUEST,
        {"kind": "callback", "description": "Please call me about my grinder"},
        cid,
    )
    assert r.status_code == 201, r.text
    callback = r.json()["id"]
    for who, step in ((roaster, "accept"), (roaster, "fulfil"), (ann, "acknowledge")):
        mtype = {
            "accept": M.FAVOUR_ACCEPT,
            "fulfil": M.FAVOUR_FULFIL,
            "acknowledge": M.FAVOUR_ACKNOWLEDGE,
        }[step]
        r = await who.act(
            "POST",
            f"/v1/connections/{cid}/favours/{callback}/{step}",
            mtype,
            {"favour": callback},
            cid,
        )
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged"

    # 5. The roaster asks a favour back, a review, which returns the callback.
    r = await roaster.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        M.FAVOUR_REQUEST,
        {"kind": "review", "description": "Would you review us?", "return_of": callback},
        cid,
    )
    assert r.status_code == 201, r.text
    review = r.json()["id"]
    for step, mtype in (("accept", M.FAVOUR_ACCEPT), ("fulfil", M.FAVOUR_FULFIL)):
        r = await ann.act(
            "POST", f"/v1/connections/{cid}/favours/{review}/{step}", mtype, {"favour": review}, cid
        )
        assert r.status_code == 200, r.text
    r = await ann.get(f"/v1/connections/{cid}/ledger")
    assert r.json()["me"] == {"given": 1, "received": 1, "returned": 1, "open_asks": 0}
    assert r.json()["them"]["given"] == 1 and r.json()["them"]["returned"] == 0

    # 6. Ann narrows the order-updates grant to one a week.
    grants = (await ann.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"]
    order = next(g for g in grants if g["topic"] == "order_updates")
    r = await ann.act(
        "POST",
        f"/v1/connections/{cid}/grants/{order['id']}/amend",
        M.GRANT_AMEND,
        {
            "replaces": order["id"],
            "grant": {
                "scope": "message",
                "topic": "order_updates",
                "rate": {"count": 1, "period": "P7D"},
            },
        },
        cid,
    )
    assert r.status_code == 201, r.text
    r = await ann.act(
        "POST",
        f"/v1/connections/{cid}/grants/{order['id']}/amend",
        M.GRANT_AMEND,
        {"replaces": order["id"], "grant": {"scope": "message", "topic": "order_updates"}},
        cid,
    )
    assert r.status_code == 409 and r.json()["code"] == "grant_conflict"
    receipt = (
        await ann.get(
            f"/v1/connections/{cid}/grants/{order['id']}/receipt", params={"format": "dpv"}
        )
    ).json()
    assert receipt["dpv:hasConsentStatus"]["@id"] == "dpv:ConsentInvalidated"

    # 7. Ann cuts the roaster off: delete her data, and no re-invitations.
    r = await ann.act(
        "POST",
        f"/v1/connections/{cid}/sever",
        M.SEVER,
        {"data": "delete", "block_reinvite": True},
        cid,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "severed"

    # 8. Afterwards every send and re-invite is refused with the right code.
    r = await roaster.send(cid, "security", "still there?")
    assert r.status_code == 410 and r.json()["code"] == "connection_severed"
    r = await roaster.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        M.FAVOUR_REQUEST,
        {"kind": "review", "description": "again?"},
        cid,
    )
    assert r.status_code == 410 and r.json()["code"] == "connection_severed"
    r = await ann.send(cid, "support", "hello?")
    assert r.status_code == 410
    r = await roaster.invite(to=[ann.did], requested=[{"scope": "message", "topic": "marketing"}])
    assert r.status_code == 403 and r.json()["code"] == "reinvite_blocked"
    inbox = (await roaster.get("/v1/messages", params={"cid": cid})).json()["data"]
    assert inbox == []

    # 9. Both parties' logs verify from their signatures alone; message content is erased.
    logs = {}
    for who in (ann, roaster):
        entries = await fetch_log(who, cid)
        verified = verify_log([(e["object"], e["received_time"]) for e in entries])
        assert verified.state.status == "severed"
        assert verified.state.severance is not None and verified.state.severance.block_reinvite
        logs[who.did] = [e["object"]["id"] for e in entries]
        assert all("payload" not in e["object"] for e in entries)
    assert logs[ann.did] == logs[roaster.did]
    assert len(logs[ann.did]) == 2 + 3 + 1 + 1 + 3 + 1 + 2 + 1 + 1 + 1  # see the steps above

    # Only Ann can reopen: she invites the roaster, and it may accept.
    r = await ann.invite(offered=[{"scope": "message", "topic": "support"}])
    assert r.status_code == 201, r.text
    r = await roaster.accept(r.json()["id"])
    assert r.status_code == 201, r.text
