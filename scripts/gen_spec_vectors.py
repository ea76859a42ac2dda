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

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import base58
from rapport_protocol import SigningKey, apply, canonical, decide, errors, strict_json
from rapport_protocol.decision import Allowed
from rapport_protocol.envelope import SignedObject, sign, verify
from rapport_protocol.favours import ledger
from rapport_protocol.state import ConnectionState, derive_cid
from rapport_protocol.types import MessageType

M = MessageType
VECTORS_VERSION = "1.0.0"
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
        return next(s["step"] for s in self.steps if s["name"] == name)

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


# --- invalid objects ---------------------------------------------------------------------


def text(value: Any) -> str:
    """Compact JSON text of a value (not canonical: order as built)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def resign(raw: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Recompute ``id`` and ``proof.sig`` of an edited object (so only the edit is wrong)."""
    unsigned = {k: v for k, v in raw.items() if k not in ("id", "proof", "payload")}
    signing_input = canonical.canonicalize(unsigned)
    out = {**raw, "id": hashlib.sha256(signing_input).hexdigest()}
    out["proof"] = {**raw["proof"], "sig": canonical.b64url(key.sign(signing_input))}
    return out


def raw_sign(key: SigningKey, unsigned: dict[str, Any], kid: str | None = None) -> dict[str, Any]:
    """Sign an arbitrary unsigned object without any shape check (for invalid vectors)."""
    signing_input = canonical.canonicalize(unsigned)
    return {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **unsigned,
        "proof": {
            "type": "ed25519-jcs",
            "kid": kid or key.kid,
            "sig": canonical.b64url(key.sign(signing_input)),
        },
    }


def did_for_bytes(public_key: bytes) -> str:
    return "did:key:z" + base58.b58encode(b"\xed\x01" + public_key).decode("ascii")


L = 2**252 + 27742317777372353535851937790883648493


def evaluate(s: Story, after: int | None, data: bytes, now: int) -> tuple[str, str | None]:
    """(stage, error code or None) of ``data`` after story prefix ``after`` at ``now``."""
    try:
        value = strict_json.loads(data)
    except errors.ProtocolError as exc:
        return "parse", exc.code
    try:
        obj = verify(value, now=now, skew=SKEW)
    except errors.ProtocolError as exc:
        return "verify", exc.code
    state = None if after is None else s.states[after]
    try:
        apply(state, obj, now)
    except errors.ProtocolError as exc:
        return "apply", exc.code
    return "apply", None


def build_invalid(s: Story, declined: Story) -> list[dict[str, Any]]:
    """Objects every conforming implementation refuses, each with its error code."""
    acme, alice, mallory = KEYS["acme"], KEYS["alice"], KEYS["mallory"]
    out: list[dict[str, Any]] = []
    inv = s.obj("invitation")
    acc = s.obj("accept")
    m1 = s.obj("message-1")
    t_m1 = s.times[s.index("message-1")]
    last_acme = s.index("message-2")

    def add(
        name: str,
        description: str,
        doc: str | bytes,
        now: int,
        after: str | None = None,
        story: str = "story",
    ) -> None:
        base = declined if story == "story-decline" else s
        idx = None if after is None else base.index(after)
        data = doc.encode("utf-8", "surrogatepass") if isinstance(doc, str) else doc
        stage, code = evaluate(base, idx, data, now)
        assert code is not None, f"invalid vector {name} was accepted"
        entry: dict[str, Any] = {
            "name": name,
            "description": description,
            "story": story,
            "after_step": idx,
            "now": now,
            "expect": {"stage": stage, "error": code},
        }
        try:
            entry["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            entry["bytes_hex"] = data.hex()
        out.append(entry)

    now = s.times[0]
    inv_raw = inv.raw

    def edit(raw: dict[str, Any], fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        new = copy.deepcopy(raw)
        fn(new)
        return new

    # strict JSON
    good = text(inv_raw)
    add("duplicate-key", "a member name twice (top level)", good[:-1] + ',"seq":0}', now)
    add(
        "duplicate-key-nested",
        "a member name twice inside body",
        good.replace('"body":{', '"body":{"kind":"person",', 1),
        now,
    )
    add("nan", "NaN is not JSON", good[:-1] + ',"x":NaN}', now)
    add("infinity", "Infinity is not JSON", good[:-1] + ',"x":-Infinity}', now)
    add("float", "a number with a fraction", good.replace('"seq":0', '"seq":0.0'), now)
    add("float-exponent", "an exponent makes a float", good.replace('"seq":0', '"seq":0e0'), now)
    add(
        "big-int",
        "an integer beyond 2^53-1",
        good.replace(f'"created_time":{now}', '"created_time":9007199254740992'),
        now,
    )
    add("lone-surrogate", "a lone UTF-16 surrogate escape", good[:-1] + ',"x":"\\ud800"}', now)
    add("invalid-utf8", "bytes that are not UTF-8", good.encode()[:-1] + b',"x":"\xff"}', now)
    add("bom", "a UTF-8 byte order mark", b"\xef\xbb\xbf" + good.encode(), now)
    add("trailing-data", "a second value after the object", good + " {}", now)
    add("control-character", "a raw control character in a string", good[:-1] + ',"x":"a\tb"}', now)
    add("deep", "33 levels of nesting (limit 32)", "[" * 33 + "]" * 33, now)
    pad = strict_json.DEFAULT_MAX_BYTES - len(good) - 7 + 1
    add("oversize", "one byte over 64 KiB", good[:-1] + ',"x":"' + "a" * pad + '"}', now)

    # shape and body
    add(
        "unknown-member",
        "a member the envelope does not define",
        text({**inv_raw, "extra": 1}),
        now,
    )
    add(
        "null-member",
        "optional members are omitted, never null",
        text({**inv_raw, "thid": None}),
        now,
    )
    add(
        "unknown-type",
        "a type URI outside the protocol",
        text(
            raw_sign(acme, {**_unsigned(inv_raw), "type": "https://rapport.dev/protocol/1.0/poke"})
        ),
        now,
    )
    add(
        "invalid-body",
        "a body member the type does not define",
        text(raw_sign(acme, {**_unsigned(inv_raw), "body": {**inv_raw["body"], "extra": True}})),
        now,
    )
    add(
        "invalid-period",
        "a rate period in months (no fixed length)",
        text(
            raw_sign(
                acme,
                {
                    **_unsigned(inv_raw),
                    "body": {
                        **inv_raw["body"],
                        "offered": [grant("message", "x", rate={"count": 1, "period": "P1M"})],
                    },
                },
            )
        ),
        now,
    )
    add(
        "invalid-time-zone",
        "quiet hours in an unknown zone",
        text(
            raw_sign(
                acme,
                {
                    **_unsigned(inv_raw),
                    "body": {
                        **inv_raw["body"],
                        "offered": [
                            grant(
                                "message",
                                "x",
                                quiet_hours={
                                    "start": "22:00",
                                    "end": "07:00",
                                    "tz": "Mars/Olympus",
                                },
                            )
                        ],
                    },
                },
            )
        ),
        now,
    )
    add(
        "seq-on-unchained",
        "an invitation with seq 1",
        text(raw_sign(acme, {**_unsigned(inv_raw), "seq": 1})),
        now,
    )
    # identities and keys
    add(
        "bad-did-not-base58",
        "a did:key with a character outside base58btc",
        text(resign({**inv_raw, "from": "did:key:z6Mk0OIl"}, acme)),
        now,
    )
    x25519 = (
        "did:key:z" + base58.b58encode(b"\xec\x01" + bytes(acme.verify_key.public_key)).decode()
    )
    add(
        "bad-did-multicodec",
        "a did:key for an X25519 key (multicodec 0xec01)",
        text(resign({**inv_raw, "from": x25519}, acme)),
        now,
    )
    add(
        "bad-did-method",
        "a did:web sender",
        text(resign({**inv_raw, "from": "did:web:example.com"}, acme)),
        now,
    )
    identity_point = bytes([1] + [0] * 31)
    weak = did_for_bytes(identity_point)
    add(
        "small-order-key",
        "the sender key is the identity point (order 1)",
        text(raw_sign(acme, {**_unsigned(inv_raw), "from": weak}, kid=f"{weak}#{weak[8:]}")),
        now,
    )
    # y = p: a non-canonical encoding (y ≡ 0, a point of order 4)
    noncanon = did_for_bytes(bytes([0xED] + [0xFF] * 30 + [0x7F]))
    add(
        "non-canonical-key",
        "the sender key encodes y = p (non-canonical, small order)",
        text(
            raw_sign(
                acme, {**_unsigned(inv_raw), "from": noncanon}, kid=f"{noncanon}#{noncanon[8:]}"
            )
        ),
        now,
    )
    # proof
    add(
        "wrong-kid",
        "proof.kid names another DID (Mallory's key signed it)",
        text(raw_sign(mallory, _unsigned(inv_raw))),
        now,
    )
    add(
        "malformed-kid",
        "proof.kid fragment is not the DID's multibase value",
        text(edit(inv_raw, lambda r: r["proof"].__setitem__("kid", acme.did + "#key-1"))),
        now,
    )
    add(
        "tampered-body",
        "the body changed after signing (id no longer matches)",
        text(edit(inv_raw, lambda r: r["body"].__setitem__("label", "Acme Coffee Ltd"))),
        now,
    )
    tampered = edit(inv_raw, lambda r: r["body"].__setitem__("label", "Acme Coffee Ltd"))
    unsigned_t = _unsigned(tampered)
    tampered["id"] = hashlib.sha256(canonical.canonicalize(unsigned_t)).hexdigest()
    add(
        "tampered-body-new-id",
        "the body changed and the id recomputed: the signature fails",
        text(tampered),
        now,
    )
    sig = canonical.b64url_decode(inv_raw["proof"]["sig"])
    s_plus_l = (int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little")
    add(
        "signature-s-plus-l",
        "S replaced by S + L (malleated, non-canonical S)",
        text(
            edit(
                inv_raw,
                lambda r: r["proof"].__setitem__("sig", canonical.b64url(sig[:32] + s_plus_l)),
            )
        ),
        now,
    )
    add(
        "signature-truncated",
        "a 63-byte signature",
        text(edit(inv_raw, lambda r: r["proof"].__setitem__("sig", canonical.b64url(sig[:63])))),
        now,
    )
    add(
        "signature-padded-base64",
        "base64url with padding",
        text(edit(inv_raw, lambda r: r["proof"].__setitem__("sig", r["proof"]["sig"] + "=="))),
        now,
    )
    # payload
    add(
        "payload-mismatch",
        "the detached payload differs from body.content_digest",
        text({**m1.raw, "payload": "Your order #1 has been cancelled."}),
        t_m1,
        after="accept",
    )
    # time
    add("clock-skew-future", "created_time 301 s ahead of now", good, now - SKEW - 1)
    add("clock-skew-past", "created_time 301 s behind now", good, now + SKEW + 1)
    short = text(raw_sign(acme, {**_unsigned(inv_raw), "expires_time": now + 60}))
    add("expired", "expires_time has passed (expires_time == now)", short, now + 60)
    # chains
    head = s.objects[last_acme]
    at = s.times[last_acme] + 1

    def acme_obj(seq: int, prev: str | None, body: dict[str, Any] | None = None) -> str:
        return text(
            raw_sign(
                acme,
                {
                    "type": M.GRANT_ISSUE.uri,
                    "from": acme.did,
                    "cid": s.cid,
                    "created_time": at,
                    "seq": seq,
                    **({"prev": prev} if prev else {}),
                    "body": body or {"grant": grant("message", "hello")},
                },
            )
        )

    add("chain-gap", "seq skips one", acme_obj(head.seq + 2, head.id), at, after="message-2")
    add(
        "chain-wrong-prev",
        "prev is not the last id",
        acme_obj(head.seq + 1, m1.id),
        at,
        after="message-2",
    )
    add("replay-seq", "a seq already used", acme_obj(head.seq, m1.id), at, after="message-2")
    add("replay-object", "the same object again", text(head.raw), at, after="message-2")
    # state machine
    add(
        "wrong-connection",
        "cid names another connection",
        text(
            raw_sign(
                acme,
                {
                    **_unsigned(head.raw),
                    "cid": "0" * 32,
                    "seq": head.seq + 1,
                    "prev": head.id,
                    "created_time": at,
                },
            )
        ),
        at,
        after="message-2",
    )
    add(
        "not-a-party",
        "Mallory signs an object for the connection",
        text(
            raw_sign(
                mallory,
                {
                    "type": M.MUTE.uri,
                    "from": mallory.did,
                    "cid": s.cid,
                    "created_time": at,
                    "seq": 1,
                    "body": {},
                },
            )
        ),
        at,
        after="message-2",
    )
    add(
        "grant-exists",
        "a second grant for the same scope and topic: amend instead",
        acme_obj(head.seq + 1, head.id, {"grant": grant("favour", "*")}),
        at,
        after="message-2",
    )
    tm_alice = s.times[s.index("message-2")] + 1

    def alice_obj(mtype: MessageType, body: dict[str, Any], after: str, t: int) -> str:
        idx = s.index(after)
        prev = next(o for o in reversed(s.objects[: idx + 1]) if o.sender == alice.did and o.cid)
        return text(
            raw_sign(
                alice,
                {
                    "type": mtype.uri,
                    "from": alice.did,
                    "cid": s.cid,
                    "created_time": t,
                    "seq": prev.seq + 1,
                    "prev": prev.id,
                    "body": body,
                },
            )
        )

    add(
        "grant-conflict",
        "amend names a grant already superseded (compare-and-swap fails)",
        alice_obj(
            M.GRANT_AMEND,
            {"replaces": f"{acc.id}.0", "grant": grant("message", "orders")},
            "message-2",
            tm_alice,
        ),
        tm_alice,
        after="message-2",
    )
    add(
        "grant-not-found",
        "revoke a grant that is not the sender's",
        alice_obj(M.GRANT_REVOKE, {"grant_id": f"{inv.id}.0"}, "message-2", tm_alice),
        tm_alice,
        after="message-2",
    )
    add(
        "amend-changes-topic",
        "an amendment may not change scope or topic",
        alice_obj(
            M.GRANT_AMEND,
            {"replaces": s.obj("grant-amend").id, "grant": grant("message", "other")},
            "message-2",
            tm_alice,
        ),
        tm_alice,
        after="message-2",
    )
    add(
        "mute-not-found",
        "unmute with no mute in force",
        alice_obj(M.UNMUTE, {}, "message-2", tm_alice),
        tm_alice,
        after="message-2",
    )
    add(
        "mute-in-the-past",
        "a mute whose until has passed",
        alice_obj(M.MUTE, {"until": tm_alice - 1}, "message-2", tm_alice),
        tm_alice,
        after="message-2",
    )
    add(
        "favour-not-found",
        "a step naming no favour",
        alice_obj(M.FAVOUR_ACCEPT, {"favour": "f" * 64}, "message-2", tm_alice),
        tm_alice,
        after="message-2",
    )
    t_fr = s.times[s.index("favour-request")] + 1
    add(
        "favour-wrong-actor",
        "the requester may not accept its own request",
        text(
            raw_sign(
                acme,
                {
                    "type": M.FAVOUR_ACCEPT.uri,
                    "from": acme.did,
                    "cid": s.cid,
                    "created_time": t_fr,
                    "seq": s.obj("favour-request").seq + 1,
                    "prev": s.obj("favour-request").id,
                    "body": {"favour": s.obj("favour-request").id},
                },
            )
        ),
        t_fr,
        after="favour-request",
    )
    add(
        "favour-invalid-transition",
        "fulfil a favour that was only requested",
        alice_obj(M.FAVOUR_FULFIL, {"favour": s.obj("favour-request").id}, "favour-request", t_fr),
        t_fr,
        after="favour-request",
    )
    t_ret = s.times[s.index("favour-withdraw")] + 1
    add(
        "favour-return-twice",
        "return_of a favour already returned",
        alice_obj(
            M.FAVOUR_REQUEST,
            {"kind": "sample", "description": "again", "return_of": s.obj("favour-request").id},
            "favour-withdraw",
            t_ret,
        ),
        t_ret,
        after="favour-withdraw",
    )
    t_ack = s.times[s.index("favour-fulfil")] + 1
    add(
        "favour-return-of-open",
        "return_of names a favour the requester asked for, not one it did",
        text(
            raw_sign(
                acme,
                {
                    "type": M.FAVOUR_REQUEST.uri,
                    "from": acme.did,
                    "cid": s.cid,
                    "created_time": t_ack,
                    "seq": s.obj("favour-request").seq + 1,
                    "prev": s.obj("favour-request").id,
                    "body": {
                        "kind": "x",
                        "description": "y",
                        "return_of": s.obj("favour-request").id,
                    },
                },
            )
        ),
        t_ack,
        after="favour-fulfil",
    )
    # invitations
    t_late = (inv.expires_time or 0) + 1
    late_accept = text(
        raw_sign(
            alice,
            {**_unsigned(acc.raw), "created_time": t_late},
        )
    )
    add(
        "invitation-expired",
        "accept after the invitation expired",
        late_accept,
        t_late,
        after="invitation",
    )
    self_cid = derive_cid(inv.id, acme.did)
    add(
        "invitation-not-for-you",
        "the inviter accepts its own invitation",
        text(raw_sign(acme, {**_unsigned(acc.raw), "from": acme.did, "cid": self_cid})),
        s.times[1],
        after="invitation",
    )
    add(
        "accept-wrong-cid",
        "accept with a cid not derived from invitation and acceptor",
        text(raw_sign(alice, {**_unsigned(acc.raw), "cid": derive_cid(inv.id, mallory.did)})),
        s.times[1],
        after="invitation",
    )
    add(
        "accept-twice",
        "accept an invitation that is already accepted",
        text(acc.raw),
        s.times[1] + 1,
        after="accept",
    )
    t_end = s.times[-1] + 1
    add(
        "after-sever",
        "any object after sever",
        text(
            raw_sign(
                acme,
                {
                    "type": M.MUTE.uri,
                    "from": acme.did,
                    "cid": s.cid,
                    "created_time": t_end,
                    "seq": s.chains[0].seq + 1,
                    "prev": s.chains[0].prev,
                    "body": {},
                },
            )
        ),
        t_end,
        after="sever",
    )
    add(
        "old-key-after-rotation",
        "the rotated-away key is no longer a party",
        text(
            raw_sign(
                alice,
                {
                    "type": M.MUTE.uri,
                    "from": alice.did,
                    "cid": s.cid,
                    "created_time": s.times[-1],
                    "seq": s.objects[-1].seq,
                    "prev": s.objects[-1].prev,
                    "body": {},
                },
            )
        ),
        s.times[-1],
        after="key-rotation",
    )
    d_inv = declined.obj("invitation")
    d_no = declined.obj("decline")
    t_d = declined.times[-1] + 1
    add(
        "accept-after-decline",
        "accept an invitation already declined (same acceptor, next seq)",
        text(
            raw_sign(
                mallory,
                {
                    "type": M.ACCEPT.uri,
                    "from": mallory.did,
                    "cid": declined.cid,
                    "thid": d_inv.id,
                    "created_time": t_d,
                    "seq": 2,
                    "prev": d_no.id,
                    "body": {"invitation": d_inv.id, "label": "Mallory", "kind": "person"},
                },
            )
        ),
        t_d,
        after="decline",
        story="story-decline",
    )
    return out


def _unsigned(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in ("id", "proof", "payload")}


# --- files -------------------------------------------------------------------------------


def render() -> dict[str, bytes]:
    """Every vector file, by path relative to the repository root."""
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
