"""Published vectors through every verification path we have.

- RFC 8785 test data (cyberphone/json-canonicalization): ``rapport_protocol.canonical`` and
  our reference JCS must both produce the expected bytes.
- Wycheproof and CCTV Ed25519: ``VerifyKey.verify`` (the one signature check the protocol,
  the server, the SDK's log verifier and its webhook verifier all use), the DID path
  (``parse_did``), the envelope path (``envelope.verify``) and the SDK's offline log
  verifier (``rapport_client.verify_log``). The server path is in test_server_path.py.

Policy (spec §8): accept exactly when the key is a canonical prime-order-subgroup point and
the signature satisfies the strict cofactorless check. In CCTV terms, a vector is accepted
if and only if it carries no flag; in Wycheproof terms, exactly the ``valid`` tests.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import base58
import pytest
import rapport_client
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rapport_protocol import canonical, errors
from rapport_protocol.envelope import verify
from rapport_protocol.identity import VerifyKey, parse_did
from rapport_protocol.types import MessageType

from . import reference_jcs
from .conftest import VECTORS

EXTERNAL = VECTORS / "external"
JCS_NAMES = sorted(p.name for p in (EXTERNAL / "jcs" / "input").glob("*.json"))
WYCHEPROOF = json.loads((EXTERNAL / "ed25519" / "wycheproof_ed25519_test.json").read_text())
CCTV: list[dict[str, Any]] = json.loads(
    (EXTERNAL / "ed25519" / "cctv_ed25519vectors.json").read_text()
)


def test_licences_travel_with_the_vectors() -> None:
    for name in ("jcs/LICENSE", "ed25519/LICENSE-wycheproof", "ed25519/LICENSE-cctv"):
        assert (EXTERNAL / name).read_text().strip()
    assert len(JCS_NAMES) == 6


@pytest.mark.parametrize("name", JCS_NAMES)
def test_jcs_vector_canonicalises_to_expected_bytes(name: str) -> None:
    # Plain json: the inputs contain floats, which strict_json refuses in signed objects.
    value = json.loads((EXTERNAL / "jcs" / "input" / name).read_text(encoding="utf-8"))
    expected = (EXTERNAL / "jcs" / "output" / name).read_bytes()
    assert canonical.canonicalize(value) == expected
    assert reference_jcs.canonicalize(value) == expected


# --- Ed25519 -----------------------------------------------------------------------------


def our_verdict(public_key: bytes, message: bytes, signature: bytes) -> bool | str:
    """True/False from ``VerifyKey.verify``, or the error code when the key is refused."""
    try:
        key = VerifyKey(public_key)
    except errors.ProtocolError as exc:
        return exc.code
    return key.verify(message, signature)


def did_for(public_key: bytes) -> str:
    return "did:key:z" + base58.b58encode(b"\xed\x01" + public_key).decode("ascii")


def did_verdict(public_key: bytes) -> str | None:
    """The error code ``parse_did`` gives the key's did:key, or None when accepted."""
    try:
        parse_did(did_for(public_key))
    except errors.ProtocolError as exc:
        return exc.code
    return None


def envelope_object(public_key: bytes, signature: bytes) -> dict[str, Any]:
    """An invitation 'from' this key carrying the vector's signature (over another message)."""
    did = did_for(public_key)
    unsigned = {
        "type": MessageType.INVITATION.uri,
        "from": did,
        "created_time": 1_767_258_000,
        "seq": 0,
        "body": {"label": "vector", "kind": "person"},
    }
    signing_input = canonical.canonicalize(unsigned)
    return {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **unsigned,
        "proof": {
            "type": "ed25519-jcs",
            "kid": f"{did}#{did[8:]}",
            "sig": canonical.b64url(signature),
        },
    }


def envelope_verdict(public_key: bytes, signature: bytes, path: str = "protocol") -> str | None:
    """The error code of the envelope path (protocol ``verify`` or the SDK's log verifier)."""
    raw = envelope_object(public_key, signature)
    try:
        if path == "protocol":
            verify(raw)
        else:
            rapport_client.verify_log([(raw, raw["created_time"])])
    except errors.ProtocolError as exc:
        return exc.code
    return None


def openssl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def test_wycheproof_valid_accepted_invalid_refused() -> None:
    figures: Counter[str] = Counter()
    wrong: list[int] = []
    for group in WYCHEPROOF["testGroups"]:
        public_key = bytes.fromhex(group["publicKey"]["pk"])
        for test in group["tests"]:
            verdict = our_verdict(
                public_key, bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
            )
            accepted = verdict is True
            figures["tried"] += 1
            figures["accepted"] += accepted
            figures[f"result={test['result']}"] += 1
            if accepted != (test["result"] == "valid"):
                wrong.append(test["tcId"])
        assert did_verdict(public_key) is None  # Wycheproof keys are all honest keys
    print(f"\nWycheproof Ed25519: {dict(figures)}; wrong verdicts: {len(wrong)}")
    assert figures["tried"] == WYCHEPROOF["numberOfTests"] == 151
    assert figures["result=acceptable"] == 0
    assert wrong == []
    assert figures["accepted"] == figures["result=valid"] == 88


def test_cctv_accepted_exactly_when_no_flag_on_every_path() -> None:
    figures: Counter[str] = Counter()
    wrong: list[int] = []
    for vector in CCTV:
        public_key, signature = bytes.fromhex(vector["key"]), bytes.fromhex(vector["sig"])
        message = vector["msg"].encode()
        flags = vector["flags"] or []
        expected = not flags
        verdict = our_verdict(public_key, message, signature)
        accepted = verdict is True
        key_code = did_verdict(public_key)
        envelope_code = envelope_verdict(public_key, signature)
        sdk_code = envelope_verdict(public_key, signature, path="sdk")
        figures["tried"] += 1
        figures["accepted"] += accepted
        figures["key refused (weak_public_key)"] += verdict == "weak_public_key"
        figures["openssl accepts"] += openssl_accepts(public_key, message, signature)
        if accepted != expected:
            wrong.append(vector["number"])
        # The DID path refuses the same keys the VerifyKey path refuses.
        assert (key_code == "weak_public_key") == (verdict == "weak_public_key"), vector["number"]
        # The envelope path never accepts: refused keys fail at the DID, the others sign
        # another message, so their signature cannot verify over the object.
        assert envelope_code == (key_code or "bad_signature"), vector["number"]
        assert sdk_code == envelope_code, vector["number"]
    print(f"\nCCTV Ed25519: {dict(figures)}; wrong verdicts: {len(wrong)}")
    assert figures["tried"] == len(CCTV) == 914
    assert wrong == []
    assert figures["accepted"] == sum(1 for v in CCTV if not v["flags"]) == 1


def test_cctv_libsodium_alone_accepts_mixed_order_keys_our_key_check_refuses() -> None:
    """Why the key check matters: crypto_sign_open by itself accepts vectors whose A has a
    low-order component; every one of them is refused by VerifyKey (spec §8)."""
    import nacl.bindings

    raw_accepts = []
    for vector in CCTV:
        public_key, signature = bytes.fromhex(vector["key"]), bytes.fromhex(vector["sig"])
        try:
            nacl.bindings.crypto_sign_open(signature + vector["msg"].encode(), public_key)
        except Exception:
            continue
        raw_accepts.append(vector)
    flagged = [v for v in raw_accepts if v["flags"]]
    print(f"\nlibsodium crypto_sign_open alone accepts {len(raw_accepts)} CCTV vectors")
    assert flagged, "libsodium changed: revisit spec §8"
    assert all("low_order_component_A" in v["flags"] for v in flagged)
    for vector in flagged:
        assert our_verdict(bytes.fromhex(vector["key"]), b"", b"") == "weak_public_key"
