"""Invalid-object vectors: spec/vectors/invalid.json (see gen_spec_vectors.py).

Each case is built from a valid object of the story by one deliberate fault, re-signed where
needed so that only the fault is wrong; its expected stage and error code are computed by
``rapport_protocol`` (and re-checked by tests/spec).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import base58
from gen_spec_vectors import KEYS, SKEW, Story, grant
from rapport_protocol import apply, canonical, errors, strict_json
from rapport_protocol.envelope import verify
from rapport_protocol.identity import SigningKey
from rapport_protocol.state import derive_cid
from rapport_protocol.types import TYPE_PREFIX, MessageType

M = MessageType
# The order of the Ed25519 group (RFC 8032 §5.1).
L = 2**252 + 27742317777372353535851937790883648493
_UNSIGNED = ("id", "proof", "payload")


def text(value: Any) -> str:
    """Compact JSON text of a value, members in the order built (not canonical)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def unsigned(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in _UNSIGNED}


def forge(key: SigningKey, fields: dict[str, Any], kid: str | None = None) -> dict[str, Any]:
    """Sign arbitrary unsigned ``fields`` with no shape check (the fault must survive)."""
    signing_input = canonical.canonicalize(fields)
    return {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **fields,
        "proof": {
            "type": "ed25519-jcs",
            "kid": kid or key.kid,
            "sig": canonical.b64url(key.sign(signing_input)),
        },
    }


def edited(raw: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A deep copy of ``raw`` with ``change`` applied and nothing re-signed."""
    new = copy.deepcopy(raw)
    change(new)
    return new


def did_for_bytes(public_key: bytes) -> str:
    return "did:key:z" + base58.b58encode(b"\xed\x01" + public_key).decode("ascii")


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
    try:
        apply(None if after is None else s.states[after], obj, now)
    except errors.ProtocolError as exc:
        return "apply", exc.code
    return "apply", None


class Cases:
    """Collects cases, computing each one's expected stage and code."""

    def __init__(self, stories: dict[str, Story]) -> None:
        self.stories = stories
        self.cases: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        description: str,
        doc: str | bytes,
        now: int,
        after: str | None = None,
        story: str = "story",
    ) -> None:
        base = self.stories[story]
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
        self.cases.append(entry)


def chain_fields(
    s: Story, after: str, key_name: str, mtype: MessageType, body: dict[str, Any], at: int
) -> dict[str, Any]:
    """Unsigned fields of the next object of ``key_name``'s role chain after step ``after``."""
    key = KEYS[key_name]
    role = 0 if key.did == s.states[0].dids[0] else 1
    head = s.states[s.index(after)].heads[role]
    fields: dict[str, Any] = {
        "type": mtype.uri,
        "from": key.did,
        "cid": s.cid,
        "created_time": at,
        "seq": head.seq + 1,
        "body": body,
    }
    if head.last is not None:
        fields["prev"] = head.last
    return fields


def next_in_chain(
    s: Story, after: str, key_name: str, mtype: MessageType, body: dict[str, Any], at: int
) -> str:
    """The text of the next object of ``key_name``'s role chain after step ``after``."""
    return text(forge(KEYS[key_name], chain_fields(s, after, key_name, mtype, body, at)))


def strict_json_cases(c: Cases, good: str, now: int) -> None:
    c.add("duplicate-key", "a member name twice (top level)", good[:-1] + ',"seq":0}', now)
    nested = good.replace('"body":{', '"body":{"kind":"person",', 1)
    c.add("duplicate-key-nested", "a member name twice inside body", nested, now)
    c.add("nan", "NaN is not JSON", good[:-1] + ',"x":NaN}', now)
    c.add("infinity", "Infinity is not JSON", good[:-1] + ',"x":-Infinity}', now)
    c.add("float", "a number with a fraction", good.replace('"seq":0', '"seq":0.0'), now)
    c.add("float-exponent", "an exponent makes a float", good.replace('"seq":0', '"seq":0e0'), now)
    big = good.replace(f'"created_time":{now}', '"created_time":9007199254740992')
    c.add("big-int", "an integer beyond 2^53-1", big, now)
    c.add("lone-surrogate", "a lone UTF-16 surrogate escape", good[:-1] + ',"x":"\\ud800"}', now)
    c.add("invalid-utf8", "bytes that are not UTF-8", good.encode()[:-1] + b',"x":"\xff"}', now)
    c.add("bom", "a UTF-8 byte order mark", b"\xef\xbb\xbf" + good.encode(), now)
    c.add("trailing-data", "a second value after the object", good + " {}", now)
    c.add("control-character", "a raw tab inside a string", good[:-1] + ',"x":"a\tb"}', now)
    c.add("deep", "33 levels of nesting (limit 32)", "[" * 33 + "]" * 33, now)
    pad = strict_json.DEFAULT_MAX_BYTES - len(good) - 7 + 1
    c.add("oversize", "one byte over 64 KiB", good[:-1] + ',"x":"' + "a" * pad + '"}', now)


def object_cases(c: Cases, s: Story) -> None:
    """Shape, identity, proof, payload and time faults (the verify stage)."""
    acme, mallory = KEYS["acme"], KEYS["mallory"]
    inv = s.obj("invitation").raw
    now = s.times[0]

    def variant(**changes: Any) -> str:
        return text(forge(acme, {**unsigned(inv), **changes}))

    def offered(spec: dict[str, Any]) -> str:
        return variant(body={**inv["body"], "offered": [spec]})

    c.add("unknown-member", "a member the envelope does not define", text({**inv, "x": 1}), now)
    c.add(
        "null-member", "optional members are omitted, never null", text({**inv, "thid": None}), now
    )
    c.add(
        "unknown-type", "a type URI outside the protocol", variant(type=TYPE_PREFIX + "poke"), now
    )
    c.add(
        "invalid-body",
        "a body member the type does not define",
        variant(body={**inv["body"], "x": True}),
        now,
    )
    c.add(
        "invalid-period",
        "a rate period in months (no fixed length)",
        offered(grant("message", "x", rate={"count": 1, "period": "P1M"})),
        now,
    )
    quiet = {"start": "22:00", "end": "07:00", "tz": "Mars/Olympus"}
    c.add(
        "invalid-time-zone",
        "quiet hours in an unknown zone",
        offered(grant("message", "x", quiet_hours=quiet)),
        now,
    )
    c.add(
        "period-trailing-newline",
        "a rate period followed by a newline (a regex $ would match before it)",
        offered(grant("message", "x", rate={"count": 1, "period": "P1D\n"})),
        now,
    )
    c.add(
        "period-non-ascii-digit",
        "a rate period with an Arabic-Indic digit one (only ASCII digits are digits)",
        offered(grant("message", "x", rate={"count": 1, "period": "P\u0661D"})),
        now,
    )
    c.add(
        "time-zone-directory",
        "quiet hours in 'Europe', a directory of the zone database, not a zone",
        offered(grant("message", "x", quiet_hours={**quiet, "tz": "Europe"})),
        now,
    )
    london = {"start": "22:00", "end": "07:00", "tz": "Europe/London"}
    c.add(
        "quiet-hours-non-ascii-digit",
        "quiet hours starting at Arabic-Indic '22:00' (only ASCII HH:MM)",
        offered(grant("message", "x", quiet_hours={**london, "start": "\u0662\u0662:00"})),
        now,
    )
    c.add(
        "null-in-body",
        "an optional body member written as null instead of omitted",
        variant(body={**inv["body"], "goal": None}),
        now,
    )
    c.add(
        "null-in-nested-body",
        "null for an optional member of a grant spec inside the body",
        offered(grant("message", "x", purpose=None)),
        now,
    )
    c.add("seq-on-unchained", "an invitation with seq 1", variant(seq=1), now)

    def signed_by(did: str) -> str:
        return text(forge(acme, {**unsigned(inv), "from": did}, kid=f"{did}#{did[8:]}"))

    c.add(
        "bad-did-not-base58",
        "a did:key with characters outside base58btc",
        signed_by("did:key:z6Mk0OIl"),
        now,
    )
    x25519 = "did:key:z" + base58.b58encode(b"\xec\x01" + acme.verify_key.public_key).decode()
    c.add(
        "bad-did-multicodec",
        "a did:key for an X25519 key (multicodec 0xec01)",
        signed_by(x25519),
        now,
    )
    c.add("bad-did-method", "a did:web sender", variant(**{"from": "did:web:example.com"}), now)
    c.add(
        "small-order-key",
        "the sender key is the identity point (order 1)",
        signed_by(did_for_bytes(bytes([1] + [0] * 31))),
        now,
    )
    c.add(
        "non-canonical-key",
        "the sender key encodes y = p (non-canonical encoding of a point of order 4)",
        signed_by(did_for_bytes(bytes([0xED] + [0xFF] * 30 + [0x7F]))),
        now,
    )
    c.add(
        "wrong-kid",
        "proof.kid names another DID (Mallory signed)",
        text(forge(mallory, unsigned(inv))),
        now,
    )

    def proof(**changes: str) -> str:
        return text(edited(inv, lambda r: r["proof"].update(changes)))

    c.add(
        "malformed-kid",
        "proof.kid's fragment is not the DID's multibase value",
        proof(kid=acme.did + "#key-1"),
        now,
    )
    relabel = edited(inv, lambda r: r["body"].update(label="Acme Coffee Ltd"))
    c.add(
        "tampered-body", "the body changed after signing (id no longer matches)", text(relabel), now
    )
    relabel["id"] = hashlib.sha256(canonical.canonicalize(unsigned(relabel))).hexdigest()
    c.add(
        "tampered-body-new-id",
        "the body changed and the id recomputed: the signature fails",
        text(relabel),
        now,
    )
    sig = canonical.b64url_decode(inv["proof"]["sig"])
    s_plus_l = (int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little")
    c.add(
        "signature-s-plus-l",
        "S replaced by S + L (malleated, non-canonical S)",
        proof(sig=canonical.b64url(sig[:32] + s_plus_l)),
        now,
    )
    c.add("signature-truncated", "a 63-byte signature", proof(sig=canonical.b64url(sig[:63])), now)
    c.add(
        "signature-padded-base64",
        "base64url with padding",
        proof(sig=inv["proof"]["sig"] + "=="),
        now,
    )
    m1 = s.obj("message-1").raw
    other = {**m1, "payload": "Your order #1 has been cancelled."}
    c.add(
        "payload-mismatch",
        "the detached payload differs from body.content_digest",
        text(other),
        s.times[2],
        after="accept",
    )
    good = text(inv)
    c.add("clock-skew-future", "created_time 301 s ahead of now", good, now - SKEW - 1)
    c.add("clock-skew-past", "created_time 301 s behind now", good, now + SKEW + 1)
    c.add(
        "expired",
        "expires_time has passed (expires_time == now)",
        variant(expires_time=now + 60),
        now + 60,
    )


def chain_and_state_cases(c: Cases, s: Story, declined: Story) -> None:
    """Faults only the chain or the state machine can see (the apply stage)."""
    acme, alice, mallory = KEYS["acme"], KEYS["alice"], KEYS["mallory"]
    inv, acc = s.obj("invitation"), s.obj("accept")
    head = s.obj("message-2")
    at = s.times[s.index("message-2")] + 1
    hello = {"grant": grant("message", "hello")}

    def acme_at(seq: int, prev: str | None, body: dict[str, Any] = hello, **extra: Any) -> str:
        fields = {
            "type": M.GRANT_ISSUE.uri,
            "from": acme.did,
            "cid": s.cid,
            "created_time": at,
            "seq": seq,
            "body": body,
        }
        return text(forge(acme, {**fields, **({"prev": prev} if prev else {}), **extra}))

    after2: dict[str, Any] = {"after": "message-2"}
    c.add("chain-gap", "seq skips one", acme_at(head.seq + 2, head.id), at, **after2)
    c.add(
        "chain-wrong-prev",
        "prev is not the last id (a fork)",
        acme_at(head.seq + 1, s.obj("message-1").id),
        at,
        **after2,
    )
    c.add(
        "replay-seq", "a seq already used", acme_at(head.seq, s.obj("message-1").id), at, **after2
    )
    c.add("replay-object", "the same object again", text(head.raw), at, **after2)
    c.add(
        "wrong-connection",
        "cid names another connection",
        acme_at(head.seq + 1, head.id, cid="0" * 32),
        at,
        **after2,
    )
    outsider: dict[str, Any] = {
        "type": M.MUTE.uri,
        "from": mallory.did,
        "cid": s.cid,
        "created_time": at,
        "seq": 1,
        "body": {},
    }
    c.add(
        "not-a-party",
        "Mallory signs an object for the connection",
        text(forge(mallory, outsider)),
        at,
        **after2,
    )
    c.add(
        "grant-exists",
        "a second grant for one scope and topic: amend instead",
        acme_at(head.seq + 1, head.id, {"grant": grant("favour", "*")}),
        at,
        **after2,
    )

    def alice_next(
        mtype: MessageType, body: dict[str, Any], after: str, key: str = "alice"
    ) -> tuple[str, int]:
        t = s.times[s.index(after)] + 1
        return next_in_chain(s, after, key, mtype, body, t), t

    def alice_case(
        name: str,
        description: str,
        mtype: MessageType,
        body: dict[str, Any],
        after: str = "message-2",
    ) -> None:
        doc, t = alice_next(mtype, body, after)
        c.add(name, description, doc, t, after=after)

    orders_v1 = f"{acc.id}.0"
    alice_case(
        "grant-conflict",
        "amend names a grant already superseded (compare-and-swap fails)",
        M.GRANT_AMEND,
        {"replaces": orders_v1, "grant": grant("message", "orders")},
    )
    alice_case(
        "grant-not-found",
        "revoke a grant that is not the sender's",
        M.GRANT_REVOKE,
        {"grant_id": f"{inv.id}.0"},
    )
    alice_case(
        "amend-changes-topic",
        "an amendment may not change scope or topic",
        M.GRANT_AMEND,
        {"replaces": s.obj("grant-amend").id, "grant": grant("message", "other")},
    )
    alice_case("mute-not-found", "unmute with no mute in force", M.UNMUTE, {})
    t_mute = s.times[s.index("message-2")] + 1
    alice_case("mute-in-the-past", "a mute whose until has passed", M.MUTE, {"until": t_mute - 1})
    alice_case("favour-not-found", "a step naming no favour", M.FAVOUR_ACCEPT, {"favour": "f" * 64})
    fav = s.obj("favour-request")
    doc = next_in_chain(
        s,
        "favour-request",
        "acme",
        M.FAVOUR_ACCEPT,
        {"favour": fav.id},
        s.times[s.index("favour-request")] + 1,
    )
    c.add(
        "favour-wrong-actor",
        "the requester may not accept its own request",
        doc,
        s.times[s.index("favour-request")] + 1,
        after="favour-request",
    )
    alice_case(
        "favour-invalid-transition",
        "fulfil a favour that was only requested",
        M.FAVOUR_FULFIL,
        {"favour": fav.id},
        after="favour-request",
    )
    alice_case(
        "favour-return-twice",
        "return_of a favour already returned",
        M.FAVOUR_REQUEST,
        {"kind": "sample", "description": "again", "return_of": fav.id},
        after="favour-withdraw",
    )
    t_f = s.times[s.index("favour-fulfil")] + 1
    doc = next_in_chain(
        s,
        "favour-fulfil",
        "acme",
        M.FAVOUR_REQUEST,
        {"kind": "x", "description": "y", "return_of": fav.id},
        t_f,
    )
    c.add(
        "favour-return-of-own-ask",
        "return_of names a favour the requester asked for, not one it did",
        doc,
        t_f,
        after="favour-fulfil",
    )

    late = (inv.expires_time or 0) + 1
    c.add(
        "invitation-expired",
        "accept after the invitation expired",
        text(forge(alice, {**unsigned(acc.raw), "created_time": late})),
        late,
        after="invitation",
    )
    d_inv = declined.obj("invitation")
    body = {"invitation": d_inv.id, "label": "Alice", "kind": "person"}
    stranger = {
        "type": M.ACCEPT.uri,
        "from": alice.did,
        "cid": derive_cid(d_inv.id, alice.did),
        "thid": d_inv.id,
        "created_time": declined.times[0] + 1,
        "seq": 1,
        "body": body,
    }
    c.add(
        "accept-not-addressed",
        "Alice accepts an invitation addressed (to) to Mallory only",
        text(forge(alice, stranger)),
        declined.times[0] + 1,
        after="invitation",
        story="story-decline",
    )
    own = {**unsigned(acc.raw), "from": acme.did, "cid": derive_cid(inv.id, acme.did)}
    c.add(
        "invitation-not-for-you",
        "the inviter accepts its own invitation",
        text(forge(acme, own)),
        s.times[1],
        after="invitation",
    )
    bad_cid = {**unsigned(acc.raw), "cid": derive_cid(inv.id, mallory.did)}
    c.add(
        "accept-wrong-cid",
        "accept with a cid not derived from invitation and acceptor",
        text(forge(alice, bad_cid)),
        s.times[1],
        after="invitation",
    )
    c.add(
        "accept-twice",
        "accept an invitation already accepted",
        text(acc.raw),
        s.times[1] + 1,
        after="accept",
    )
    t_end = s.times[-1] + 1
    doc = next_in_chain(s, "sever", "acme", M.MUTE, {}, t_end)
    c.add("after-sever", "any object after sever", doc, t_end, after="sever")
    t_rot = s.times[s.index("key-rotation")] + 1
    doc = next_in_chain(s, "key-rotation", "alice", M.MUTE, {}, t_rot)
    c.add(
        "old-key-after-rotation",
        "the rotated-away key is no longer a party",
        doc,
        t_rot,
        after="key-rotation",
    )
    t_d = declined.times[-1] + 1
    d_inv = declined.obj("invitation")
    body = {"invitation": d_inv.id, "label": "Mallory", "kind": "person"}
    again = {**chain_fields(declined, "decline", "mallory", M.ACCEPT, body, t_d), "thid": d_inv.id}
    c.add(
        "accept-after-decline",
        "accept an invitation already declined (same acceptor, next seq)",
        text(forge(mallory, again)),
        t_d,
        after="decline",
        story="story-decline",
    )


def build_invalid(s: Story, declined: Story) -> list[dict[str, Any]]:
    """Objects every conforming implementation refuses, each with its stage and code."""
    c = Cases({"story": s, "story-decline": declined})
    strict_json_cases(c, text(s.obj("invitation").raw), s.times[0])
    object_cases(c, s)
    chain_and_state_cases(c, s, declined)
    return c.cases
