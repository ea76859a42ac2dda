"""Every committed vector, through rapport_protocol and through independent code.

Independent path: our own RFC 8785 implementation (tests/spec/reference_jcs.py), SHA-256
from hashlib, did:key decoding with base58 alone, and Ed25519 from pyca/cryptography
(OpenSSL) — none of which ``rapport_protocol`` uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import base58
import pytest
import rapport_client
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from rapport_protocol import SigningKey, apply, decide, errors, parse, strict_json, verify_log
from rapport_protocol.decision import Allowed, Refused
from rapport_protocol.envelope import verify
from rapport_protocol.state import ConnectionState

from . import reference_jcs
from .conftest import generator, vectors

STORY = vectors("story")
STORIES = {"story": STORY, "story-decline": vectors("story-decline")}
DECIDE = vectors("decide")
INVALID = vectors("invalid")
KEYS = vectors("keys")
SKEW = STORY["clock_skew_seconds"]


def _unsigned(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in ("id", "proof", "payload")}


def _public_key_of(did: str) -> bytes:
    """did:key → raw Ed25519 key, decoded without rapport_protocol."""
    assert did.startswith("did:key:z6Mk")
    raw = base58.b58decode(did[len("did:key:z") :])
    assert raw[:2] == b"\xed\x01" and len(raw) == 34
    return raw[2:]


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _independent_check(raw: dict[str, Any]) -> bytes:
    """Canonical bytes, id and signature of ``raw``, checked without rapport_protocol."""
    signing_input = reference_jcs.canonicalize(_unsigned(raw))
    assert hashlib.sha256(signing_input).hexdigest() == raw["id"]
    assert raw["proof"]["kid"] == raw["from"] + "#" + raw["from"][len("did:key:") :]
    key = Ed25519PublicKey.from_public_bytes(_public_key_of(raw["from"]))
    key.verify(_b64url(raw["proof"]["sig"]), signing_input)  # raises InvalidSignature
    if "payload" in raw:
        data = raw["payload"].encode("utf-8")
        assert hashlib.sha256(data).hexdigest() == raw["body"]["content_digest"]
        assert len(data) == raw["body"]["content_length"]
    return signing_input


# --- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KEYS["parties"]))
def test_seed_gives_documented_key_and_did(name: str) -> None:
    party = KEYS["parties"][name]
    seed = bytes.fromhex(party["seed_hex"])
    assert seed == hashlib.sha256(f"rapport-vectors/{name}".encode()).digest()
    public = (
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    )  # pyca derivation
    assert public.hex() == party["public_key_hex"]
    expected_did = "did:key:z" + base58.b58encode(b"\xed\x01" + public).decode()
    assert party["did"] == expected_did
    assert party["kid"] == f"{expected_did}#{expected_did[8:]}"
    assert SigningKey.from_seed(seed).did == expected_did


# --- the story ---------------------------------------------------------------------------


@pytest.mark.parametrize("story", sorted(STORIES))
def test_story_objects_verify_independently_and_match_expected_bytes(story: str) -> None:
    checked = 0
    for step in STORIES[story]["steps"]:
        raw = step["object"]
        signing_input = _independent_check(raw)
        assert signing_input == step["expect"]["signing_input"].encode("utf-8")
        assert raw["id"] == step["expect"]["id"]
        checked += 1
    assert checked == len(STORIES[story]["steps"]) >= 2


def test_stories_cover_every_message_type() -> None:
    from rapport_protocol.types import MessageType

    seen = {step["object"]["type"] for story in STORIES.values() for step in story["steps"]}
    assert seen == {t.uri for t in MessageType}


@pytest.mark.parametrize(("story", "final"), [("story", "severed"), ("story-decline", "declined")])
def test_story_replays_to_the_expected_states(story: str, final: str) -> None:
    summarise = generator("gen_spec_vectors").summarise
    state: ConnectionState | None = None
    for step in STORIES[story]["steps"]:
        text = json.dumps(step["object"], ensure_ascii=False)
        obj = parse(text, now=step["received_time"], skew=SKEW)
        assert obj.id == step["expect"]["id"]
        state = apply(state, obj, step["received_time"])
        assert summarise(state, step["received_time"]) == step["expect"]["state"], step["name"]
    assert state is not None and state.status == final


def test_story_chains_and_cid_follow_the_spec_rules() -> None:
    """Recompute cid and the per-role chains from the objects alone (spec §9, §10.2)."""
    steps = [s["object"] for s in STORY["steps"]]
    invitation, accept = steps[0], steps[1]
    cid = hashlib.sha256(f"{invitation['id']}|{accept['from']}".encode()).hexdigest()[:32]
    assert STORY["cid"] == cid
    role_of = {invitation["from"]: 0, accept["from"]: 1}
    heads: dict[int, tuple[int, str | None]] = {0: (0, None), 1: (0, None)}
    for raw in steps:
        if raw["type"].endswith("/key-rotation"):
            role_of[raw["body"]["new_key"]] = role_of.pop(raw["from"])
            continue
        if "cid" not in raw:
            assert raw["seq"] == 0 and "prev" not in raw
            continue
        assert raw["cid"] == cid
        role = role_of[raw["from"]]
        seq, last = heads[role]
        assert raw["seq"] == seq + 1 and raw.get("prev") == last
        heads[role] = (raw["seq"], raw["id"])


@pytest.mark.parametrize("verifier", ["protocol", "sdk"])
def test_story_is_a_verifiable_log(verifier: str) -> None:
    entries = [(s["object"], s["received_time"]) for s in STORY["steps"]]
    check = verify_log if verifier == "protocol" else rapport_client.verify_log
    result = check(entries)
    assert result.count == len(entries)
    assert result.state.status == "severed"


def test_story_log_with_a_duplicate_is_refused_as_replay() -> None:
    entries = [(s["object"], s["received_time"]) for s in STORY["steps"]]
    entries.insert(3, entries[2])
    with pytest.raises(errors.Replayed):
        verify_log(entries)


# --- decide() ----------------------------------------------------------------------------


def _state_after(step: int, story: str = "story") -> ConnectionState:
    state: ConnectionState | None = None
    for entry in STORIES[story]["steps"][: step + 1]:
        state = apply(state, verify(entry["object"]), entry["received_time"])
    assert state is not None
    return state


@pytest.mark.parametrize("case", DECIDE["cases"], ids=lambda c: c["name"])
def test_decide_case(case: dict[str, Any]) -> None:
    state = _state_after(case["after_step"])
    for entry in case["setup"]:
        _independent_check(entry["object"])
        state = apply(state, verify(entry["object"]), entry["received_time"])
    _independent_check(case["object"])
    verdict = decide(state, verify(case["object"]), case["now"])
    expect = case["expect"]
    if expect["result"] == "allowed":
        assert isinstance(verdict, Allowed)
        assert (verdict.grant_id, verdict.held, verdict.release_time) == (
            expect["grant_id"],
            expect["held"],
            expect["release_time"],
        )
    else:
        assert isinstance(verdict, Refused)
        assert (verdict.code, verdict.retry_after, verdict.muted_until) == (
            expect["code"],
            expect["retry_after"],
            expect["muted_until"],
        )


def test_decide_cases_cover_every_refusal_code() -> None:
    from rapport_protocol.decision import REFUSAL_CODES

    codes = {c["expect"].get("code") for c in DECIDE["cases"]}
    assert set(REFUSAL_CODES) <= codes
    assert any(c["expect"]["result"] == "allowed" and c["expect"]["held"] for c in DECIDE["cases"])


# --- invalid objects ---------------------------------------------------------------------


def _data(case: dict[str, Any]) -> bytes:
    if "bytes_hex" in case:
        return bytes.fromhex(case["bytes_hex"])
    return case["text"].encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("case", INVALID["cases"], ids=lambda c: c["name"])
def test_invalid_case_is_refused_with_its_code(case: dict[str, Any]) -> None:
    data = _data(case)
    expect = case["expect"]
    stage = "parse"
    try:
        value = strict_json.loads(data)
        stage = "verify"
        obj = verify(value, now=case["now"], skew=SKEW)
        stage = "apply"
        after = case["after_step"]
        state = None if after is None else _state_after(after, case["story"])
        apply(state, obj, case["now"])
    except errors.ProtocolError as exc:
        assert (stage, exc.code) == (expect["stage"], expect["error"])
        assert errors.ERRORS_BY_CODE[exc.code] is type(exc)
    else:
        pytest.fail(f"{case['name']} was accepted")


SIGNATURE_CASES = ("tampered-body-new-id", "signature-s-plus-l", "signature-truncated")


@pytest.mark.parametrize("name", SIGNATURE_CASES)
def test_invalid_signatures_are_refused_by_openssl_too(name: str) -> None:
    case = next(c for c in INVALID["cases"] if c["name"] == name)
    raw = json.loads(case["text"])
    with pytest.raises(InvalidSignature):
        _independent_check(raw)


def test_invalid_vectors_cover_the_verification_errors() -> None:
    codes = {c["expect"]["error"] for c in INVALID["cases"]}
    required = {
        "json_duplicate_key",
        "json_non_finite",
        "json_float_forbidden",
        "json_integer_out_of_range",
        "json_too_large",
        "json_too_deep",
        "json_lone_surrogate",
        "json_invalid_utf8",
        "invalid_did",
        "weak_public_key",
        "invalid_kid",
        "kid_mismatch",
        "id_mismatch",
        "bad_signature",
        "payload_mismatch",
        "clock_skew",
        "object_expired",
        "chain_broken",
        "replayed",
        "grant_conflict",
    }
    assert required <= codes


# Codes no vector can show: family bases never raised themselves, and server-only codes
# (they need server records: invitation uses, blocks).
UNVECTORED = {
    "protocol_error",
    "not_permitted",
    "invitation_used",
    "reinvite_blocked",
}


def test_every_other_error_code_has_a_vector() -> None:
    shown = {c["expect"]["error"] for c in INVALID["cases"]}
    shown |= {c["expect"]["code"] for c in DECIDE["cases"] if c["expect"]["result"] == "refused"}
    assert set(errors.ERRORS_BY_CODE) - shown == UNVECTORED
