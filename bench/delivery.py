"""Delivery lag: from the send's 201 to the recipient's SSE frame, and to its webhook.

Recipients hold an open ``GET /v1/events`` stream (``Accept: text/event-stream``) and
have a webhook endpoint pointing at a receiver in this process; a business sends to them
at a modest fixed rate. For each message, lag = receipt time − time the sender got its
201 (negative when the event beats the response back). The reference is the send's own
round trip measured in the same phase.

The server runs with ``RAPPORT_WEBHOOK_DEV_MODE=true`` so that it may call the receiver on
127.0.0.1 over http.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from rapport_protocol import MessageType

from bench import servers
from bench.report import Row, pending
from bench.workload import Population, populate

DEV_ENV = {"RAPPORT_WEBHOOK_DEV_MODE": "true"}


def _routes(url: str) -> set[str]:
    spec = httpx.get(url + "/openapi.json", timeout=30).json()
    return set(spec.get("paths", {}))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


class Receiver:
    """A minimal HTTP/1.1 server recording when each message's webhook arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        """First arrival of each message (by object id)."""
        self.counts: dict[str, int] = {}
        """Deliveries of each message (a broadcast reaches many endpoints)."""
        self.latest: dict[str, float] = {}
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                now = time.perf_counter()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(body)
                    obj = doc["data"]["object"]
                    if doc["data"]["type"] == "message":
                        self.arrivals.setdefault(obj["id"], now)
                        self.counts[obj["id"]] = self.counts.get(obj["id"], 0) + 1
                        self.latest[obj["id"]] = now
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the server closed the connection, or this receiver is being torn down
        finally:
            writer.close()


async def _sse(
    http: httpx.AsyncClient, base: str, token: str, on_message: Callable[[str, float], object]
) -> None:
    """Read a party's event stream, calling ``on_message(object id, receipt time)``."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with http.stream("GET", f"{base}/v1/events", headers=headers, timeout=None) as r:
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                now = time.perf_counter()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    event = json.loads(line[5:])
                    if event["type"] == "message":
                        on_message(event["object"]["id"], now)


async def _hooked_population(
    base: str, http: httpx.AsyncClient, receiver: Receiver, links: int
) -> Population:
    """One business and ``links`` people, each with a webhook endpoint at ``receiver``."""
    pop: Population = await populate(base, http, businesses=1, links=links)
    for link in pop.links:
        r = await link.recipient.post(
            "/v1/webhook-endpoints",
            {"url": f"http://127.0.0.1:{receiver.port}/hook", "types": ["message"]},
        )
        assert r.status_code == 201, r.text
    return pop


async def measure(base: str, *, links: int, messages: int, rate: float) -> dict[str, list[float]]:
    """Send ``messages`` messages at ``rate``/s over ``links`` connections; return the ack
    round trips and the lags to SSE and to webhook receipt, in seconds."""
    receiver = Receiver()
    await receiver.start()
    sse_arrivals: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        pop = await _hooked_population(base, http, receiver, links)
        streams = [
            asyncio.create_task(_sse(http, base, link.recipient.token, sse_arrivals.setdefault))
            for link in pop.links
        ]
        await asyncio.sleep(1.0)  # streams connected
        acks: dict[str, tuple[float, float]] = {}

        async def send(i: int) -> None:
            link = pop.links[i % len(pop.links)]
            obj = link.sender.sign(
                MessageType.MESSAGE, {"topic": "orders"}, link.cid, payload=f"Parcel {i}"
            )
            began = time.perf_counter()
            r = await link.sender.post(f"/v1/connections/{link.cid}/messages", {"object": obj})
            if r.status_code == 201:
                acks[obj["id"]] = (began, time.perf_counter())

        # One message per link at a time, links in turn: chains never overlap.
        for start in range(0, messages, len(pop.links)):
            began = time.perf_counter()
            batch = range(start, min(messages, start + len(pop.links)))
            for i in batch:
                await send(i)
                await asyncio.sleep(max(0.0, began + (i - start + 1) / rate - time.perf_counter()))
        for _ in range(150):  # up to 15 s for the stragglers
            if len(sse_arrivals) >= len(acks) and len(receiver.arrivals) >= len(acks):
                break
            await asyncio.sleep(0.1)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    await receiver.stop()
    return {
        "ack": [done - began for began, done in acks.values()],
        "sse": [sse_arrivals[k] - done for k, (_, done) in acks.items() if k in sse_arrivals],
        "webhook": [
            receiver.arrivals[k] - done for k, (_, done) in acks.items() if k in receiver.arrivals
        ],
        "sent": [float(len(acks))],
    }


def delivery_rows(ctx: Any, backend: str, db_url: str, port: int, secret: str) -> list[Row]:
    """Rows for the delivery lag figures, or pending rows while the endpoints are missing."""
    env = {**ctx.server_env, **DEV_ENV}
    with servers.rapport_server(
        db_url,
        ctx.workdir,
        cpu=ctx.server_cpu,
        secret_key=secret,
        migrate=False,
        port=port,
        extra_env=env,
    ) as srv:
        routes = _routes(srv.url)
        missing = []
        if "/v1/events" not in routes:
            missing.append(pending("delivery lag → SSE", backend, "no GET /v1/events yet"))
        if "/v1/webhook-endpoints" not in routes:
            missing.append(pending("delivery lag → webhook", backend, "no webhook endpoints yet"))
        if missing:
            return missing
        quick = ctx.plan.seconds < 5
        out = asyncio.run(
            measure(srv.url, links=8 if quick else 32, messages=60 if quick else 300, rate=20.0)
        )
    ack = out["ack"]
    sent = int(out["sent"][0])
    rows = []
    for name, key in (("SSE", "sse"), ("webhook", "webhook")):
        lags = out[key]
        note = f"{len(lags)}/{sent} received; messages sent at 20/s"
        for q in (50, 99):
            lag = _pct(lags, q)
            ref = _pct(ack, q)
            rows.append(
                Row(
                    f"delivery lag → {name} p{q}",
                    backend,
                    f"{lag * 1000:.1f} ms",
                    f"send round trip p{q} {ref * 1000:.1f} ms",
                    lag / ref if ref and lags else None,
                    note=note if q == 50 else "",
                )
            )
    ctx.log(
        f"delivery[{backend}]: SSE p50 {_pct(out['sse'], 50) * 1000:.1f} ms, "
        f"webhook p50 {_pct(out['webhook'], 50) * 1000:.1f} ms ({len(out['webhook'])}/{sent})"
    )
    return rows


async def measure_fanout(base: str, *, recipients: int, broadcasts: int) -> dict[str, float]:
    """End-to-end delivery of broadcasts: ``recipients`` people (each with a webhook
    endpoint at a local receiver and an open SSE stream) all permit the topic; a business
    broadcasts ``broadcasts`` messages one after the other. Returns the enqueue time (first
    request to last 201) and, for each channel, the time from the first 201 to the last
    arrival and the count received."""
    receiver = Receiver()
    await receiver.start()
    sse_arrivals: dict[str, float] = {}
    sse_counts: dict[str, int] = {}
    hooks = receiver.counts
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None)) as http:
        pop = await _hooked_population(base, http, receiver, recipients)

        def count(oid: str, now: float) -> None:
            sse_counts[oid] = sse_counts.get(oid, 0) + 1
            sse_arrivals[oid] = now

        streams = [
            asyncio.create_task(_sse(http, base, link.recipient.token, count)) for link in pop.links
        ]
        await asyncio.sleep(2.0)  # streams connected
        sender = pop.businesses[0]
        first_request = time.perf_counter()
        first_ack = 0.0
        ids = []
        for i in range(broadcasts):
            obj = sender.sign(MessageType.MESSAGE, {"topic": "orders"}, None, payload=f"News {i}")
            r = await sender.post("/v1/broadcasts", {"object": obj})
            assert r.status_code == 201, r.text
            assert r.json()["delivered"] == recipients, r.text
            first_ack = first_ack or time.perf_counter()
            ids.append(obj["id"])
        enqueued = time.perf_counter() - first_request
        expected = recipients * broadcasts
        for _ in range(1200):  # up to 120 s
            if (
                sum(sse_counts.get(i, 0) for i in ids) >= expected
                and sum(hooks.get(i, 0) for i in ids) >= expected
            ):
                break
            await asyncio.sleep(0.1)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    await receiver.stop()
    return {
        "expected": float(expected),
        "enqueue_s": enqueued,
        "sse_n": float(sum(sse_counts.get(i, 0) for i in ids)),
        "sse_s": max(sse_arrivals.get(i, first_ack) for i in ids) - first_ack,
        "webhook_n": float(sum(hooks.get(i, 0) for i in ids)),
        "webhook_s": max(receiver.latest.get(i, first_ack) for i in ids) - first_ack,
    }


def fanout_delivery_rows(ctx: Any, backend: str, db_url: str, port: int, secret: str) -> list[Row]:
    """Rows for end-to-end delivery of broadcasts to webhook sinks and SSE consumers."""
    quick = ctx.plan.seconds < 5
    recipients, broadcasts = (40, 3) if quick else (200, 5)
    with servers.rapport_server(
        db_url,
        ctx.workdir,
        cpu=ctx.server_cpu,
        secret_key=secret,
        migrate=False,
        port=port,
        extra_env={**ctx.server_env, **DEV_ENV},
    ) as srv:
        out = asyncio.run(measure_fanout(srv.url, recipients=recipients, broadcasts=broadcasts))
    expected = int(out["expected"])
    enqueue_rate = expected / out["enqueue_s"]
    rows = []
    for name, key in (("webhook", "webhook"), ("SSE", "sse")):
        got, took = int(out[f"{key}_n"]), out[f"{key}_s"]
        rate = got / took if took > 0 else float("nan")
        rows.append(
            Row(
                f"fan-out delivery → {name}",
                backend,
                f"{rate:,.0f} deliveries/s",
                f"broadcast enqueue {enqueue_rate:,.0f} recipients/s",
                rate / enqueue_rate if enqueue_rate else None,
                note=(
                    f"{got:,}/{expected:,} received in {took:.1f} s after the first 201; "
                    f"{broadcasts} broadcasts to {recipients} people, each with a webhook "
                    "endpoint and an open SSE stream"
                ),
            )
        )
    ctx.log(
        f"fanout-delivery[{backend}]: webhook {int(out['webhook_n'])}/{expected} in "
        f"{out['webhook_s']:.1f} s, SSE {int(out['sse_n'])}/{expected} in {out['sse_s']:.1f} s"
    )
    return rows
