"""GET /v1/events: the durable per-party stream as SSE (live, resumable) and JSON pages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.helpers import Actor, FakeClock, connect, live_server
from tests.sse import Frame, frames

GRANTS = [{"scope": "message", "topic": "news"}]


async def collect(actor: Actor, n: int, *, last_event_id: str | None = None) -> list[Frame]:
    headers = {**actor.headers, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    got: list[Frame] = []
    async with actor.http.stream(
        "GET", actor.base_url + "/v1/events", headers=headers, timeout=10
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for frame in frames(r):
            if frame.id is not None:
                got.append(frame)
            if len(got) >= n:
                break
    return got


async def test_stream_delivers_live_events_in_order_and_resumes_from_last_event_id(
    business: Actor, person: Actor
) -> None:
    cid = await connect(business, person, person_grants=GRANTS)
    reader = asyncio.create_task(collect(person, 3))
    await asyncio.sleep(0.3)  # the stream is open and idle before the sends happen
    sent_at = time.monotonic()
    for i in range(3):
        assert (await business.send(cid, "news", f"m{i}")).status_code == 201
    live = await asyncio.wait_for(reader, 10)
    assert time.monotonic() - sent_at < 2
    assert [f.event for f in live] == ["message"] * 3
    assert [f.json["object"]["payload"] for f in live] == ["m0", "m1", "m2"]
    ids = [int(f.id or 0) for f in live]
    assert ids == list(range(ids[0], ids[0] + 3))
    assert all(f.json["id"] == int(f.id or 0) and f.json["cid"] == cid for f in live)

    for i in range(3, 5):
        assert (await business.send(cid, "news", f"m{i}")).status_code == 201
    resumed = await collect(person, 3, last_event_id=live[1].id)
    assert [f.json["object"]["payload"] for f in resumed] == ["m2", "m3", "m4"]

    # The inbox and the JSON form share the numbering.
    inbox = (await person.get("/v1/messages")).json()["data"]
    assert [m["id"] for m in inbox[-5:]] == [*ids, ids[-1] + 1, ids[-1] + 2]
    page = (await person.get("/v1/events", params={"after": ids[0]})).json()
    assert [e["id"] for e in page["data"]] == [ids[0] + k for k in range(1, 5)]
    assert page["has_more"] is False


async def test_every_kind_of_change_reaches_the_other_side(business: Actor, person: Actor) -> None:
    cid = await connect(business, person, person_grants=GRANTS)
    before = (await business.get("/v1/events")).json()["data"]
    assert [e["type"] for e in before if e["cid"] == cid] == ["connection"]
    from rapport_protocol import MessageType as M

    r = await person.act(
        "POST",
        f"/v1/connections/{cid}/grants",
        M.GRANT_ISSUE,
        {"grant": {"scope": "message", "topic": "offers"}},
        cid,
    )
    assert r.status_code == 201, r.text
    r = await person.act("PUT", f"/v1/connections/{cid}/mute", M.MUTE, {"mode": "hold"}, cid)
    assert r.status_code == 200, r.text
    r = await person.act("POST", f"/v1/connections/{cid}/sever", M.SEVER, {"data": "delete"}, cid)
    assert r.status_code == 200, r.text
    after = (await business.get("/v1/events")).json()["data"]
    kinds = [e["type"] for e in after if e["cid"] == cid]
    assert kinds == ["connection", "grant", "mute", "sever"]
    assert all(e["object"]["from"] == person.did for e in after if e["cid"] == cid)


async def test_sever_with_delete_empties_both_inboxes_of_that_connection_only(
    business: Actor, person: Actor, actor: Any
) -> None:
    from rapport_protocol import MessageType as M

    both = [*GRANTS, {"scope": "message", "topic": "*"}]
    cid = await connect(business, person, person_grants=both, business_grants=both)
    other = actor()
    await other.register("person", "Bo")
    kept = await connect(business, other, person_grants=both, business_grants=both)
    for sender, on in ((business, cid), (person, cid), (business, kept), (other, kept)):
        r = await sender.send(on, "news", "secret")
        assert r.status_code == 201, r.text
    r = await person.act("POST", f"/v1/connections/{cid}/sever", M.SEVER, {"data": "delete"}, cid)
    assert r.status_code == 200, r.text

    def cids(actor: Actor, page: dict[str, Any]) -> list[str]:
        return [m["cid"] for m in page["data"]]

    assert cids(person, (await person.get("/v1/messages")).json()) == []
    assert cids(business, (await business.get("/v1/messages")).json()) == [kept]
    assert cids(other, (await other.get("/v1/messages")).json()) == [kept]
    stream = (await business.get("/v1/events")).json()["data"]
    assert [e["type"] for e in stream if e["cid"] == cid] == ["connection", "sever"]
    assert [e["type"] for e in stream if e["cid"] == kept] == ["connection", "message"]


async def test_heartbeats_and_bad_last_event_id(database_url: str, clock: FakeClock) -> None:
    async with (
        live_server(database_url, clock, stream_heartbeat=0.2, run_worker=False) as base,
        httpx.AsyncClient(timeout=10) as http,
    ):
        me = Actor(http=http, clock=clock, base_url=base)
        await me.register("person", "hb")
        headers: dict[str, Any] = {**me.headers, "Accept": "text/event-stream"}
        comments = 0
        started = time.monotonic()
        async with http.stream("GET", base + "/v1/events", headers=headers) as r:
            async for frame in frames(r):
                if frame.comment and frame.comment.startswith("ping"):
                    comments += 1
                if comments >= 2:
                    break
        assert time.monotonic() - started < 3
        bad = {**headers, "Last-Event-ID": "12; DROP"}
        r2 = await http.get(base + "/v1/events", headers=bad)
        assert r2.status_code == 400 and r2.json()["code"] == "invalid_cursor"
        anon = await http.get(base + "/v1/events", headers={"Accept": "text/event-stream"})
        assert anon.status_code == 401


async def test_a_stalled_consumer_holds_back_the_stream_instead_of_server_memory(
    business: Actor, person: Actor, database_url: str, server_url: str
) -> None:
    """2,000 events of 32 KiB (64 MiB) for a reader that stops reading: the server writes
    only what the socket buffers take, then waits; when the reader resumes, every event
    arrives in order."""
    import socket

    from rapport_server.metrics import STREAM_FRAMES
    from rapport_server.tables import Event, LogEntry, Party
    from sqlalchemy import insert, update
    from sqlalchemy.ext.asyncio import create_async_engine

    cid = await connect(business, person, person_grants=GRANTS)
    total, size = 2000, 32 * 1024
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        top = (
            await conn.execute(
                update(Party)
                .where(Party.id == person.party_id)
                .values(event_seq=Party.event_seq + total)
                .returning(Party.event_seq)
            )
        ).scalar_one()
        first_seq = top - total + 1
        for start in range(0, total, 200):
            logs = await conn.execute(
                insert(LogEntry).returning(LogEntry.seq, sort_by_parameter_order=True),
                [
                    {
                        "cid": cid,
                        "object_id": f"{first_seq + i:064x}",
                        "type": "message",
                        "sender_id": business.party_id,
                        "object": '{"type":"bulk"}',
                        "payload": "x" * size,
                        "received_at": 0,
                    }
                    for i in range(start, start + 200)
                ],
            )
            await conn.execute(
                insert(Event),
                [
                    {
                        "party_id": person.party_id,
                        "seq": first_seq + start + k,
                        "cid": cid,
                        "kind": "message",
                        "log_seq": log_seq,
                        "created_at": 0,
                    }
                    for k, log_seq in enumerate(logs.scalars().all())
                ],
            )
    await engine.dispose()

    host, port = server_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
    writer.write(
        (
            f"GET /v1/events?after={first_seq - 1} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {person.token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    before = STREAM_FRAMES._value.get()
    await asyncio.sleep(2)  # not reading
    stalled = STREAM_FRAMES._value.get() - before
    print(f"stalled reader: {stalled:.0f} of {total} frames written before the server waited")
    assert stalled < total // 5

    seen: list[int] = []
    while len(seen) < total:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line.startswith(b"id: "):
            seen.append(int(line[4:]))
    writer.close()
    assert seen == list(range(first_seq, first_seq + total))


async def test_the_stream_ends_when_the_account_is_deleted(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_server(database_url, clock, stream_poll=0.3, run_worker=False) as base,
        httpx.AsyncClient(timeout=10) as http,
    ):
        me = Actor(http=http, clock=clock, base_url=base)
        await me.register("person", "leaving")
        headers = {**me.headers, "Accept": "text/event-stream"}
        async with http.stream("GET", base + "/v1/events", headers=headers) as r:
            assert r.status_code == 200
            deleted = await me.post("/v1/account/delete", {"objects": []})
            assert deleted.status_code == 200, deleted.text
            started = time.monotonic()
            async for _frame in frames(r):
                pass  # the server closes the stream
            assert time.monotonic() - started < 5


async def test_a_subscription_collects_the_hinted_parties_until_taken() -> None:
    from rapport_server.events.notify import ANY, WIDE, LocalNotifier

    notifier = LocalNotifier()
    with notifier.subscribe(ANY) as sub, notifier.subscribe("p1") as own:
        assert sub.take() is None  # the first pass looks at every party
        notifier.committed(["p1", "p2"])
        notifier.committed(["p3"])
        assert await sub.wait(0.1) and await own.wait(0.1)
        assert sub.take() == {"p1", "p2", "p3"}
        assert sub.take() == set() and not await sub.wait(0.01)
        notifier.committed([f"q{i}" for i in range(WIDE + 1)])
        assert sub.take() is None  # too many to list: any party
        notifier.wake_all()
        assert sub.take() is None
