"""The person's whole story through the web app in headless Chromium, against a live server.

A business (the HTTP test actor) invites; the person does everything in the browser: key
created in the page, registration, invitation link, grants, mute, live inbox, favours,
verified history, sever, key backup and restore, data export and account deletion. Each
step is checked on the server side too, and axe-core runs on every screen.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, expect
from rapport_protocol import MessageType

from tests.helpers import Actor

from .conftest import axe_violations, needs_browser

pytestmark = needs_browser

REQUESTED = [
    {"scope": "message", "topic": "orders", "purpose": "order updates"},
    {"scope": "message", "topic": "offers", "rate": {"count": 3, "period": "P1W"}},
    {"scope": "favour", "topic": "review"},
]
OFFERED = [{"scope": "message", "topic": "support"}]


class Screens:
    """Screenshots and accessibility checks, one per screen visited."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.count = 0
        self.violations: dict[str, list[dict[str, Any]]] = {}

    async def shot(self, name: str, *, axe: bool = True) -> None:
        self.count += 1
        await self.page.screenshot(
            path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True
        )
        overflow = await self.page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"{name}: wider than the phone by {overflow}px"
        if axe:
            found = await axe_violations(self.page)
            if found:
                self.violations[name] = [{"id": v["id"], "help": v["help"]} for v in found]


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return errors


async def server_connection(shop: Actor, cid: str) -> dict[str, Any]:
    r = await shop.get(f"/v1/connections/{cid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def granted_to_shop(shop: Actor, cid: str) -> dict[tuple[str, str], dict[str, Any]]:
    r = await shop.get(f"/v1/connections/{cid}/grants")
    assert r.status_code == 200, r.text
    return {(g["scope"], g["topic"]): g for g in r.json()["granted_to_me"]}


async def test_person_story_in_the_browser(
    shop: Actor, phone: BrowserContext, artifacts: Path
) -> None:
    started = time.monotonic()
    r = await shop.invite(offered=OFFERED, requested=REQUESTED, label="Roastery")
    assert r.status_code == 201, r.text
    invite_url = r.json()["url"]
    assert "/app/invite/" in invite_url

    page = await phone.new_page()
    errors = watch_errors(page)
    screens = Screens(page, artifacts)

    # 1. The link opens the app; no key yet, so the welcome screen comes first.
    await page.goto(invite_url)
    await expect(page.get_by_text("You opened an invitation")).to_be_visible()
    await expect(page.get_by_role("heading", name="Welcome to Rapport")).to_be_focused()
    await page.get_by_role("link", name="Skip to content").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    assert "#/invite/" in page.url  # the router's hash is untouched
    await screens.shot("welcome")
    await page.get_by_label("Your name").fill("Ann")
    await page.get_by_role("button", name="Create my key and start").click()

    # 2. The invitation, in plain words, with a QR code of the link for another device.
    await expect(page.get_by_role("heading", name="Invitation from Roastery")).to_be_visible()
    await expect(page.get_by_text("Roastery may send you messages about offers")).to_contain_text(
        "at most 3 per week"
    )
    qr = page.get_by_role("img", name="QR code of this invitation link")
    assert await qr.get_attribute("data-text") == invite_url
    await screens.shot("invitation")
    stored = await page.evaluate("() => JSON.parse(localStorage.getItem('rapport.key.v1'))")
    assert stored["did"].startswith("did:key:z6Mk")
    # Accepting on my terms: a cap on orders that the business did not ask for.
    await page.get_by_label("At most").first.fill("10")
    await page.get_by_label("Period").first.select_option("P1D")
    await page.get_by_role("button", name="Accept and connect").click()

    # 3. The connection: all three requested grants given, history verified in the browser.
    await expect(page.get_by_role("heading", name="Roastery", level=1)).to_be_visible()
    await expect(page.locator("#history-verdict")).to_contain_text("verified ✓")
    cid = page.url.rsplit("/", 1)[-1]
    connection = await server_connection(shop, cid)
    assert connection["status"] == "active"
    assert connection["counterparty_did"] == stored["did"]
    given = await granted_to_shop(shop, cid)
    assert set(given) == {("message", "orders"), ("message", "offers"), ("favour", "review")}
    assert given[("message", "orders")]["rate"] == {"count": 10, "period": "P1D"}
    assert given[("message", "offers")]["rate"] == {"count": 3, "period": "P1W"}
    await screens.shot("connection")

    # 4. Toggle a grant off: the business may no longer send offers.
    offers = page.get_by_role("switch", name="Messages about offers")
    await expect(offers).to_be_checked()
    await offers.click()
    await expect(page.get_by_role("status")).to_contain_text("may no longer send you messages")
    await expect(page.get_by_role("switch", name="Messages about offers")).not_to_be_checked()
    assert ("message", "offers") not in await granted_to_shop(shop, cid)
    r = await shop.send(cid, "offers", "20% off!")
    assert r.status_code == 403 and r.json()["code"] == "grant_missing", r.text

    # 5. Cap the orders grant at 5 per day (an amendment signed in the browser).
    await page.get_by_label("At most").first.fill("5")
    await page.get_by_label("Period").first.select_option("P1D")
    await page.get_by_role("button", name="Save limit").first.click()
    await expect(page.get_by_role("status")).to_contain_text("at most 5 per day")
    orders = (await granted_to_shop(shop, cid))[("message", "orders")]
    assert orders["rate"] == {"count": 5, "period": "P1D"}

    # 6. Mute for 1 hour, letting orders through.
    await page.get_by_label("Let these topics through anyway").fill("orders")
    await page.get_by_role("button", name="1 hour").click()
    await expect(page.get_by_text("muted until").first).to_be_visible()
    mute = (await server_connection(shop, cid))["muted_by_them"]
    assert mute is not None and mute["exempt_topics"] == ["orders"]
    assert abs(mute["until"] - (int(time.time()) + 3600)) < 120
    await screens.shot("muted")

    # 7. The inbox updates live: a message sent now appears without reloading.
    await page.get_by_role("link", name="Inbox").click()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(page.get_by_text("No messages yet.")).to_be_visible()
    r = await shop.send(cid, "orders", "Your order #42 has shipped")
    assert r.status_code == 201, r.text
    assert r.json()["held"] is False  # exempt from the mute
    await expect(page.get_by_text("Your order #42 has shipped")).to_be_visible(timeout=10_000)
    await expect(page.locator("#inbox-count")).to_have_text("1")
    if (await shop.get("/v1/events?limit=1")).status_code == 200:
        await expect(page.locator("#live-mode")).to_have_text("Live")  # the SSE stream
    await screens.shot("inbox-live")

    # 8. A favour: the business asks, the person accepts and fulfils, the business thanks.
    r = await shop.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        MessageType.FAVOUR_REQUEST,
        {"kind": "review", "description": "Would you review our new espresso blend?"},
        cid,
    )
    assert r.status_code == 201, r.text
    favour_id = r.json()["id"]
    ask = page.get_by_role("group", name="Answer: Would you review our new espresso blend?")
    await ask.get_by_role("button", name="Accept").click(timeout=10_000)
    await ask.get_by_role("button", name="Mark as done").click()
    await expect(page.get_by_text("No favour requests.")).to_be_visible()
    r = await shop.act(
        "POST",
        f"/v1/connections/{cid}/favours/{favour_id}/acknowledge",
        MessageType.FAVOUR_ACKNOWLEDGE,
        {"favour": favour_id},
        cid,
    )
    assert r.status_code == 200 and r.json()["status"] == "acknowledged", r.text
    await page.get_by_role("button", name="Mark as read").click()
    await expect(page.locator("#inbox-count")).to_be_hidden()

    # 8b. A second ask gets a counter-offer (a decline carrying the person's note).
    r = await shop.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        MessageType.FAVOUR_REQUEST,
        {"kind": "review", "description": "Could you film a video review?"},
        cid,
    )
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    ask = page.get_by_role("group", name="Answer: Could you film a video review?")
    await ask.get_by_role("button", name="Counter…").click(timeout=10_000)
    counter = page.get_by_role("dialog", name="Counter-offer")
    await counter.get_by_label("What can you offer instead?").fill("A written review instead")
    await counter.get_by_role("button", name="Send counter-offer").click()
    await expect(page.get_by_role("status")).to_contain_text("counter-offer")
    log = (await shop.get(f"/v1/connections/{cid}/log?limit=200")).json()["data"]
    answer = [e["object"] for e in log if e["object"]["body"].get("favour") == second]
    assert [o["type"].rsplit("/", 1)[-1] for o in answer] == ["favour-decline"]
    assert answer[0]["body"]["note"] == "Counter-offer: A written review instead"

    # 9. The connection page: ledger and a history that still verifies; a tampered copy does not.
    await page.get_by_role("link", name="Connections").click()
    await expect(page.get_by_role("link", name="Roastery")).to_be_visible()
    await expect(page.get_by_text("muted until")).to_be_visible()
    await screens.shot("connections")
    await page.get_by_role("link", name="Roastery").click()
    await expect(page.get_by_text("You did 1 favour for Roastery")).to_be_visible()
    await expect(page.locator("#history-verdict")).to_contain_text("verified ✓")
    await expect(page.locator("#history-verdict")).to_contain_text("signed objects")
    tampered = await page.evaluate(
        """async (cid) => {
          const { verifyLog } = await import('/app/static/js/protocol.js');
          const { app } = await import('/app/static/js/app.js');
          const log = await app.api.log(cid);
          const good = await verifyLog(log);
          const edited = structuredClone(log);
          const message = edited.find((o) => o.payload !== undefined);
          message.payload = 'Your order #43 has shipped';
          const reordered = [log[0], ...log.slice(2), log[1]];
          return [good.ok, good.count, (await verifyLog(edited)).problems.map((p) => p.reason),
                  (await verifyLog(reordered)).ok];
        }""",
        cid,
    )
    assert tampered[0] is True and tampered[1] >= 10
    assert tampered[2] == ["content does not match digest"]
    assert tampered[3] is False
    await screens.shot("connection-history")

    # 9b. A live update never wipes what the person is typing; it waits for them.
    cap = page.get_by_label("At most").first
    await cap.fill("7")
    r = await shop.send(cid, "orders", "A second order update")
    assert r.status_code == 201, r.text
    await page.wait_for_timeout(2500)
    await expect(cap).to_have_value("7")
    await expect(cap).to_be_focused()
    await page.get_by_role("button", name="Unmute").click()  # moves focus: the refresh runs
    await expect(page.get_by_text("active", exact=True)).to_be_visible()
    assert (await server_connection(shop, cid))["muted_by_them"] is None
    await expect(page.get_by_label("At most").first).to_have_value("5")

    # 10. Sever, after a confirmation naming the consequences and the data instruction.
    await page.get_by_role("button", name="Cut off Roastery…").click()
    await page.keyboard.press("Escape")  # the keyboard way out changes nothing
    await expect(page.get_by_role("dialog")).to_have_count(0)
    assert (await server_connection(shop, cid))["status"] == "active"
    await page.get_by_role("button", name="Cut off Roastery…").click()
    dialog = page.get_by_role("dialog", name="Cut off Roastery?")
    await expect(dialog).to_contain_text("can no longer send you messages")
    await expect(dialog).to_contain_text("This is final")
    await dialog.get_by_label("Send me a copy, then delete it").check()
    await screens.shot("sever-dialog")
    await dialog.get_by_role("button", name="Cut off Roastery").click()
    await expect(page.get_by_text("cut off", exact=True)).to_be_visible()
    severed = await server_connection(shop, cid)
    assert severed["status"] == "severed"
    assert severed["severance"]["data"] == "export_then_delete"
    r = await shop.send(cid, "orders", "still there?")
    assert r.status_code == 410, r.text
    await expect(page.locator("#history-verdict")).to_contain_text("verified ✓")
    await screens.shot("severed")

    # 11. Key backup: download an encrypted file and restore it in a fresh browser profile.
    await page.get_by_role("link", name="Account").click()
    await page.get_by_label("Passphrase for the backup").fill("correct horse battery")
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download encrypted key backup").click()
    backup = artifacts / "rapport-key-backup.json"
    await (await download_info.value).save_as(backup)
    backup_doc = json.loads(backup.read_text())
    assert backup_doc["did"] == stored["did"] and stored["seed"] not in backup.read_text()
    await screens.shot("account")

    other = await phone.browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[union-attr]
    try:
        restored = await other.new_page()
        await restored.goto(invite_url.split("/app/")[0] + "/app/")
        await restored.get_by_label("Key backup file").set_input_files(str(backup))
        await restored.get_by_label("Passphrase").fill("wrong passphrase")
        await restored.get_by_role("button", name="Restore").click()
        await expect(restored.get_by_role("status")).to_contain_text("Wrong passphrase")
        await restored.get_by_label("Passphrase").fill("correct horse battery")
        await restored.get_by_role("button", name="Restore").click()
        await expect(restored.get_by_role("link", name="Roastery")).to_be_visible()
    finally:
        await other.close()

    # 12. Export my data, then delete the account.
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Export my data").click()
    exported = artifacts / "rapport-export.json"
    await (await download_info.value).save_as(exported)
    assert stored["did"] in exported.read_text()
    await page.get_by_role("button", name="Delete my account…").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete my account").click()
    await expect(page.get_by_role("heading", name="Welcome to Rapport")).to_be_visible()
    assert await page.evaluate("() => localStorage.getItem('rapport.key.v1')") is None

    assert not errors, errors
    assert not screens.violations, screens.violations
    assert time.monotonic() - started < 120


async def test_inbox_still_updates_by_polling_without_the_event_stream(
    shop: Actor, phone: BrowserContext, artifacts: Path
) -> None:
    r = await shop.invite(requested=[{"scope": "message", "topic": "orders"}], label="Bakery")
    assert r.status_code == 201, r.text
    page = await phone.new_page()
    errors = watch_errors(page)
    # An older server: no /v1/events at all (neither the stream nor the JSON form).
    await page.route("**/v1/events*", lambda route: route.fulfill(status=404, body="{}"))
    await page.goto(r.json()["url"])
    await page.get_by_label("Your name").fill("Bo")
    await page.get_by_role("button", name="Create my key and start").click()
    await page.get_by_role("button", name="Accept and connect").click()
    await expect(page.locator("#history-verdict")).to_contain_text("verified ✓")
    cid = page.url.rsplit("/", 1)[-1]
    await page.get_by_role("link", name="Inbox").click()
    await expect(page.get_by_text("No messages yet.")).to_be_visible()
    await expect(page.locator("#live-mode")).to_have_text("Live (polling)")
    r = await shop.send(cid, "orders", "Fresh bread is ready")
    assert r.status_code == 201, r.text
    await expect(page.get_by_text("Fresh bread is ready")).to_be_visible(timeout=10_000)
    await page.screenshot(path=str(artifacts / "inbox-polling.png"))

    # The person invites in turn: an invitation signed in the browser, shown as link + QR.
    await page.get_by_role("link", name="Connections").click()
    await page.get_by_role("link", name="Invite someone to connect with you").click()
    await page.get_by_label("They may send me messages about").fill("family")
    await page.get_by_role("button", name="Create invitation link").click()
    link = await page.locator("#share-link").text_content()
    assert link is not None and "/app/invite/" in link
    qr = page.get_by_role("img", name="QR code of your invitation link")
    assert await qr.get_attribute("data-text") == link
    assert not await axe_violations(page)
    await page.screenshot(path=str(artifacts / "share.png"), full_page=True)
    r = await shop.http.get(f"{shop.base_url}/v1/invitations/by-token/{link.rsplit('/', 1)[-1]}")
    invitation = r.json()["object"]
    assert invitation["body"]["offered"] == [{"scope": "message", "topic": "family"}]
    r = await shop.accept(invitation["id"], label="Roastery")
    assert r.status_code == 201, r.text
    r = await shop.send(r.json()["cid"], "family", "Hello from the other side")
    assert r.status_code == 201, r.text
    await page.get_by_role("link", name="Connections").click()
    await page.get_by_role("link", name="Roastery").click()
    await expect(page.get_by_role("switch", name="Messages about family")).to_be_checked()
    await expect(page.locator("#history-verdict")).to_contain_text("verified ✓")
    # 404 responses are logged by Chromium as console errors: only page errors count here.
    assert not [e for e in errors if e.startswith("page error")], errors
