"""Deterministic protocol test vectors: spec/vectors/*.json.

Fixed seeds give fixed keys and DIDs; a fixed clock gives fixed times; Ed25519 signatures
are deterministic (RFC 8032), so every id and signature is reproducible and re-running this
script writes byte-identical files. Expected results (ids, states, decisions, error codes)
are computed by ``rapport_protocol`` at generation time and checked again by
``tests/spec/test_vectors.py``, which also re-verifies every signature and canonical form
independently (pyca/cryptography and a reference RFC 8785 implementation).

Usage: ``.venv/bin/python scripts/generate_spec.py`` (writes) or ``--check``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rapport_protocol import SigningKey, apply, canonical, decide
from rapport_protocol.decision import Allowed
from rapport_protocol.envelope import SignedObject, sign
from rapport_protocol.favours import ledger
from rapport_protocol.state import ConnectionState, derive_cid
from rapport_protocol.types import MessageType

M = MessageType
VECTORS_VERSION = "1.1.0"
T0 = 1_767_258_000  # 2026-01-01T09:00:00Z: daytime in Europe/London, outside quiet hours
MIN = 60
HOUR = 3600
DAY = 86400
SKEW = 300


def seed_for(name: str) -> bytes:
    """The 32-byte Ed25519 seed of a named vector party: SHA-256("rapport-vectors/" name)."""
    return hashlib.sha256(f"rapport-vectors/{name}".encode()).digest()


PARTY_NAMES = ("acme", "alice", "alice-rotated", "mallory")
KEYS = {name: SigningKey.from_seed(seed_for(name)) for name in PARTY_NAMES}


def dumps(value: Any) -> bytes:
    """The committed file form: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


# --- state summary -----------------------------------------------------------------------


def summarise(state: ConnectionState, now: int) -> dict[str, Any]:
    """The observable connection state at ``now`` (implementation-independent fields)."""
    sides = ledger(state.favours, now)
    return {
        "status": state.status_at(now),
        "cid": state.cid,
        "invitation": state.invitation_id,
        "dids": list(state.dids),
        "kinds": list(state.kinds),
        "heads": [{"seq": h.seq, "last": h.last} for h in state.heads],
        "grants": {
            gid: {
                "grantor": g.grantor,
                "scope": g.spec.scope,
                "topic": g.spec.topic,
                "status": g.status,
                **({"replaces": g.replaces} if g.replaces else {}),
            }
            for gid, g in sorted(state.grants.items())
        },
        "mutes": {
            role: {
                "id": m.id,
                "until": m.until,
                "mode": m.mode,
                "exempt_topics": list(m.exempt_topics),
            }
            for role, m in sorted(state.mutes.items())
            if m.active_at(now)
        },
        "favours": {
            fid: {
                "requester": f.requester,
                "kind": f.kind,
                "status": f.status_at(now),
                **({"return_of": f.return_of} if f.return_of else {}),
            }
            for fid, f in sorted(state.favours.items())
        },
        "ledger": [side.model_dump() for side in sides],
        "severance": None
        if state.severance is None
        else {
            "by": state.severance.by,
            "data": state.severance.data,
            "block_reinvite": state.severance.block_reinvite,
        },
    }


# --- the connection story ----------------------------------------------------------------


@dataclass
class Chain:
    """One party's hash chain: the next ``seq`` and ``prev``."""

    seq: int = 0
    prev: str | None = None


@dataclass
class Story:
    """Builds the signed objects of one connection, applying each as it goes."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    objects: list[SignedObject] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    states: list[ConnectionState] = field(default_factory=list)
    chains: dict[int, Chain] = field(default_factory=lambda: {0: Chain(), 1: Chain()})
    cid: str | None = None

    @property
    def state(self) -> ConnectionState | None:
        return self.states[-1] if self.states else None

    def chained(
        self, role: int, key: str, mtype: MessageType, body: dict[str, Any], at: int, **hdr: Any
    ) -> SignedObject:
        """Sign the next object of ``role``'s chain (without applying it)."""
        chain = self.chains[role]
        return sign(
            KEYS[key],
            mtype,
            body,
            created_time=at,
            cid=self.cid,
            seq=chain.seq + 1,
            prev=chain.prev,
            **hdr,
        )

    def add(self, name: str, note: str, obj: SignedObject, at: int, role: int | None) -> None:
        """Apply ``obj`` received at ``at`` and record the step with the state after it."""
        new = apply(self.state, obj, at)
        if role is not None and obj.cid is not None:
            self.chains[role] = Chain(seq=obj.seq, prev=obj.id)
        self.objects.append(obj)
        self.times.append(at)
        self.states.append(new)
        unsigned = {k: v for k, v in obj.raw.items() if k not in ("id", "proof", "payload")}
        self.steps.append(
            {
                "step": len(self.steps),
                "name": name,
                "note": note,
                "received_time": at,
                "object": obj.raw,
                "expect": {
                    "id": obj.id,
                    "signing_input": canonical.canonicalize(unsigned).decode("utf-8"),
                    "state": summarise(new, at),
                },
            }
        )

    def index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s["name"] == name)

    def obj(self, name: str) -> SignedObject:
        return self.objects[self.index(name)]


def grant(scope: str, topic: str, **extra: Any) -> dict[str, Any]:
    return {"scope": scope, "topic": topic, **extra}


def build_story() -> Story:
    """Acme (a business) and Alice (a person): every object type, in one connection."""
    s = Story()
    acme, alice = KEYS["acme"], KEYS["alice"]
    t = T0
    inv = sign(
        acme,
        M.INVITATION,
        {
            "label": "Acme Coffee",
            "kind": "business",
            "goal": "Order updates and the occasional favour",
            "nonce": "vector-nonce-0001",
            "offered": [grant("favour", "*"), grant("message", "support", purpose="Help desk")],
            "requested": [grant("message", "orders", purpose="Order updates")],
        },
        created_time=t,
        expires_time=t + 7 * DAY,
    )
    s.add("invitation", "Acme invites; offers favour:* and message:support", inv, t, None)
    s.cid = derive_cid(inv.id, alice.did)
    t += MIN
    acc = s.chained(
        1,
        "alice",
        M.ACCEPT,
        {
            "invitation": inv.id,
            "label": "Alice",
            "kind": "person",
            "grants": [
                grant("message", "orders", purpose="Order updates"),
                grant("favour", "*"),
                grant(
                    "message",
                    "news",
                    quiet_hours={"start": "22:00", "end": "07:00", "tz": "Europe/London"},
                ),
            ],
        },
        t,
        thid=inv.id,
    )
    s.add("accept", "Alice accepts and grants message:orders, favour:*, message:news", acc, t, 1)
    t += MIN
    orders_grant = f"{acc.id}.0"
    m1 = s.chained(
        0,
        "acme",
        M.MESSAGE,
        {"topic": "orders", "purpose": "Order updates"},
        t,
        payload="Your order #1 has shipped. ☕ Grüße!",
    )
    s.add("message-1", "Acme messages on orders (payload detached, digest signed)", m1, t, 0)
    t += MIN
    amend = s.chained(
        1,
        "alice",
        M.GRANT_AMEND,
        {
            "replaces": orders_grant,
            "grant": grant("message", "orders", rate={"count": 1, "period": "P1D"}),
        },
        t,
    )
    s.add(
        "grant-amend", "Alice narrows orders to 1 per day (compare-and-swap on the id)", amend, t, 1
    )
    t += MIN
    m2 = s.chained(0, "acme", M.MESSAGE, {"topic": "orders"}, t, payload="Order #2 shipped.")
    s.add("message-2", "Acme uses the one delivery the amended cap allows today", m2, t, 0)
    t += MIN
    issue = s.chained(
        1,
        "alice",
        M.GRANT_ISSUE,
        {"grant": grant("message", "tips", expires_time=t + HOUR)},
        t,
    )
    s.add("grant-issue", "Alice grants message:tips for one hour", issue, t, 1)
    t += MIN
    mute = s.chained(
        1,
        "alice",
        M.MUTE,
        {"until": t + DAY, "exempt_topics": ["tips"], "mode": "hold"},
        t,
    )
    s.add("mute", "Alice mutes Acme for a day (hold mode, tips exempt)", mute, t, 1)
    t += MIN
    unmute = s.chained(1, "alice", M.UNMUTE, {}, t)
    s.add("unmute", "Alice lifts the mute", unmute, t, 1)
    t += MIN
    fav = s.chained(
        0,
        "acme",
        M.FAVOUR_REQUEST,
        {
            "kind": "review",
            "description": "Would you review our new blend?",
            "due_time": t + 7 * DAY,
        },
        t,
        expires_time=t + 3 * DAY,
    )
    s.add("favour-request", "Acme asks Alice a favour (under Alice's favour:* grant)", fav, t, 0)
    for step, role, key, note in (
        (M.FAVOUR_ACCEPT, 1, "alice", "Alice (the doer) accepts"),
        (M.FAVOUR_FULFIL, 1, "alice", "Alice fulfils"),
        (M.FAVOUR_ACKNOWLEDGE, 0, "acme", "Acme (the requester) acknowledges"),
    ):
        t += MIN
        o = s.chained(role, key, step, {"favour": fav.id, "note": "thanks"}, t)
        s.add(step.value, note, o, t, role)
    t += MIN
    ret = s.chained(
        1,
        "alice",
        M.FAVOUR_REQUEST,
        {"kind": "sample", "description": "A sample of the blend, in return?", "return_of": fav.id},
        t,
    )
    s.add("favour-return", "Alice asks a favour back (return_of), under Acme's favour:*", ret, t, 1)
    t += MIN
    wd = s.chained(1, "alice", M.FAVOUR_WITHDRAW, {"favour": ret.id}, t)
    s.add("favour-withdraw", "Alice withdraws her request", wd, t, 1)
    t += MIN
    ask = s.chained(
        0, "acme", M.FAVOUR_REQUEST, {"kind": "survey", "description": "Five questions?"}, t
    )
    s.add("favour-request-2", "Acme asks another favour", ask, t, 0)
    t += MIN
    no = s.chained(1, "alice", M.FAVOUR_DECLINE, {"favour": ask.id, "note": "not now"}, t)
    s.add("favour-decline", "Alice (the doer) declines it", no, t, 1)
    t += MIN
    revoke = s.chained(0, "acme", M.GRANT_REVOKE, {"grant_id": f"{inv.id}.1"}, t)
    s.add("grant-revoke", "Acme revokes the message:support grant it offered", revoke, t, 0)
    t += MIN
    rot = sign(alice, M.KEY_ROTATION, {"new_key": KEYS["alice-rotated"].did}, created_time=t)
    s.add("key-rotation", "Alice rotates to a new key (unchained, seq 0)", rot, t, None)
    t += MIN
    sev = s.chained(
        1,
        "alice-rotated",
        M.SEVER,
        {"data": "delete", "block_reinvite": True, "reason": "moving away"},
        t,
    )
    s.add("sever", "Alice, with her new key, severs; her chain continues", sev, t, 1)
    return s


def build_decline_story() -> Story:
    """An invitation addressed to Mallory, who declines it."""
    s = Story()
    acme, mallory = KEYS["acme"], KEYS["mallory"]
    inv = sign(
        acme,
        M.INVITATION,
        {"label": "Acme Coffee", "kind": "business", "offered": [grant("message", "support")]},
        created_time=T0,
        to=[mallory.did],
    )
    s.add("invitation", "Acme invites Mallory (addressed with to)", inv, T0, None)
    s.cid = derive_cid(inv.id, mallory.did)
    no = s.chained(
        1,
        "mallory",
        M.DECLINE,
        {"invitation": inv.id, "reason": "no thanks"},
        T0 + MIN,
        thid=inv.id,
    )
    s.add(
        "decline",
        "Mallory declines: the connection is declined, offered grants dropped",
        no,
        T0 + MIN,
        1,
    )
    return s


# --- decide() cases ----------------------------------------------------------------------


def decision_json(verdict: Any) -> dict[str, Any]:
    if isinstance(verdict, Allowed):
        return {
            "result": "allowed",
            "grant_id": verdict.grant_id,
            "held": verdict.held,
            "release_time": verdict.release_time,
        }
    return {
        "result": "refused",
        "code": verdict.code,
        "retry_after": verdict.retry_after,
        "muted_until": verdict.muted_until,
    }


def build_decisions(s: Story) -> list[dict[str, Any]]:
    """``decide`` cases: a story prefix, optional extra objects applied, then one object."""
    cases: list[dict[str, Any]] = []
    acme, mallory = KEYS["acme"], KEYS["mallory"]

    def case(
        name: str,
        after: str,
        make: Callable[[Story], tuple[list[tuple[SignedObject, int]], SignedObject, int]],
    ) -> None:
        idx = s.index(after)
        sub = Story(
            objects=s.objects[: idx + 1],
            times=s.times[: idx + 1],
            states=s.states[: idx + 1],
            cid=s.cid,
        )
        for o in sub.objects:
            if o.cid is not None:
                sub.chains[0 if o.sender == acme.did else 1] = Chain(o.seq, o.id)
        setup, obj, now = make(sub)
        state = sub.state
        for o, at in setup:
            state = apply(state, o, at)
        assert state is not None
        verdict = decide(state, obj, now)
        cases.append(
            {
                "name": name,
                "after_step": idx,
                "setup": [{"object": o.raw, "received_time": at} for o, at in setup],
                "object": obj.raw,
                "now": now,
                "expect": decision_json(verdict),
            }
        )

    def message(topic: str, at: int, key: str = "acme", **hdr: Any) -> Callable[[Story], Any]:
        def make(sub: Story) -> Any:
            o = sub.chained(0, key, M.MESSAGE, {"topic": topic}, at, payload="hello", **hdr)
            return [], o, at

        return make

    t_accept = s.times[s.index("accept")]
    t_m2 = s.times[s.index("message-2")]
    t_mute = s.times[s.index("mute")]
    t_issue = s.times[s.index("grant-issue")]
    case("allowed-orders", "accept", message("orders", t_accept + 30))
    case("rate-exceeded-after-amend", "message-2", message("orders", t_m2 + 30))
    case("rate-window-slides", "message-2", message("orders", t_m2 + DAY + 1))
    case("grant-missing-topic", "accept", message("billing", t_accept + 30))
    case("grant-expired", "grant-issue", message("tips", t_issue + HOUR))
    case("quiet-hours", "accept", message("news", T0 + 14 * HOUR))  # 23:00 London
    case("held-while-muted", "mute", message("news", t_mute + 30))
    case("exempt-topic-while-muted", "mute", message("tips", t_mute + 30))
    case("exempt-topic-still-rate-capped", "mute", message("orders", t_mute + 30))
    case(
        "message-expired",
        "accept",
        message("orders", t_accept + 30, expires_time=t_accept + 30),
    )

    def mute_reject(sub: Story) -> Any:
        at = t_accept + 30
        m = sub.chained(1, "alice", M.MUTE, {"mode": "reject"}, at)
        sub.chains[1] = Chain(m.seq, m.id)
        o = sub.chained(0, "acme", M.MESSAGE, {"topic": "orders"}, at + 1, payload="x")
        return [(m, at)], o, at + 1

    case("muted-reject", "accept", mute_reject)

    def favour_while_muted(sub: Story) -> Any:
        at = t_accept + 30
        m = sub.chained(1, "alice", M.MUTE, {"mode": "reject"}, at)
        sub.chains[1] = Chain(m.seq, m.id)
        o = sub.chained(0, "acme", M.FAVOUR_REQUEST, {"kind": "review", "description": "?"}, at + 1)
        return [(m, at)], o, at + 1

    case("favour-request-not-muted", "accept", favour_while_muted)

    def outsider(sub: Story) -> Any:
        at = t_accept + 30
        o = sign(
            mallory,
            M.MESSAGE,
            {"topic": "orders"},
            created_time=at,
            cid=sub.cid,
            seq=1,
            payload="spam",
        )
        return [], o, at

    case("not-a-party", "accept", outsider)

    def before_accept(sub: Story) -> Any:
        at = T0 + 30
        o = sign(acme, M.MESSAGE, {"topic": "orders"}, created_time=at, payload="early")
        return [], o, at

    case("connection-not-active", "invitation", before_accept)

    def after_sever(sub: Story) -> Any:
        at = s.times[-1] + 30
        o = sub.chained(0, "acme", M.MESSAGE, {"topic": "orders"}, at, payload="late")
        return [], o, at

    case("connection-severed", "sever", after_sever)

    def broadcast(sub: Story) -> Any:
        at = t_accept + 30
        o = sign(acme, M.MESSAGE, {"topic": "orders"}, created_time=at, payload="to everyone")
        return [], o, at

    case("broadcast-allowed", "accept", broadcast)
    return cases


# --- files -------------------------------------------------------------------------------


def render() -> dict[str, bytes]:
    """Every vector file, by path relative to the repository root."""
    from gen_spec_invalid import build_invalid  # it builds on this module's story

    story = build_story()
    declined = build_decline_story()
    parties = {
        name: {
            "seed_hex": seed_for(name).hex(),
            "public_key_hex": key.verify_key.public_key.hex(),
            "did": key.did,
            "kid": key.kid,
        }
        for name, key in KEYS.items()
    }
    meta = {"version": VECTORS_VERSION, "clock_skew_seconds": SKEW}
    return {
        "spec/vectors/keys.json": dumps(
            {**meta, "seed_rule": 'SHA-256("rapport-vectors/" + name)', "parties": parties}
        ),
        "spec/vectors/story.json": dumps({**meta, "cid": story.cid, "steps": story.steps}),
        "spec/vectors/story-decline.json": dumps(
            {**meta, "cid": declined.cid, "steps": declined.steps}
        ),
        "spec/vectors/decide.json": dumps({**meta, "cases": build_decisions(story)}),
        "spec/vectors/invalid.json": dumps({**meta, "cases": build_invalid(story, declined)}),
    }
