"""Family 7 — resource abuse: limits hold and a bystander keeps its latency.

Abusers, in parallel, each paced (one action per ``PACE`` seconds, so the figure measures
the server rather than the test process hogging the shared CPUs):

* post oversize bodies (by Content-Length and chunked without one) → 413, never buffered;
* trickle request bodies byte by byte (slowloris-style) → 408 ``request_timeout`` once the
  body deadline passes, the connection closed;
* spam favour requests over a favour grant capped at 3 per hour → 3 accepted, then 429
  ``rate_exceeded`` with Retry-After;
* spam invitations at a person who severed with ``block_reinvite`` → 403
  ``reinvite_blocked``;
* re-broadcast to their connections, where grants cap messages at 3 per hour → no person
  gets more than the cap; people without a grant get nothing.

``test_limits_hold_under_abuse`` checks the limits (in-process server, 2 s body deadline).
``test_bystander_p99_stays_within_twice_baseline`` runs ``rapport serve`` as its own
process and compares a bystander's send latency before and during the same abuse:
p99 during ≤ 2 × baseline p99 (with a 25 ms floor for timer noise).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rapport_protocol import MessageType

from tests.helpers import Actor, FakeClock, connect, free_port
from tests.reliability.conftest import profile, record
from tests.reliability.world import app_instance

M = MessageType
BODY_TIMEOUT = 2.0
CAP = {"count": 3, "period": "PT1H"}
PACE = 0.02
OVERSIZE = 256 * 1024  # twice the default body limit


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 65536 + 1):
        yield b" " * 65536


@dataclass
class Abuse:
    """The parties of one abuse run and what the abusers saw."""

    base: str
    http: httpx.AsyncClient
    clock: FakeClock
    outcomes: Counter[str] = field(default_factory=Counter)
    slow: list[tuple[str, float]] = field(default_factory=list)
    casts: int = 0

    def actor(self) -> Actor:
        return Actor(http=self.http, clock=self.clock, base_url=self.base)

    async def setup(self) -> None:
        self.shop, self.customer = self.actor(), self.actor()
        await self.shop.register("business", "bystander")
        await self.customer.register("person", "customer")
        self.cid = await connect(
            self.shop, self.customer, person_grants=[{"scope": "message", "topic": "news"}]
        )
        self.caster = self.actor()
        await self.caster.register("business", "caster")
        self.audience = []
        for i in range(profile(6, 20)):
            who = self.actor()
            await who.register("person", f"p{i}")
            grants = [{"scope": "message", "topic": "news", "rate": CAP}] if i % 2 == 0 else []
            self.audience.append((who, await connect(self.caster, who, person_grants=grants)))
        self.asker, helper = self.actor(), self.actor()
        await helper.register("business", "helper")
        await self.asker.register("person", "asker")
        self.ask_cid = await connect(
            helper,
            self.asker,
            person_grants=[],
            business_grants=[{"scope": "favour", "topic": "callback", "rate": CAP}],
        )
        self.pest, victim = self.actor(), self.actor()
        await self.pest.register("business", "pest")
        await victim.register("person", "victim")
        self.victim_did = victim.did
        pest_cid = await connect(self.pest, victim, person_grants=[])
        r = await victim.act(
            "POST",
            f"/v1/connections/{pest_cid}/sever",
            M.SEVER,
            {"data": "delete", "block_reinvite": True},
            pest_cid,
        )
        assert r.status_code == 200, r.text

    async def bystander(self, n: int) -> list[float]:
        out = []
        for i in range(n):
            start = time.perf_counter()
            r = await self.shop.send(self.cid, "news", f"b{i}")
            out.append(time.perf_counter() - start)
            assert r.status_code == 201, r.text
        return out

    # -- abusers ------------------------------------------------------------------------
    async def _oversize(self, stop: asyncio.Event) -> None:
        path = f"{self.base}/v1/connections/{self.cid}/messages"
        headers = {**self.shop.headers, "content-type": "application/json"}
        while not stop.is_set():
            for label, content in (
                ("oversize", b" " * OVERSIZE),
                ("oversize-chunked", _chunks(OVERSIZE)),
            ):
                try:
                    r = await self.http.post(path, content=content, headers=headers)
                    self.outcomes[f"{label} {r.status_code}"] += 1
                except httpx.TransportError:
                    # Refused early and closed while the client was still sending: the
                    # client may see the reset before the 413.
                    self.outcomes[f"{label} closed"] += 1
                await asyncio.sleep(PACE)

    async def _slow_body(self) -> None:
        host, port = self.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /v1/connections/{self.cid}/messages HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {self.shop.token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 4000\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        start = time.perf_counter()

        async def trickle() -> None:
            for _ in range(4000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.25)

        dripping = asyncio.create_task(trickle())
        try:
            line = await asyncio.wait_for(reader.readline(), BODY_TIMEOUT * 5)
        except (TimeoutError, OSError):
            line = b"no answer"
        finally:
            dripping.cancel()
            writer.close()
        text = line.decode(errors="replace").split(" ")
        self.slow.append((text[1] if len(text) > 1 else text[0], time.perf_counter() - start))

    async def _slowloris(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*[self._slow_body() for _ in range(profile(8, 30))])

    async def _favours(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            r = await self.asker.act(
                "POST",
                f"/v1/connections/{self.ask_cid}/favours",
                M.FAVOUR_REQUEST,
                {"kind": "callback", "description": "again"},
                self.ask_cid,
            )
            self.outcomes[f"favour {r.status_code}"] += 1
            if r.status_code == 429:
                assert r.headers.get("retry-after"), r.text
            await asyncio.sleep(PACE)

    async def _invites(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            r = await self.pest.invite(to=[self.victim_did])
            self.outcomes[f"reinvite {r.status_code}"] += 1
            await asyncio.sleep(PACE)

    async def _broadcasts(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.casts += 1
            cast = self.caster.sign(
                M.MESSAGE, {"topic": "news"}, None, payload=f"cast {self.casts}"
            )
            r = await self.caster.post("/v1/broadcasts", {"object": cast})
            self.outcomes[f"broadcast {r.status_code}"] += 1
            await asyncio.sleep(PACE)

    async def during(self, work: asyncio.Future[list[float]] | None, seconds: float) -> None:
        """Run every abuser until ``work`` is done (or for ``seconds``)."""
        stop = asyncio.Event()
        # RAPPORT_ABUSE_ONLY=oversize,broadcasts picks abusers (to find who hurts latency).
        only = [n for n in os.environ.get("RAPPORT_ABUSE_ONLY", "").split(",") if n]
        names = only or ["oversize", "slowloris", "favours", "invites", "broadcasts"]
        abusers = [asyncio.create_task(getattr(self, f"_{name}")(stop)) for name in names]
        if work is not None:
            await work
        else:
            await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*abusers)

    async def check_limits(self) -> str:
        oversize = {k for k in self.outcomes if k.startswith("oversize")}
        assert oversize <= {
            "oversize 413",
            "oversize closed",
            "oversize-chunked 413",
            "oversize-chunked closed",
        }, self.outcomes
        favours = (await self.asker.get(f"/v1/connections/{self.ask_cid}/favours")).json()
        assert len(favours) <= 3, favours
        assert {k for k in self.outcomes if k.startswith("favour")} <= {
            "favour 201",
            "favour 429",
        }
        assert {k for k in self.outcomes if k.startswith("reinvite")} <= {"reinvite 403"}
        per_person = []
        for who, pcid in self.audience:
            page = await who.get("/v1/messages", params={"cid": pcid, "limit": 200})
            per_person.append(len(page.json()["data"]))
        assert all(n <= 3 for n in per_person[0::2]), per_person
        assert all(n == 0 for n in per_person[1::2]), per_person
        assert not any(k.endswith(" 500") for k in self.outcomes), self.outcomes
        return (
            f"abuse {dict(sorted(self.outcomes.items()))}; favours accepted {len(favours)}/cap 3; "
            f"broadcast messages per person {per_person} (cap 3 where granted, 0 elsewhere)"
        )


async def test_limits_hold_under_abuse(database_url: str, clock: FakeClock) -> None:
    async with (
        app_instance(database_url, clock, body_timeout=BODY_TIMEOUT) as base,
        httpx.AsyncClient(timeout=30) as http,
    ):
        abuse = Abuse(base, http, clock)
        await abuse.setup()
        await abuse.during(None, profile(3, 20))
        summary = await abuse.check_limits()
    codes = Counter(code for code, _ in abuse.slow)
    slowest = max(t for _, t in abuse.slow)
    record(
        "resource-abuse/limits",
        f"{summary}; slow bodies {dict(codes)} after ≤ {slowest:.1f} s "
        f"(deadline {BODY_TIMEOUT:g} s)",
    )
    assert set(codes) == {"408"}, abuse.slow
    assert slowest <= BODY_TIMEOUT + 2


async def test_bystander_p99_stays_within_twice_baseline(
    database_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RAPPORT_DATABASE_URL": database_url,
        "RAPPORT_PUBLIC_URL": base,
        "RAPPORT_RUN_WORKER": "false",
        "RAPPORT_MIGRATE_ON_START": "true",
        "RAPPORT_LOG_LEVEL": "warning",
    }
    rapport = Path(sys.executable).with_name("rapport")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any awaiting
        [str(rapport), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    # At least 200 sends a phase: pct(…, 0.99) of 80 samples is their maximum (index 79),
    # a single stalled fsync; of 200 it is the second largest, an actual 99th percentile.
    rounds = profile(200, 400)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    await http.get(f"{base}/healthz")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            abuse = Abuse(base, http, FakeClock())
            await abuse.setup()
            await abuse.bystander(10)  # warm up
            # The machine is shared and its disk stalls now and then (one fsync of 100+ ms
            # is a 99th percentile here): a failed comparison is measured again, at most
            # three attempts in all, every attempt reported. The bound holds for the last.
            attempts: list[tuple[float, float, float, float]] = []
            for _ in range(3):
                baseline = await abuse.bystander(rounds)
                work = asyncio.ensure_future(abuse.bystander(rounds))
                await abuse.during(work, 0)
                loaded = work.result()
                b99, a99 = pct(baseline, 0.99), pct(loaded, 0.99)
                attempts.append((statistics.median(baseline), b99, statistics.median(loaded), a99))
                if a99 <= max(2 * b99, b99 + 0.025):
                    break
            summary = await abuse.check_limits()
    finally:
        proc.terminate()
        proc.wait(15)
    shown = "; ".join(
        f"p50/p99 {b50 * 1000:.1f}/{b99 * 1000:.1f} ms baseline, "
        f"{a50 * 1000:.1f}/{a99 * 1000:.1f} ms under abuse (p99 ratio {a99 / b99:.2f})"
        for b50, b99, a50, a99 in attempts
    )
    record(
        "resource-abuse/latency",
        f"bystander sends, {rounds} each, server in its own process, attempt(s): {shown}; "
        f"{summary}",
    )
    _, b99, _, a99 = attempts[-1]
    assert a99 <= max(2 * b99, b99 + 0.025), attempts
