"""Webhooks: SSRF gates, Standard Webhooks signatures, retries, 410, dead letters, replay."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpcore
import httpx
import pytest
from nacl.signing import VerifyKey
from rapport_server.webhooks import ssrf
from standardwebhooks.webhooks import Webhook

from tests.helpers import Actor, connect
from tests.webhook_receiver import Answer, WebhookReceiver

# ---------------------------------------------------------------- URL checks (registration)

REFUSED = [
    "http://example.com/hook",  # plain http outside dev mode
    "https://127.0.0.1/hook",
    "https://127.1/hook",  # short form of 127.0.0.1
    "https://2130706433/hook",  # decimal 127.0.0.1
    "https://0x7f000001/hook",  # hex
    "https://0x7f.1/hook",
    "https://017700000001/hook",  # octal
    "https://localhost/hook",
    "https://localhost./hook",
    "https://api.localhost/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "https://[::ffff:a00:1]/hook",  # mapped 10.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # CGNAT
    "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",  # reserved
    "https://198.18.0.1/hook",  # benchmarking
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://user:pass@example.com/hook",
    "https://intranet/hook",  # single label
    "ftp://example.com/hook",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED)
def test_unsafe_webhook_urls_are_refused_at_registration(url: str) -> None:
    with pytest.raises(ssrf.UnsafeWebhookURL):
        ssrf.check_url(url, dev_mode=False)


def test_public_https_urls_are_accepted_and_dev_mode_admits_only_loopback() -> None:
    assert ssrf.check_url("https://hooks.example.com/rapport", dev_mode=False)
    assert ssrf.check_url("https://93.184.216.34/x", dev_mode=False)
    assert ssrf.check_url("http://127.0.0.1:8080/x", dev_mode=True)
    assert ssrf.check_url("http://localhost:8080/x", dev_mode=True)
    for url in ("http://10.0.0.1/x", "http://169.254.169.254/", "http://0x7f.1/"):
        with pytest.raises(ssrf.UnsafeWebhookURL):
            ssrf.check_url(url, dev_mode=True)


# ------------------------------------------------------- connection-time pinning (no connect)


class FakeResolver:
    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[host].pop(0)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Counts connection attempts and refuses them all (no network in this test)."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kw: Any) -> Any:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded")

    async def connect_unix_socket(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("unexpected")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["93.184.216.34", "127.0.0.1"],  # one bad address among good ones refuses all
        ["::ffff:169.254.169.254"],
        ["100.100.100.200"],
        ["::1"],
        ["fd00::1"],
        ["0.0.0.0"],
    ],
)
async def test_refused_resolved_addresses_get_zero_connection_attempts(
    addresses: list[str],
) -> None:
    inner = RecordingBackend()
    resolver = FakeResolver({"hooks.example.com": [addresses]})
    backend = ssrf.PinnedBackend(resolver, dev_mode=False, inner=inner)
    async with httpx.AsyncClient(transport=ssrf.PinnedTransport(backend)) as client:
        with pytest.raises(httpx.ConnectError, match="resolves to"):
            await client.post("https://hooks.example.com/x", content=b"{}")
    assert inner.connects == []
    assert resolver.calls == ["hooks.example.com"]


async def test_the_checked_address_is_the_one_connected_to_dns_rebinding_fails() -> None:
    inner = RecordingBackend()
    # A rebinding resolver: public on the first lookup, loopback on any later one.
    resolver = FakeResolver({"rebind.example.com": [["93.184.216.34"], ["127.0.0.1"]]})
    backend = ssrf.PinnedBackend(resolver, dev_mode=False, inner=inner)
    async with httpx.AsyncClient(transport=ssrf.PinnedTransport(backend)) as client:
        with pytest.raises(httpx.ConnectError, match="recorded"):
            await client.post("https://rebind.example.com/x", content=b"{}")
    assert inner.connects == [("93.184.216.34", 443)]  # pinned IP, resolved once
    assert resolver.calls == ["rebind.example.com"]


async def test_registration_over_http_refuses_unsafe_urls(business: Actor) -> None:
    for url in ("http://10.0.0.1/h", "https://169.254.169.254/", "https://u:p@example.com/"):
        r = await business.post("/v1/webhook-endpoints", {"url": url})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "webhook_url_unsafe"


# -------------------------------------------------------------------- deliveries end to end


async def register_endpoint(actor: Actor, url: str, **extra: Any) -> dict[str, Any]:
    r = await actor.post("/v1/webhook-endpoints", {"url": url, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["secret"].startswith("whsec_")
    return body


async def server_key(actor: Actor) -> VerifyKey:
    r = await actor.http.get(actor.base_url + "/.well-known/rapport-webhook-keys")
    key = r.json()["keys"][0]["public_key"]
    return VerifyKey(base64.b64decode(key.removeprefix("whpk_")))


def verify_v1a(key: VerifyKey, got: Any) -> None:
    h = got.headers
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + got.body
    sigs = [s.split(",", 1)[1] for s in h["webhook-signature"].split() if s.startswith("v1a,")]
    assert sigs
    key.verify(signed, base64.b64decode(sigs[0]))


async def test_deliveries_verify_with_the_standard_webhooks_library_and_the_published_key(
    business: Actor, person: Actor
) -> None:
    async with WebhookReceiver() as receiver:
        endpoint = await register_endpoint(person, receiver.url, types=["message"])
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "beans are in")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.ok()) >= 1)
        got = receiver.ok()[0]
        # v1 (HMAC) with the public standardwebhooks library, exactly as a receiver would.
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "message"
        assert payload["data"]["object"]["payload"] == "beans are in"
        verify_v1a(await server_key(person), got)
        inbox = (await person.get("/v1/messages")).json()["data"]
        assert payload["data"]["id"] == inbox[-1]["id"]  # the stream's event number
        assert got.id.startswith("msg_")
        endpoint_path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
        listed = (await person.get(endpoint_path)).json()["data"]
        assert [(d["webhook_id"], d["event_id"], d["status"]) for d in listed] == [
            (got.id, inbox[-1]["id"], "delivered")
        ]
        assert listed[0]["attempts"] == 1 and listed[0]["last_error"] is None
        assert 200 <= listed[0]["last_status"] < 300 and listed[0]["delivered_time"] is not None
        # A tampered body fails verification.
        with pytest.raises(Exception):
            Webhook(endpoint["secret"]).verify(got.body.replace(b"beans", b"beanz"), got.headers)


async def test_receiver_down_then_up_gets_everything_once_per_webhook_id(
    business: Actor, person: Actor
) -> None:
    up = False

    def behaviour(_h: dict[str, str], _b: bytes) -> Answer:
        return Answer(200) if up else Answer(503)

    async with WebhookReceiver(behaviour) as receiver:
        await register_endpoint(person, receiver.url, types=["message"])
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        for i in range(10):
            assert (await business.send(cid, "news", f"m{i}")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.received) >= 10)
        assert receiver.ok() == []
        await receiver.close()  # now it is down at the TCP level too
        await asyncio.sleep(0.5)
        up = True
        await receiver.reopen()
        await receiver.wait_for(lambda: len(receiver.ok()) >= 10, within=30)
        await asyncio.sleep(0.5)  # nothing more should arrive
        ids = [r.id for r in receiver.ok()]
        assert len(ids) == len(set(ids)) == 10
        contents = sorted(r.json["data"]["object"]["payload"] for r in receiver.ok())
        assert contents == sorted(f"m{i}" for i in range(10))


async def test_gone_disables_the_endpoint_and_retry_after_is_honoured(
    business: Actor, person: Actor
) -> None:
    answers = [Answer(429, {"retry-after": "2"}), Answer(200), Answer(410)]

    def behaviour(_h: dict[str, str], _b: bytes) -> Answer:
        return answers.pop(0) if answers else Answer(200)

    async with WebhookReceiver(behaviour) as receiver:
        endpoint = await register_endpoint(person, receiver.url, types=["message"])
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "one")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.ok()) == 1)
        first, second = receiver.received[0], receiver.received[1]
        assert second.at - first.at >= 1.9  # waited for Retry-After, not the 10 ms step
        assert (await business.send(cid, "news", "two")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.received) == 3)
        await asyncio.sleep(0.3)
        got = (await person.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
        assert got["enabled"] is False and "410" in got["disabled_reason"]
        assert (await business.send(cid, "news", "three")).status_code == 201
        await asyncio.sleep(1.5)
        assert len(receiver.received) == 3  # nothing goes to a disabled endpoint
        r = await person.post(f"/v1/webhook-endpoints/{endpoint['id']}/enable")
        assert r.status_code == 200 and r.json()["enabled"]
        await receiver.wait_for(
            lambda: "three" in [x.json["data"]["object"]["payload"] for x in receiver.ok()]
        )


async def test_a_disabled_endpoint_keeps_its_backlog_parked_until_enabled(
    business: Actor, person: Actor
) -> None:
    up = False

    def behaviour(_h: dict[str, str], _b: bytes) -> Answer:
        return Answer(200) if up else Answer(503)

    async with WebhookReceiver(behaviour) as receiver:
        endpoint = await register_endpoint(person, receiver.url, types=["message"])
        base = f"/v1/webhook-endpoints/{endpoint['id']}"
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        for i in range(3):
            assert (await business.send(cid, "news", f"m{i}")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.received) >= 9)  # retrying, fast
        assert (await person.post(base + "/disable")).status_code == 200
        await asyncio.sleep(0.5)  # an attempt in flight at the disable is recorded
        tried = len(receiver.received)
        listed = (await person.get(base + "/deliveries")).json()["data"]
        assert [d["status"] for d in listed] == ["pending"] * 3
        assert [d["next_attempt_time"] for d in listed] == [None] * 3  # nothing scheduled
        await asyncio.sleep(1.0)
        assert len(receiver.received) == tried
        up = True
        assert (await person.post(base + "/enable")).status_code == 200
        await receiver.wait_for(lambda: len(receiver.ok()) == 3)
        assert sorted(r.json["data"]["object"]["payload"] for r in receiver.ok()) == [
            "m0",
            "m1",
            "m2",
        ]


async def test_a_retry_recorded_after_the_owner_disabled_the_endpoint_is_parked(
    business: Actor, person: Actor
) -> None:
    answers = [Answer(503, delay=1.0)]  # the first attempt fails, a second late

    async with WebhookReceiver(lambda _h, _b: answers.pop() if answers else Answer(200)) as rx:
        endpoint = await register_endpoint(person, rx.url, types=["message"])
        base = f"/v1/webhook-endpoints/{endpoint['id']}"
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "late")).status_code == 201
        await rx.wait_for(lambda: len(rx.received) == 1)  # in flight: not yet recorded
        assert (await person.post(base + "/disable")).status_code == 200
        await asyncio.sleep(1.5)  # the 503 is recorded after the disable
        listed = (await person.get(base + "/deliveries")).json()["data"]
        assert [(d["status"], d["attempts"]) for d in listed] == [("pending", 1)]
        assert listed[0]["next_attempt_time"] is None  # parked, not at its retry time
        assert len(rx.received) == 1
        assert (await person.post(base + "/enable")).status_code == 200
        await rx.wait_for(lambda: len(rx.ok()) == 1)


async def test_a_replay_on_a_disabled_endpoint_waits_parked_for_the_enable(
    business: Actor, person: Actor
) -> None:
    async with WebhookReceiver() as rx:
        endpoint = await register_endpoint(person, rx.url, types=["message"])
        base = f"/v1/webhook-endpoints/{endpoint['id']}"
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "again")).status_code == 201
        await rx.wait_for(lambda: len(rx.ok()) == 1)
        assert (await person.post(base + "/disable")).status_code == 200
        r = await person.post(base + "/replay", {"after": 0})
        assert r.json() == {"scheduled": 1}
        listed = (await person.get(base + "/deliveries")).json()["data"]
        assert [(d["status"], d["next_attempt_time"]) for d in listed] == [("pending", None)]
        await asyncio.sleep(1.0)
        assert len(rx.received) == 1  # nothing goes out while it is disabled
        assert (await person.post(base + "/enable")).status_code == 200
        await rx.wait_for(lambda: len(rx.ok()) == 2)
        assert rx.ok()[1].id == rx.ok()[0].id


async def test_dead_letters_can_be_listed_and_replayed(business: Actor, person: Actor) -> None:
    healthy = False

    def behaviour(_h: dict[str, str], _b: bytes) -> Answer:
        return Answer(200) if healthy else Answer(500)

    async with WebhookReceiver(behaviour) as receiver:
        endpoint = await register_endpoint(person, receiver.url, types=["message"])
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "lost?")).status_code == 201
        path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
        deadline = time.monotonic() + 60
        while True:  # the scaled schedule runs out in well under a minute
            dead = (await person.get(path, params={"status": "dead"})).json()["data"]
            if dead:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
        assert dead[0]["attempts"] == 10 and dead[0]["last_status"] == 500
        attempts = len(receiver.received)
        healthy = True
        r = await person.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay", {})
        assert r.json() == {"scheduled": 1}
        await receiver.wait_for(lambda: len(receiver.ok()) == 1)
        assert len({x.id for x in receiver.received}) == 1  # every attempt, one webhook-id
        assert len(receiver.received) == attempts + 1
        # Replay from an event number redelivers with the same ids.
        r = await person.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay", {"after": 0})
        assert r.json()["scheduled"] >= 1
        await receiver.wait_for(lambda: len(receiver.ok()) >= 2)
        assert receiver.ok()[1].id == receiver.ok()[0].id


async def test_a_replay_scheduled_during_an_attempt_is_not_overwritten(
    business: Actor, person: Actor
) -> None:
    answers = [Answer(200, delay=1.0)]  # the first attempt is answered a second late

    async with WebhookReceiver(lambda _h, _b: answers.pop() if answers else Answer(200)) as rx:
        endpoint = await register_endpoint(person, rx.url, types=["message"])
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "twice")).status_code == 201
        await rx.wait_for(lambda: len(rx.received) == 1)  # in flight: not yet recorded
        r = await person.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay", {"after": 0})
        assert r.json()["scheduled"] == 1
        # The in-flight attempt's outcome must not mark the replayed delivery as done.
        await rx.wait_for(lambda: len(rx.ok()) == 2)
        assert rx.ok()[1].id == rx.ok()[0].id


async def test_only_64_kib_of_a_response_is_read_and_redirects_are_not_followed(
    business: Actor, person: Actor
) -> None:
    async with WebhookReceiver(lambda _h, _b: Answer(200)) as elsewhere:
        answers = [
            Answer(200, body_bytes=50 * 1024 * 1024),  # 50 MiB "response"
            Answer(302, {"location": elsewhere.url}),
        ]
        async with WebhookReceiver(lambda _h, _b: answers.pop(0) if answers else Answer(200)) as r:
            await register_endpoint(person, r.url, types=["message"])
            cid = await connect(
                business, person, person_grants=[{"scope": "message", "topic": "news"}]
            )
            assert (await business.send(cid, "news", "a")).status_code == 201
            await r.wait_for(lambda: len(r.received) >= 1)
            assert (await business.send(cid, "news", "b")).status_code == 201
            await r.wait_for(lambda: len(r.ok()) >= 2)
            assert elsewhere.received == []  # the 302 was a failed attempt, then retried
            assert [x.status for x in r.received] == [200, 302, 200]


async def test_rotation_signs_with_both_secrets_for_a_day(business: Actor, person: Actor) -> None:
    async with WebhookReceiver() as receiver:
        endpoint = await register_endpoint(person, receiver.url, types=["message"])
        r = await person.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
        new_secret = r.json()["secret"]
        assert new_secret != endpoint["secret"]
        cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
        assert (await business.send(cid, "news", "x")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.ok()) == 1)
        got = receiver.ok()[0]
        Webhook(new_secret).verify(got.body, got.headers)
        Webhook(endpoint["secret"]).verify(got.body, got.headers)


async def test_webhook_endpoints_are_private_to_their_owner(
    actor: Any, business: Actor, person: Actor
) -> None:
    endpoint = await register_endpoint(person, "http://127.0.0.1:9/x")
    await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    base = f"/v1/webhook-endpoints/{endpoint['id']}"
    for who in (business, None):
        for method, path, body in [
            ("GET", base, None),
            ("DELETE", base, None),
            ("POST", base + "/rotate-secret", None),
            ("POST", base + "/disable", None),
            ("POST", base + "/enable", None),
            ("GET", base + "/deliveries", None),
            ("POST", base + "/replay", {}),
        ]:
            headers = who.headers if who else {}
            r = await person.http.request(
                method, person.base_url + path, headers=headers, json=body
            )
            assert r.status_code == (404 if who else 401), (method, path, r.text)
    listed = (await business.get("/v1/webhook-endpoints")).json()["data"]
    assert endpoint["id"] not in [e["id"] for e in listed]
    mine = (await person.get("/v1/webhook-endpoints")).json()["data"]
    assert [e["id"] for e in mine] == [endpoint["id"]] and mine[0]["secret"] is None


async def test_a_sever_that_deletes_takes_the_messages_webhook_deliveries_with_them(
    business: Actor, person: Actor
) -> None:
    """Erasing a connection's messages erases their deliveries (a delivered one's record
    and a pending one, which would otherwise carry the erased message out later); the
    endpoint's other deliveries stay."""
    from rapport_protocol import MessageType as M

    async with WebhookReceiver() as receiver:
        endpoint = await register_endpoint(person, receiver.url, types=["message"])
        grants = [{"scope": "message", "topic": "news"}]
        cid = await connect(business, person, person_grants=grants)
        kept = await connect(business, person, person_grants=grants)
        for on in (cid, cid, kept):
            assert (await business.send(on, "news", "secret")).status_code == 201
        await receiver.wait_for(lambda: len(receiver.ok()) >= 3)
        path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
        before = (await person.get(path)).json()["data"]
        assert len(before) == 3
        r = await person.act(
            "POST", f"/v1/connections/{cid}/sever", M.SEVER, {"data": "delete"}, cid
        )
        assert r.status_code == 200, r.text
        inbox = (await person.get("/v1/messages")).json()["data"]
        assert [m["cid"] for m in inbox] == [kept]
        after = (await person.get(path)).json()["data"]
        assert [d["event_id"] for d in after] == [inbox[0]["id"]]
