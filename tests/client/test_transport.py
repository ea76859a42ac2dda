"""SDK units over httpx.MockTransport: retries, idempotency keys, Retry-After, tokens,
pagination, error mapping and the event stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from rapport_client import AsyncClient, Client, RetryPolicy, errors
from rapport_client._sse import SSEDecoder
from rapport_protocol import SigningKey
from rapport_protocol.errors import ERRORS_BY_CODE

BASE = "http://rapport.test"
CID = "0" * 32
PARTY = {
    "id": "p1",
    "kind": "business",
    "did": "did:key:z6Mkx",
    "display_name": "Roastery",
    "created_time": 1,
}

Handler = Callable[[httpx.Request], httpx.Response]


def token_response(n: int = 1) -> httpx.Response:
    return httpx.Response(200, json={"access_token": f"tok{n}", "expires_in": 900})


def problem(
    status: int, code: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"type": f"https://rapport.dev/problems/{code}", "title": code, "status": status, "code": code,
            "request_id": "req_1", **extra}  # fmt: skip
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **(headers or {})}
    )


class Recorder:
    """A scripted server: answers the token route itself, the rest from a queue."""

    def __init__(self, answers: list[httpx.Response | Exception]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth/token":
            self.tokens += 1
            return token_response(self.tokens)
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(recorder: Recorder, sleeps: list[float], **kw: Any) -> Client:
    return Client(
        BASE,
        key=SigningKey.generate(),
        transport=httpx.MockTransport(recorder),
        sleep=sleeps.append,
        seed=1,
        clock=lambda: 1_700_000_000,
        **kw,
    )


def send_result() -> httpx.Response:
    return httpx.Response(
        201, json={"id": "a" * 64, "cid": CID, "server_seq": 2, "held": False, "release_time": None}
    )


def chain_known(client: Client | AsyncClient) -> None:
    from rapport_client._signing import ChainHead

    client._ops.signer.chains[CID] = ChainHead(1, "b" * 64)


def test_retries_reuse_one_idempotency_key_and_the_same_signed_object() -> None:
    rec = Recorder([problem(503, "store_unavailable"), httpx.ConnectError("down"), send_result()])
    sleeps: list[float] = []
    client = make_client(rec, sleeps)
    chain_known(client)
    result = client.messages.send(CID, topic="order_updates", content="shipped")
    assert result.server_seq == 2
    keys = {r.headers["Idempotency-Key"] for r in rec.requests}
    bodies = {r.content for r in rec.requests}
    assert len(rec.requests) == 3 and len(keys) == 1 and len(bodies) == 1
    assert len(sleeps) == 2
    # The chain moved on exactly once, to the object that was sent.
    sent = json.loads(rec.requests[0].content)["object"]
    assert client._ops.signer.chains[CID].seq == sent["seq"] == 2


def test_each_logical_call_gets_its_own_idempotency_key() -> None:
    rec = Recorder([send_result(), send_result()])
    client = make_client(rec, [])
    chain_known(client)
    client.messages.send(CID, topic="t", content="1")
    client.messages.send(CID, topic="t", content="2")
    assert rec.requests[0].headers["Idempotency-Key"] != rec.requests[1].headers["Idempotency-Key"]


def test_retry_after_is_honoured() -> None:
    rec = Recorder([problem(429, "too_many_requests", {"Retry-After": "3"}), send_result()])
    sleeps: list[float] = []
    client = make_client(rec, sleeps)
    chain_known(client)
    client.messages.send(CID, topic="t", content="x")
    assert sleeps == [3.0]


def test_a_long_retry_after_is_not_waited_for_but_reported() -> None:
    rec = Recorder([problem(429, "rate_exceeded", {"Retry-After": "86400"}, retry_after=86400)])
    sleeps: list[float] = []
    client = make_client(rec, sleeps)
    chain_known(client)
    with pytest.raises(errors.RateExceeded) as info:
        client.messages.send(CID, topic="t", content="x")
    assert info.value.retry_after == 86400 and info.value.request_id == "req_1"
    assert sleeps == [] and len(rec.requests) == 1
    # A refusal leaves the chain where it was.
    assert client._ops.signer.chains[CID].seq == 1


def test_retries_stop_after_max_retries_with_growing_capped_backoff() -> None:
    rec = Recorder([problem(503, "store_unavailable")] * 5)
    sleeps: list[float] = []
    client = make_client(rec, sleeps, retry=RetryPolicy(max_retries=4, base=1, max_backoff=3))
    with pytest.raises(errors.ServiceUnavailable):
        client.parties.me()
    assert len(rec.requests) == 5 and len(sleeps) == 4
    assert all(0 <= s <= 3 for s in sleeps)


def test_unreachable_server_raises_connection_error_and_forgets_the_chain() -> None:
    rec = Recorder([httpx.ConnectError("down")] * 4)
    client = make_client(rec, [])
    chain_known(client)
    with pytest.raises(errors.APIConnectionError):
        client.messages.send(CID, topic="t", content="x")
    assert CID not in client._ops.signer.chains  # unknown outcome: re-read from the log


def test_client_errors_are_not_retried() -> None:
    rec = Recorder([problem(403, "grant_missing")])
    sleeps: list[float] = []
    client = make_client(rec, sleeps)
    chain_known(client)
    with pytest.raises(errors.GrantMissing):
        client.messages.send(CID, topic="marketing", content="x")
    assert sleeps == [] and len(rec.requests) == 1


def test_expired_token_is_refreshed_once_and_the_call_repeated() -> None:
    rec = Recorder([problem(401, "invalid_token"), httpx.Response(200, json=PARTY)])
    client = make_client(rec, [])
    assert client.parties.me().display_name == "Roastery"
    assert [r.headers["Authorization"] for r in rec.requests] == ["Bearer tok1", "Bearer tok2"]


def test_token_is_reused_until_near_expiry() -> None:
    now = [1_700_000_000]
    rec = Recorder([httpx.Response(200, json=PARTY)] * 3)
    client = Client(BASE, key=SigningKey.generate(), transport=httpx.MockTransport(rec),
                    clock=lambda: now[0])  # fmt: skip
    client.parties.me()
    client.parties.me()
    assert rec.tokens == 1
    now[0] += 900 - 10  # inside the refresh margin
    client.parties.me()
    assert rec.tokens == 2


def test_token_request_carries_a_fresh_assertion_per_attempt() -> None:
    assertions: list[str] = []
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth/token":
            assertions.append(dict(httpx.QueryParams(request.content.decode()))["assertion"])
            calls["n"] += 1
            return problem(503, "store_unavailable") if calls["n"] == 1 else token_response()
        return httpx.Response(200, json=PARTY)

    client = Client(BASE, key=SigningKey.generate(), transport=httpx.MockTransport(handler),
                    sleep=lambda s: None)  # fmt: skip
    client.parties.me()
    assert len(assertions) == 2 and assertions[0] != assertions[1]


def test_chain_broken_is_healed_from_the_log_once() -> None:
    key = SigningKey.generate()
    from rapport_protocol import MessageType, sign

    mine = sign(key, MessageType.UNMUTE, {}, created_time=1_700_000_000, cid=CID, seq=1)
    log_page = {
        "data": [{"server_seq": 1, "received_time": 1_700_000_000, "object": mine.to_json()}],
        "next_cursor": None,
        "has_more": False,
    }
    rec = Recorder(
        [problem(409, "chain_broken"), httpx.Response(200, json=log_page), send_result()]
    )
    client = Client(BASE, key=key, transport=httpx.MockTransport(rec), clock=lambda: 1_700_000_000)
    chain_known(client)  # a stale head (another process moved on)
    client.messages.send(CID, topic="t", content="x")
    retried = json.loads(rec.requests[2].content)["object"]
    assert retried["seq"] == 2 and retried["prev"] == mine.id
    assert rec.requests[0].headers["Idempotency-Key"] != rec.requests[2].headers["Idempotency-Key"]


def _page(items: list[int], cursor: str | None) -> httpx.Response:
    data = [
        {"id": i, "cid": CID, "object_id": "a" * 64, "sender": "did:key:z", "topic": "t",
         "content_type": "text/plain", "content": str(i), "received_time": 1, "object": {}}
        for i in items
    ]  # fmt: skip
    return httpx.Response(200, json={"data": data, "next_cursor": cursor, "has_more": bool(cursor)})


def test_list_calls_paginate_through_every_page() -> None:
    rec = Recorder([_page([1, 2], "c1"), _page([3, 4], "c2"), _page([5], None)])
    client = make_client(rec, [])
    ids = [m.id for m in client.messages.inbox(unacked=True, limit=2)]
    assert ids == [1, 2, 3, 4, 5]
    cursors = [r.url.params.get("cursor") for r in rec.requests]
    assert cursors == [None, "c1", "c2"]
    assert all(
        r.url.params["unacked"] == "true" and r.url.params["limit"] == "2" for r in rec.requests
    )


async def test_async_list_calls_paginate_and_retry_alike() -> None:
    rec = Recorder([_page([1], "c1"), problem(502, "bad_gateway"), _page([2], None)])
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    client = AsyncClient(BASE, key=SigningKey.generate(), transport=httpx.MockTransport(rec),
                         sleep=sleep, seed=3)  # fmt: skip
    assert [m.id async for m in client.messages.inbox()] == [1, 2]
    assert len(slept) == 1
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (403, "grant_missing", errors.GrantMissing),
        (403, "muted", errors.Muted),
        (403, "reinvite_blocked", errors.ReinviteBlocked),
        (410, "connection_severed", errors.ConnectionSevered),
        (429, "quiet_hours", errors.QuietHours),
        (429, "rate_exceeded", errors.RateExceeded),
        (409, "grant_conflict", errors.GrantConflict),
        (409, "chain_broken", errors.ChainBroken),
        (422, "bad_signature", errors.ValidationError),
        (422, "idempotency_key_reused", errors.IdempotencyKeyReused),
        (404, "not_found", errors.NotFound),
        (401, "unauthenticated", errors.AuthenticationError),
        (400, "json_duplicate_key", errors.BadRequest),
        (400, "invalid_grant", errors.InvalidGrant),
        (500, "internal_error", errors.ServerError),
        (418, "teapot", errors.RapportError),
    ],
)
def test_problem_codes_map_to_typed_errors(status: int, code: str, cls: type) -> None:
    exc = errors.error_for(status, {"code": code, "detail": "why", "request_id": "req_9"}, {})
    assert type(exc) is cls
    assert (exc.status, exc.code, exc.detail, exc.request_id) == (status, code, "why", "req_9")


def test_muted_carries_until() -> None:
    exc = errors.error_for(403, {"code": "muted", "muted_until": 1234}, {})
    assert isinstance(exc, errors.Muted) and exc.until == 1234


def test_every_protocol_code_maps_to_the_class_of_its_http_status() -> None:
    from rapport_server.protocol_errors import status_for

    status_classes = {400: errors.BadRequest, 403: errors.PermissionDenied, 404: errors.NotFound,
                      409: errors.Conflict, 410: errors.Gone, 422: errors.ValidationError,
                      429: errors.TooManyRequests}  # fmt: skip
    for code, protocol_cls in ERRORS_BY_CODE.items():
        status = status_for(protocol_cls("x"))
        exc = errors.error_for(status, {"code": code}, {})
        assert isinstance(exc, status_classes[status]), (code, status, type(exc))
        assert exc.code == code
        if code in errors.ERRORS_BY_CODE:
            assert type(exc) is errors.ERRORS_BY_CODE[code]


# --- Server-Sent Events ---------------------------------------------------------------


def test_sse_decoder_handles_comments_multiline_data_and_ids() -> None:
    decoder = SSEDecoder()
    lines = [": heartbeat", "", "id: 7", "event: message", "data: {\"a\":", "data: 1}", "",
             "retry: 1500", "data:x", ""]  # fmt: skip
    out = [e for e in map(decoder.feed, lines) if e is not None]
    assert [(e.id, e.event, e.data) for e in out] == [
        ("7", "message", '{"a":\n1}'),
        ("7", "message", "x"),
    ]
    assert decoder.retry == 1500


def _event(n: int) -> str:
    body = {"id": n, "type": "message", "cid": CID, "created_time": 10 + n, "server_seq": n,
            "object": None}  # fmt: skip
    return f"id: {n}\nevent: message\ndata: {json.dumps(body)}\n\n"


class StreamServer:
    """Serves events in connections: each entry is the frames of one connection."""

    def __init__(self, connections: list[str | int]) -> None:
        self.connections = connections
        self.last_ids: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth/token":
            return token_response()
        assert request.headers["accept"] == "text/event-stream"
        self.last_ids.append(request.headers.get("last-event-id"))
        frames = self.connections.pop(0)
        if isinstance(frames, int):
            return problem(frames, "store_unavailable")
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=frames.encode()
        )


def test_event_stream_resumes_after_the_last_event_it_yielded() -> None:
    server = StreamServer(
        [": hi\n\n" + _event(1) + _event(2), 503, _event(3) + ": ping\n\n" + _event(4)]
    )
    sleeps: list[float] = []
    client = Client(BASE, key=SigningKey.generate(), transport=httpx.MockTransport(server),
                    sleep=sleeps.append)  # fmt: skip
    got = []
    for event in client.events.stream(after=0):
        got.append(event.id)
        if len(got) == 4:
            break
    assert got == [1, 2, 3, 4]
    assert server.last_ids == ["0", "2", "2"]
    assert len(sleeps) == 2


async def test_async_event_stream_resumes_and_gives_up_after_max_reconnects() -> None:
    server = StreamServer([_event(5), _event(6), 503, 503])

    async def sleep(s: float) -> None:
        return None

    client = AsyncClient(BASE, key=SigningKey.generate(), transport=httpx.MockTransport(server),
                         sleep=sleep)  # fmt: skip
    got: list[int] = []

    async def consume() -> None:
        async for event in client.events.stream(max_reconnects=1):
            got.append(event.id)

    with pytest.raises(errors.APIConnectionError):
        await consume()
    assert got == [5, 6]
    assert server.last_ids == [None, "5", "6"]
    await client.aclose()


def test_event_stream_raises_client_errors_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth/token":
            return token_response()
        return problem(404, "not_found")

    client = Client(BASE, key=SigningKey.generate(), transport=httpx.MockTransport(handler))
    with pytest.raises(errors.NotFound):
        next(iter(client.events.stream()))
