"""The SDK against a live server (SQLite or PostgreSQL leg): the whole story, with the
blocking Client on the business side and the AsyncClient on the person's side."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from rapport_client import AsyncClient, Client, errors, models, verify_log, webhooks
from rapport_protocol import SigningKey

from tests.helpers import FakeClock, free_port, live_server

DAY = 86400
ORDER_CAP = {"scope": "message", "topic": "order_updates", "rate": {"count": 2, "period": "P1D"}}


@pytest.fixture
def business(server_url: str, clock: FakeClock) -> Iterator[Client]:
    with Client(server_url, key=SigningKey.generate(), clock=clock) as client:
        client.parties.register("business", "Kettle & Bean")
        yield client


@pytest.fixture
async def person(server_url: str, clock: FakeClock) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server_url, key=SigningKey.generate(), clock=clock) as client:
        await client.parties.register("person", "Ann")
        yield client


async def connect(business: Client, person: AsyncClient) -> str:
    invitation = business.invitations.create(
        label="Kettle & Bean",
        offered=[
            {"scope": "message", "topic": "support"},
            {"scope": "favour", "topic": "callback"},
        ],
        requested=[ORDER_CAP, {"scope": "message", "topic": "marketing"}],
        expires_in=3600,
    )
    assert invitation.token and invitation.url
    seen = await person.invitations.lookup(invitation.token)
    assert seen.id == invitation.id and seen.token is None
    assert [g["topic"] for g in seen.requested] == ["order_updates", "marketing"]
    connection = await person.invitations.accept(
        seen,
        grants=[ORDER_CAP, {"scope": "message", "topic": "security"},
                {"scope": "favour", "topic": "review"}],
    )  # fmt: skip
    assert connection.status == "active" and connection.my_role == "acceptor"
    return connection.cid


async def test_story_with_sync_business_and_async_person(
    business: Client, person: AsyncClient, server_url: str, clock: FakeClock
) -> None:
    cid = await connect(business, person)

    # Sends within the grant; outside it, refused with the reason.
    assert not business.messages.send(cid, topic="order_updates", content="#1 shipped").held
    with pytest.raises(errors.GrantMissing) as refused:
        business.messages.send(cid, topic="marketing_blast", content="50% off")
    assert refused.value.status == 403 and refused.value.request_id

    # A restarted business process recovers its chain position from the log.
    with Client(server_url, key=business.key, clock=clock) as restarted:
        assert restarted.messages.send(cid, topic="order_updates", content="#2 shipped").id
    with pytest.raises(errors.RateExceeded) as capped:
        business.messages.send(cid, topic="order_updates", content="#3")  # stale head, then cap
    assert capped.value.retry_after is not None and 0 < capped.value.retry_after <= DAY

    # The person's inbox, paginated one by one, and acknowledged.
    inbox = [m async for m in person.messages.inbox(cid=cid, limit=1)]
    assert [m.content for m in inbox] == ["#1 shipped", "#2 shipped"]
    acked = await person.messages.ack(inbox[0].id)
    assert acked.acked_time is not None
    assert [m.id async for m in person.messages.inbox(unacked=True)] == [inbox[1].id]

    # Mute (hold) → held; unmute → released. Mute (reject) → Muted with until.
    await person.mutes.set(cid, mode="hold", exempt_topics=["security"])
    assert business.messages.send(cid, topic="security", content="new login").held is False
    clock.advance(DAY)
    held = business.messages.send(cid, topic="order_updates", content="#4 while muted")
    assert held.held
    assert "#4 while muted" not in [m.content async for m in person.messages.inbox(cid=cid)]
    await person.mutes.clear(cid)
    assert "#4 while muted" in [m.content async for m in person.messages.inbox(cid=cid)]
    until = clock() + 3600
    view = await person.mutes.set(cid, until=until, mode="reject")
    assert view.muted_by_me is not None and view.muted_by_me.until == until
    with pytest.raises(errors.Muted) as muted:
        business.messages.send(cid, topic="order_updates", content="#5")
    assert muted.value.until == until
    await person.mutes.clear(cid)

    # Favours: Ann asks a callback; the business does it; it asks a review back.
    callback = await person.favours.request(cid, kind="callback", description="Call me")
    business.favours.accept(cid, callback.id)
    business.favours.fulfil(cid, callback.id, note="called")
    assert (await person.favours.acknowledge(cid, callback.id)).status == "acknowledged"
    review = business.favours.request(
        cid, kind="review", description="Review?", return_of=callback.id
    )
    await person.favours.accept(cid, review.id)
    await person.favours.fulfil(cid, review.id)
    ledger = await person.favours.ledger(cid)
    assert (ledger.me.given, ledger.me.received, ledger.me.returned) == (1, 1, 1)
    assert business.favours.ledger(cid).them.given == 1
    with pytest.raises(errors.FavourInvalidTransition):
        await person.favours.fulfil(cid, review.id)
    assert [f.id for f in business.favours.list(cid, status="all")] == [callback.id, review.id]

    # Amend is compare-and-swap; revoke ends delivery under the grant.
    grants = (await person.grants.list(cid)).granted_by_me
    order = next(g for g in grants if g.topic == "order_updates")
    amended = await person.grants.amend(
        cid, order.id, {"scope": "message", "topic": "order_updates"}
    )
    assert amended.replaces == order.id
    with pytest.raises(errors.GrantConflict):
        await person.grants.amend(cid, order.id, ORDER_CAP)
    receipt = await person.grants.receipt(cid, order.id, format="dpv")
    assert receipt["dpv:hasConsentStatus"]["@id"] == "dpv:ConsentInvalidated"
    assert business.messages.send(cid, topic="order_updates", content="#6").id
    await person.grants.revoke(cid, amended.id)
    with pytest.raises(errors.GrantMissing):
        business.messages.send(cid, topic="order_updates", content="#7")
    issued = business.grants.issue(cid, {"scope": "message", "topic": "invoices"})
    assert issued.direction == "granted_by_me"
    assert (await person.messages.send(cid, topic="support", content="help")).id

    # Sever with block_reinvite: everything after is refused.
    severed = await person.connections.sever(cid, data="delete", block_reinvite=True)
    assert severed.status == "severed"
    with pytest.raises(errors.ConnectionSevered):
        business.messages.send(cid, topic="security", content="still there?")
    with pytest.raises(errors.ReinviteBlocked):
        business.invitations.create(label="again", to=[person.did], requested=[ORDER_CAP])

    # Both logs verify offline, identically; the erased content is gone.
    business_log = business.connections.log(cid).to_list()
    person_log = await person.connections.log(cid).to_list()
    assert [e.object["id"] for e in business_log] == [e.object["id"] for e in person_log]
    state = verify_log(business_log).state
    assert state.status == "severed" and state.severance and state.severance.block_reinvite
    assert all("payload" not in e.object for e in person_log)
    assert (await person.connections.verify(cid)).count == len(person_log)

    # Listing and export.
    mine = [c.cid for c in business.connections.list(status="severed")]
    assert cid in mine
    export = await person.account.export()
    assert export.party.did == person.did
    assert any(c["connection"]["cid"] == cid for c in export.connections)


async def test_decline_and_multi_use_invitations(business: Client, person: AsyncClient) -> None:
    multi = business.invitations.create(label="newsletter", multi_use=True, max_uses=5)
    single = business.invitations.create(label="one", to=[person.did])
    assert multi.multi_use and multi.max_uses == 5
    declined = await person.invitations.decline(single.id, reason="no thanks")
    assert declined.status == "declined"
    statuses = {i.id: i.status for i in business.invitations.list()}
    assert statuses[multi.id] == "open"


async def test_events_page_and_stream_resume(business: Client, person: AsyncClient) -> None:
    cid = await connect(business, person)
    for n in range(3):
        business.messages.send(cid, topic="security", content=f"alert {n}")
    events = [e async for e in person.events.list(limit=2)]
    assert [e.type for e in events].count("message") == 3
    assert [e.id for e in events] == sorted(e.id for e in events)
    messages = [e for e in events if e.type == "message"]
    # Stream from the first message: the rest arrive in order, with their payloads.
    got = []

    async def read(after: int, count: int) -> list[int]:
        out = []
        async for event in person.events.stream(after=after):
            out.append(event.id)
            if event.type == "message":
                assert event.object and event.object["payload"].startswith("alert")
            if len(out) == count:
                break
        return out

    got = await asyncio.wait_for(read(messages[0].id, 2), 20)
    assert got == [messages[1].id, messages[2].id]
    # The blocking client streams the same numbers.
    sync_ids = []
    for event in business.events.stream(after=0):
        sync_ids.append(event.id)
        if len(sync_ids) == 1:
            break
    assert sync_ids == [next(e.id for e in business.events.list())]


async def test_refusals_of_a_client_without_a_key_or_token(server_url: str) -> None:
    with Client(server_url) as anonymous:
        with pytest.raises(errors.RapportError) as no_key:
            anonymous.parties.me()
        assert no_key.value.code == "no_key"
        with pytest.raises(errors.NotFound):
            anonymous.invitations.lookup("nonexistent-token-123")
    stranger = Client(server_url, key=SigningKey.generate())
    with stranger, pytest.raises(errors.InvalidGrant):
        stranger.parties.me()  # not registered: the token request is refused


async def test_key_rotation_keeps_the_party_and_its_chains(
    business: Client, person: AsyncClient
) -> None:
    cid = await connect(business, person)
    old_did = business.did
    new_key = SigningKey.generate()
    party = business.parties.rotate_key(new_key)
    assert party.did == new_key.did != old_did and business.did == new_key.did
    assert business.messages.send(cid, topic="security", content="after rotation").id


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((body, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


async def test_webhook_endpoint_lifecycle_and_verified_delivery(
    database_url: str, clock: FakeClock
) -> None:
    receiver = HTTPServer(("127.0.0.1", free_port()), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    try:
        async with (
            live_server(database_url, clock, webhook_dev_mode=True) as base,
            AsyncClient(base, key=SigningKey.generate(), clock=clock) as biz,
        ):
            await biz.parties.register("business", "Hooks Ltd")
            endpoint = await biz.webhook_endpoints.create(
                url=url, types=["connection", "message"], description="orders"
            )
            assert endpoint.secret and endpoint.secret.startswith("whsec_")
            listed = [e.id async for e in biz.webhook_endpoints.list()]
            assert listed == [endpoint.id]
            assert (await biz.webhook_endpoints.get(endpoint.id)).secret is None
            assert not (await biz.webhook_endpoints.disable(endpoint.id)).enabled
            assert (await biz.webhook_endpoints.enable(endpoint.id)).enabled
            rotated = await biz.webhook_endpoints.rotate_secret(endpoint.id)
            assert rotated.secret and rotated.secret != endpoint.secret
            server_keys = await biz.webhook_endpoints.keys()

            with Client(base, key=SigningKey.generate(), clock=clock) as ann:
                ann.parties.register("person", "Ann")
                invitation = await biz.invitations.create(label="hi")
                ann.invitations.accept(invitation.id)
            for _ in range(100):
                if _Receiver.received:
                    break
                await asyncio.sleep(0.1)
            assert _Receiver.received, "no webhook delivery arrived"
            body, headers = _Receiver.received[0]
            now = int(headers["webhook-timestamp"])
            payload = webhooks.verify(body, headers, rotated.secret, now=now)
            assert payload["type"] == "connection" and payload["data"]["id"] >= 1
            assert webhooks.verify(body, headers, server_keys[0].public_key, now=now)
            with pytest.raises(webhooks.WebhookVerificationError):
                webhooks.verify(body + b" ", headers, rotated.secret, now=now)
            deliveries = [d async for d in biz.webhook_endpoints.deliveries(endpoint.id)]
            assert deliveries and deliveries[0].webhook_id == headers["webhook-id"]
            replay = await biz.webhook_endpoints.replay(endpoint.id, after=0)
            assert replay.scheduled >= 1
            await biz.webhook_endpoints.delete(endpoint.id)
            with pytest.raises(errors.NotFound):
                await biz.webhook_endpoints.get(endpoint.id)
    finally:
        receiver.shutdown()


async def test_broadcast_reaches_only_connections_that_granted_the_topic(
    business: Client, server_url: str, clock: FakeClock
) -> None:
    people = []
    for n, grants in enumerate(([ORDER_CAP], [{"scope": "message", "topic": "security"}])):
        person = AsyncClient(server_url, key=SigningKey.generate(), clock=clock)
        await person.parties.register("person", f"P{n}")
        invitation = business.invitations.create(label="b", requested=[ORDER_CAP])
        await person.invitations.accept(invitation.id, grants=grants)
        people.append(person)
    result = business.messages.broadcast(topic="order_updates", content="Sale on shipping")
    # Selection is set-based: only connections whose grants permit the topic are candidates.
    assert (result.candidates, result.delivered, result.held) == (1, 1, 0)
    got = [[m.content async for m in p.messages.inbox()] for p in people]
    assert got == [["Sale on shipping"], []]
    for person in people:
        await person.aclose()


async def test_account_delete_severs_every_connection_with_signed_objects(
    business: Client, person: AsyncClient
) -> None:
    cid = await connect(business, person)
    business.messages.send(cid, topic="order_updates", content="before")
    deleted = await person.account.delete(data="delete")
    assert deleted.deleted and deleted.severed == 1
    with pytest.raises(errors.ConnectionSevered):
        business.messages.send(cid, topic="order_updates", content="after")
    log = business.connections.log(cid).to_list()
    state = verify_log(log).state
    assert state.status == "severed" and state.severance and state.severance.data == "delete"
    with pytest.raises(errors.AuthenticationError):
        await person.parties.me()  # the key is retired with the party


class LoseFirstAnswer(httpx.HTTPTransport):
    """Forwards every request; the first answer to a matching POST is 'lost' on the way back."""

    def __init__(self, path_part: str) -> None:
        super().__init__()
        self.path_part = path_part
        self.lost = 0
        self.seen: list[httpx.Request] = []
        self.replayed: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and self.path_part in request.url.path:
            self.seen.append(request)
            response.read()
            self.replayed.append(response.headers.get("idempotent-replayed"))
            if self.lost == 0:
                self.lost += 1
                raise httpx.ReadError("connection reset after the server answered")
        return response


async def test_a_lost_answer_is_retried_with_the_same_key_and_applied_once(
    server_url: str, clock: FakeClock, person: AsyncClient
) -> None:
    transport = LoseFirstAnswer("/messages")
    with Client(server_url, key=SigningKey.generate(), clock=clock, transport=transport,
                sleep=lambda s: None) as shop:  # fmt: skip
        shop.parties.register("business", "Lossy Ltd")
        invitation = shop.invitations.create(label="x")
        cid = (await person.invitations.accept(invitation.id, grants=[ORDER_CAP])).cid
        result = shop.messages.send(cid, topic="order_updates", content="exactly once")
        assert len(transport.seen) == 2 and transport.replayed == [None, "true"]
        keys = {r.headers["idempotency-key"] for r in transport.seen}
        assert len(keys) == 1 and transport.seen[0].content == transport.seen[1].content
        contents = [m.content async for m in person.messages.inbox(cid=cid)]
        assert contents == ["exactly once"]
        # The chain moved on once: the next send continues it.
        assert (
            shop.messages.send(cid, topic="order_updates", content="next").server_seq
            > result.server_seq
        )


async def test_quiet_hours_refuse_with_when_to_retry(
    business: Client, person: AsyncClient, clock: FakeClock
) -> None:
    hour = (clock() % 86400) // 3600
    window = {"start": f"{hour:02d}:00", "end": f"{(hour + 2) % 24:02d}:00", "tz": "UTC"}
    invitation = business.invitations.create(label="q")
    grant = {"scope": "message", "topic": "news", "quiet_hours": window}
    cid = (await person.invitations.accept(invitation.id, grants=[grant])).cid
    with pytest.raises(errors.QuietHours) as quiet:
        business.messages.send(cid, topic="news", content="at night")
    assert quiet.value.status == 429
    assert quiet.value.retry_after is not None and 0 < quiet.value.retry_after <= 2 * 3600


class _CutAfterFirstEvent(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            yield chunk
            if b"id:" in chunk:
                raise httpx.ReadError("connection dropped mid-stream")

    def close(self) -> None:
        self.inner.close()


class DropStreams(httpx.HTTPTransport):
    """Drops the first ``cuts`` event streams right after their first event."""

    def __init__(self, cuts: int) -> None:
        super().__init__()
        self.cuts = cuts
        self.last_event_ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if (
            request.url.path == "/v1/events"
            and request.headers.get("accept") == "text/event-stream"
        ):
            self.last_event_ids.append(request.headers.get("last-event-id"))
            if self.cuts > 0:
                self.cuts -= 1
                assert isinstance(response.stream, httpx.SyncByteStream)
                return httpx.Response(
                    response.status_code,
                    headers=response.headers,
                    stream=_CutAfterFirstEvent(response.stream),
                    extensions=response.extensions,
                )
        return response


async def test_event_stream_resumes_after_dropped_connections_without_gaps_or_repeats(
    business: Client, server_url: str, clock: FakeClock
) -> None:
    transport = DropStreams(cuts=2)
    with Client(server_url, key=SigningKey.generate(), clock=clock, transport=transport,
                sleep=lambda s: None) as ann:  # fmt: skip
        ann.parties.register("person", "Ann")
        invitation = business.invitations.create(label="s")
        cid = ann.invitations.accept(invitation.id, grants=[{"scope": "message", "topic": "t"}]).cid
        for n in range(4):
            business.messages.send(cid, topic="t", content=f"m{n}")
        expected = [e.id for e in ann.events.list()]
        got = []
        for event in ann.events.stream(after=0):
            got.append(event.id)
            if len(got) == len(expected):
                break
        assert got == expected and len(expected) >= 4
        assert transport.last_event_ids[0] == "0" and len(transport.last_event_ids) == 3
        # Each reconnection resumed right after an event it had yielded (a read may carry
        # more than one event before the drop).
        resumed = [int(x) for x in transport.last_event_ids[1:] if x is not None]
        assert len(resumed) == 2 and resumed == sorted(set(resumed)) and set(resumed) <= set(got)


async def test_batch_send_decides_each_message_and_keeps_the_chains(
    business: Client, person: AsyncClient, server_url: str, clock: FakeClock
) -> None:
    cid = await connect(business, person)
    other = AsyncClient(server_url, key=SigningKey.generate(), clock=clock)
    await other.parties.register("person", "Bob")
    invitation = business.invitations.create(label="b", requested=[ORDER_CAP])
    cid2 = (await other.invitations.accept(invitation.id, grants=[ORDER_CAP])).cid

    def out(c: str, content: str, topic: str = "order_updates") -> models.OutgoingMessage:
        return models.OutgoingMessage(cid=c, topic=topic, content=content)

    items = business.messages.send_batch(
        [
            out(cid, "#1"),
            out(cid2, "bob #1"),
            out(cid, "#2"),
            out(cid, "#3"),
            out(cid, "x", "security"),
        ]
    )
    assert [i.status for i in items] == [201, 201, 201, 429, 409]
    assert items[0].message and items[2].message
    assert items[2].message.server_seq > items[0].message.server_seq
    assert isinstance(items[3].error(), errors.RateExceeded)
    assert isinstance(items[4].error(), errors.ChainBroken)  # it continued the refused #3
    assert items[0].error() is None and not items[0].replayed
    assert [m.content async for m in person.messages.inbox(cid=cid)] == ["#1", "#2"]
    assert [m.content async for m in other.messages.inbox(cid=cid2)] == ["bob #1"]

    # The heads moved past what was accepted only: single sends continue both chains.
    clock.advance(DAY)
    assert business.messages.send(cid, topic="order_updates", content="#3").id
    assert business.messages.send(cid2, topic="order_updates", content="bob #2").id
    # The async client's flavour, from the person's side (the business offered support).
    (back,) = await person.messages.send_batch([out(cid, "thanks", "support")])
    assert back.ok and back.message and back.message.cid == cid
    with pytest.raises(errors.ValidationError):  # the request as a whole: 1 to 100 objects
        await person.messages.send_batch([])
    await other.aclose()


async def test_a_lost_batch_answer_is_retried_and_each_message_applied_once(
    server_url: str, clock: FakeClock, person: AsyncClient
) -> None:
    transport = LoseFirstAnswer("/messages/batch")
    with Client(server_url, key=SigningKey.generate(), clock=clock, transport=transport,
                sleep=lambda s: None) as shop:  # fmt: skip
        shop.parties.register("business", "Lossy Ltd")
        invitation = shop.invitations.create(label="x")
        cid = (await person.invitations.accept(invitation.id, grants=[ORDER_CAP])).cid
        batch = [models.OutgoingMessage(cid=cid, topic="order_updates", content=c) for c in "ab"]
        items = shop.messages.send_batch(batch)
        assert len(transport.seen) == 2
        assert transport.seen[0].content == transport.seen[1].content
        assert [(i.status, i.replayed) for i in items] == [(201, True), (201, True)]
        assert [m.content async for m in person.messages.inbox(cid=cid)] == ["a", "b"]
        clock.advance(DAY)  # past the cap of 2 a day
        assert shop.messages.send(cid, topic="order_updates", content="c").id  # chain intact
