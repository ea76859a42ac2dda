"""Family 2 — a stateful model test of the real server against a reference model.

A hypothesis ``RuleBasedStateMachine`` drives one business and one person (real HTTP,
signed objects, :class:`tests.helpers.Actor`) through random sequences of grant, amend,
revoke, mute (reject / hold, with exempt topics), unmute, sever, favour-grant changes,
favour requests, sends, replays, concurrent duplicate sends and restarts (a new app
instance on the same database, every actor logging in again). A small reference model
predicts each outcome. Invariants checked after every step:

* delivered ⇔ permitted at send time: every send gets exactly the model's outcome
  (delivered, held or the refusal code); the person's inbox for the connection holds
  exactly the delivered messages plus the held ones released by an unmute, in order;
* the connection's log verifies offline (``rapport_protocol.verify_log``) and holds exactly
  the objects the server accepted.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from rapport_protocol import MessageType, verify_log

from tests.helpers import Actor, FakeClock, connect
from tests.reliability.conftest import profile, record
from tests.reliability.world import Instances, LoopRunner

M = MessageType
TOPICS = ("news", "offers")


@dataclass
class Model:
    """What the server should know about the one connection under test."""

    severed: bool = False
    erased: bool = False  # severed with data=delete: contents gone
    grants: dict[str, str] = field(default_factory=dict)  # topic -> grant id (person's)
    stale_grants: list[str] = field(default_factory=list)
    favour_grant: str | None = None  # the business's favour grant id
    mute: tuple[str, frozenset[str]] | None = None  # (mode, exempt topics)
    delivered: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    accepted: int = 2  # invitation + accept are in the log
    last_objects: list[tuple[Actor, str, dict[str, Any]]] = field(default_factory=list)

    def send_outcome(self, topic: str) -> tuple[int, str]:
        if self.severed:
            return 410, "connection_severed"
        if topic not in self.grants:
            return 403, "grant_missing"
        if self.mute is not None and topic not in self.mute[1]:
            return (403, "muted") if self.mute[0] == "reject" else (201, "held")
        return 201, "delivered"


class Figures:
    steps = 0
    sends = 0
    checks = 0
    restarts = 0
    examples = 0


STATS = Figures()
ENV: dict[str, Any] = {}


class ConsentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner: LoopRunner = ENV["runner"]
        self.instances: Instances = ENV["instances"]
        self.clock: FakeClock = ENV["clock"]
        self.base = ENV["base"]
        self.model = Model()
        self.counter = itertools.count()
        STATS.examples += 1
        self.shop = self._actor()
        self.person = self._actor()
        self.run(self.shop.register("business", "model-shop"))
        self.run(self.person.register("person", "model-person"))
        self.cid = self.run(
            connect(
                self.shop,
                self.person,
                person_grants=[{"scope": "message", "topic": "news"}],
                business_grants=[{"scope": "favour", "topic": "callback"}],
            )
        )
        grants = self.run(self.person.get(f"/v1/connections/{self.cid}/grants")).json()
        self.model.grants = {g["topic"]: g["id"] for g in grants["granted_by_me"]}
        self.model.favour_grant = grants["granted_to_me"][0]["id"]

    # -- plumbing -------------------------------------------------------------------------
    def _actor(self) -> Actor:
        http: httpx.AsyncClient = self.runner.http
        return Actor(http=http, clock=self.clock, base_url=self.base)

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def act(self, who: Actor, method: str, path: str, mtype: M, body: Any) -> httpx.Response:
        STATS.steps += 1
        r = self.run(who.act(method, f"/v1/connections/{self.cid}{path}", mtype, body, self.cid))
        assert r.status_code < 500, r.text
        if r.status_code < 300:
            self.model.accepted += 1
        return r

    def expect(self, r: httpx.Response, status: int, code: str | None = None) -> None:
        assert r.status_code == status, (status, code, r.status_code, r.text)
        if code is not None:
            assert r.json()["code"] == code, r.text

    def refused_after_sever(self, r: httpx.Response) -> None:
        assert 400 <= r.status_code < 500, r.text

    # -- the person's consent ----------------------------------------------------------------
    @rule(topic=st.sampled_from(TOPICS))
    def grant(self, topic: str) -> None:
        r = self.act(
            self.person,
            "POST",
            "/grants",
            M.GRANT_ISSUE,
            {"grant": {"scope": "message", "topic": topic}},
        )
        if self.model.severed:
            return self.refused_after_sever(r)
        if topic in self.model.grants:
            return self.expect(r, 409, "grant_exists")
        self.expect(r, 201)
        self.model.grants[topic] = r.json()["id"]

    @rule(topic=st.sampled_from(TOPICS), purpose=st.sampled_from(["a", "b", "c"]))
    def amend(self, topic: str, purpose: str) -> None:
        old = self.model.grants.get(topic) or (self.model.stale_grants or [None])[-1]
        if old is None:
            return
        body = {"replaces": old, "grant": {"scope": "message", "topic": topic, "purpose": purpose}}
        r = self.act(self.person, "POST", f"/grants/{old}/amend", M.GRANT_AMEND, body)
        if self.model.severed:
            return self.refused_after_sever(r)
        if self.model.grants.get(topic) != old:
            # an amended-away or revoked grant, possibly of another topic
            assert r.status_code in (409, 422), r.text
            return
        self.expect(r, 201)
        self.model.stale_grants.append(old)
        self.model.grants[topic] = r.json()["id"]

    @rule(topic=st.sampled_from(TOPICS))
    def revoke(self, topic: str) -> None:
        gid = self.model.grants.get(topic)
        if gid is None:
            return
        r = self.act(
            self.person, "POST", f"/grants/{gid}/revoke", M.GRANT_REVOKE, {"grant_id": gid}
        )
        if self.model.severed:
            return self.refused_after_sever(r)
        self.expect(r, 200)
        self.model.stale_grants.append(self.model.grants.pop(topic))

    @rule(mode=st.sampled_from(["reject", "hold"]), exempt=st.sets(st.sampled_from(TOPICS)))
    def mute(self, mode: str, exempt: set[str]) -> None:
        body = {"mode": mode, "exempt_topics": sorted(exempt)}
        r = self.act(self.person, "PUT", "/mute", M.MUTE, body)
        if self.model.severed:
            return self.refused_after_sever(r)
        self.expect(r, 200)
        self.model.mute = (mode, frozenset(exempt))

    @rule()
    def unmute(self) -> None:
        r = self.act(self.person, "POST", "/unmute", M.UNMUTE, {})
        if self.model.severed:
            return self.refused_after_sever(r)
        if self.model.mute is None:
            return self.expect(r, 409, "mute_not_found")
        self.expect(r, 200)
        self.model.mute = None
        self.model.delivered += self.model.held
        self.model.held = []

    @rule(by_person=st.booleans(), erase=st.booleans())
    def sever(self, by_person: bool, erase: bool) -> None:
        who = self.person if by_person else self.shop
        data = "delete" if erase else "retain_legal"
        r = self.act(who, "POST", "/sever", M.SEVER, {"data": data})
        if self.model.severed:
            return self.refused_after_sever(r)
        self.expect(r, 200)
        self.model.severed = True
        self.model.erased = erase
        self.model.held = []  # held messages die with the connection
        self.model.grants = {}
        self.model.mute = None
        self.model.favour_grant = None

    # -- favours ---------------------------------------------------------------------------
    @rule()
    def toggle_favour_grant(self) -> None:
        gid = self.model.favour_grant
        if gid is None:
            body: dict[str, Any] = {"grant": {"scope": "favour", "topic": "callback"}}
            r = self.act(self.shop, "POST", "/grants", M.GRANT_ISSUE, body)
        else:
            r = self.act(
                self.shop, "POST", f"/grants/{gid}/revoke", M.GRANT_REVOKE, {"grant_id": gid}
            )
        if self.model.severed:
            return self.refused_after_sever(r)
        self.expect(r, 201 if gid is None else 200)
        self.model.favour_grant = r.json()["id"] if gid is None else None

    @rule()
    def ask_favour(self) -> None:
        body = {"kind": "callback", "description": "call me"}
        r = self.act(self.person, "POST", "/favours", M.FAVOUR_REQUEST, body)
        if self.model.severed:
            return self.expect(r, 410, "connection_severed")
        if self.model.favour_grant is None:
            return self.expect(r, 403, "grant_missing")
        self.expect(r, 201)

    # -- messages ----------------------------------------------------------------------------
    def _content(self) -> str:
        return f"m{next(self.counter)}-{secrets.token_hex(3)}"

    def _settle(self, topic: str, content: str, r: httpx.Response) -> None:
        STATS.sends += 1
        status, outcome = self.model.send_outcome(topic)
        if status != 201:
            return self.expect(r, status, outcome)
        self.expect(r, 201)
        assert r.json()["held"] is (outcome == "held"), r.text
        (self.model.held if outcome == "held" else self.model.delivered).append(content)

    @rule(topic=st.sampled_from(TOPICS))
    def send(self, topic: str) -> None:
        content = self._content()
        obj = self.shop.sign(M.MESSAGE, {"topic": topic}, self.cid, payload=content)
        r = self.run(self.shop.post(f"/v1/connections/{self.cid}/messages", {"object": obj}))
        STATS.steps += 1
        if r.status_code == 201:
            self.model.accepted += 1
            self.model.last_objects.append((self.shop, "/messages", obj))
        else:
            self.shop.rewind(self.cid, obj["seq"] - 1, obj.get("prev"))
        self._settle(topic, content, r)

    @rule(topics=st.lists(st.sampled_from(TOPICS), min_size=2, max_size=4))
    def send_several(self, topics: list[str]) -> None:
        for topic in topics:
            self.send(topic)

    @rule(topic=st.sampled_from(TOPICS), copies=st.integers(2, 6))
    def concurrent_duplicates(self, topic: str, copies: int) -> None:
        content = self._content()
        obj = self.shop.sign(M.MESSAGE, {"topic": topic}, self.cid, payload=content)
        path = f"/v1/connections/{self.cid}/messages"

        async def burst() -> list[httpx.Response]:
            return await asyncio.gather(
                *[self.shop.post(path, {"object": obj}) for _ in range(copies)]
            )

        results = self.run(burst())
        STATS.steps += copies
        codes = sorted(r.status_code for r in results)
        assert max(codes) < 500, codes
        winners = [r for r in results if r.status_code == 201]
        status, _ = self.model.send_outcome(topic)
        if status == 201:
            assert len(winners) == 1, codes
            assert all(r.status_code == 409 for r in results if r.status_code != 201), codes
            self.model.accepted += 1
            self.model.last_objects.append((self.shop, "/messages", obj))
            self._settle(topic, content, winners[0])
        else:
            assert not winners, codes
            self.shop.rewind(self.cid, obj["seq"] - 1, obj.get("prev"))
            for r in results:
                self.expect(r, status)

    @precondition(lambda self: bool(self.model.last_objects))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        who, path, obj = data.draw(st.sampled_from(self.model.last_objects))
        r = self.run(who.post(f"/v1/connections/{self.cid}{path}", {"object": obj}))
        STATS.steps += 1
        if self.model.severed:  # refused either as a replay or for the sever
            assert r.status_code in (409, 410), r.text
        else:
            self.expect(r, 409)

    # -- operations ---------------------------------------------------------------------------
    @rule()
    def restart(self) -> None:
        """A new app instance on the same database; the old one goes away."""
        STATS.restarts += 1
        self.base = self.instances.start()
        if self.instances.running > 1:
            self.instances.stop_oldest()
        ENV["base"] = self.base
        for who in (self.shop, self.person):
            who.base_url = self.base
            self.run(who.login())

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def inbox_holds_exactly_what_was_permitted(self) -> None:
        STATS.checks += 1
        page = self.run(
            self.person.get("/v1/messages", params={"cid": self.cid, "limit": 200})
        ).json()
        assert not page["has_more"]
        contents = [m["content"] for m in page["data"]]
        if self.model.erased:
            assert all(c is None for c in contents), contents
        else:
            assert contents == self.model.delivered, (contents, self.model.delivered)

    @invariant()
    def log_verifies_and_holds_every_accepted_object(self) -> None:
        entries: list[tuple[dict[str, Any], int]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = self.run(self.shop.get(f"/v1/connections/{self.cid}/log", params=params))
            assert page.status_code == 200, page.text
            body = page.json()
            entries += [(e["object"], e["received_time"]) for e in body["data"]]
            if not body["has_more"]:
                break
            cursor = body["next_cursor"]
        verified = verify_log(entries)
        assert verified.count == len(entries) == self.model.accepted
        assert (verified.state.status == "severed") is self.model.severed


async def test_consent_model_holds_under_random_sequences(
    database_url: str, clock: FakeClock, server_url: str
) -> None:
    examples = profile(6, 60)
    steps = profile(25, 60)

    def drive() -> None:
        runner = LoopRunner()
        instances = Instances(runner, database_url, clock)
        ENV.update(runner=runner, instances=instances, clock=clock, base=server_url)
        try:
            machine = ConsentMachine
            machine.TestCase.settings = settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: steps are slow
                suppress_health_check=list(HealthCheck),
            )
            machine.TestCase().runTest()
        finally:
            instances.stop_all()
            runner.close()

    await asyncio.to_thread(drive)
    record(
        "stateful-model",
        f"{STATS.examples} sequences, {STATS.steps} requests, {STATS.sends} sends checked "
        f"against the model, {STATS.restarts} restarts, {STATS.checks} inbox+log checks, "
        "0 model violations, 0 server errors",
    )
