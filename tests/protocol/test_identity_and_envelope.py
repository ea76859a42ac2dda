from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapport_protocol import SigningKey, errors, parse, parse_did, sign, verify
from rapport_protocol.canonical import canonicalize
from rapport_protocol.identity import did_of_kid
from rapport_protocol.types import MessageType

T0 = 1_800_000_000
KEY = SigningKey.from_seed(bytes(range(32)))


def message(**headers: object) -> dict[str, object]:
    defaults: dict[str, object] = {"cid": "c" * 32, "seq": 1}
    defaults.update(headers)
    return sign(
        KEY, MessageType.MESSAGE, {"topic": "news"}, created_time=T0, payload="hello", **defaults
    ).to_json()


def test_did_key_round_trips_and_starts_z6mk() -> None:
    assert KEY.did.startswith("did:key:z6Mk")
    assert parse_did(KEY.did).public_key == KEY.verify_key.public_key
    assert did_of_kid(KEY.kid) == KEY.did


@pytest.mark.parametrize(
    "did",
    [
        "did:key:z6Mk",
        "did:web:example.com",
        "did:key:zQ3shokFTS3brHcDQrn82RZDfCZESWL1ZdCEJwekUDPQiYBme",  # secp256k1
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do0",  # '0' is not base58
        "did:key:" + "z" * 80,
        "did:key:z11111111111111111111111111111111111",
    ],
)
def test_malformed_dids_are_rejected(did: str) -> None:
    with pytest.raises(errors.IdentityError):
        parse_did(did)


def test_small_order_public_key_is_rejected() -> None:
    import base58

    identity_point = bytes([1]) + bytes(31)  # the neutral element, order 1
    did = "did:key:z" + base58.b58encode(b"\xed\x01" + identity_point).decode()
    with pytest.raises(errors.WeakPublicKey):
        parse_did(did)


def test_signed_object_verifies_and_id_is_content_hash() -> None:
    raw = message()
    obj = verify(raw, now=T0)
    assert obj.id == raw["id"]
    assert parse(canonicalize(raw), now=T0).id == obj.id


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda r: r.update(id="0" * 64), errors.IdMismatch),
        (lambda r: r["body"].update(content_length=4), errors.IdMismatch),
        (lambda r: r.update(payload="changed"), errors.PayloadMismatch),
        (lambda r: r.update(payload=1), errors.EnvelopeError),
        (lambda r: r["proof"].update(sig="A" * 86), errors.BadSignature),
        (lambda r: r["proof"].update(sig="!!"), errors.BadSignature),
        (
            lambda r: r["proof"].update(kid=SigningKey.from_seed(b"\x09" * 32).kid),
            errors.KidMismatch,
        ),
        (lambda r: r["proof"].update(kid="did:key:z6Mk#x"), errors.InvalidKeyId),
        (lambda r: r.update(extra=1), errors.EnvelopeError),
        (lambda r: r.update(thid=None), errors.EnvelopeError),
        (lambda r: r.update(type="https://example.com/x"), errors.UnknownType),
        (lambda r: r["body"].update(topic="*"), errors.InvalidBody),
        (lambda r: r.update(seq=True), errors.EnvelopeError),
        (lambda r: r.pop("cid"), errors.EnvelopeError),
    ],
)
def test_each_tampering_has_its_own_error(mutate, error) -> None:  # type: ignore[no-untyped-def]
    raw = message()
    mutate(raw)
    with pytest.raises(error):
        verify(raw, now=T0)


def test_clock_window_and_expiry() -> None:
    raw = message(expires_time=T0 + 1000)
    verify(raw, now=T0 + 300)
    with pytest.raises(errors.ClockSkew):
        verify(raw, now=T0 + 301)
    with pytest.raises(errors.ClockSkew):
        verify(raw, now=T0 - 301)
    short = message(expires_time=T0 + 10)
    with pytest.raises(errors.ObjectExpired):
        verify(short, now=T0 + 10)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_one_bit_change_fails_verification(data: st.DataObject) -> None:
    raw = message()
    wire = bytearray(canonicalize(raw))
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    try:
        obj = parse(bytes(wire), now=T0)
    except errors.ProtocolError:
        return
    # A flip that still parses must not have changed anything signed (e.g. never happens
    # in canonical bytes, but a flip could turn one valid JSON spelling into another).
    assert canonicalize({k: v for k, v in obj.raw.items()}) == canonicalize(raw)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.integers(-(2**53 - 1), 2**53 - 1) | st.text(max_size=8) | st.booleans(),
        max_size=6,
    )
)
def test_canonicalisation_is_a_fixed_point(value: dict[str, object]) -> None:
    import json

    once = canonicalize(value)
    assert canonicalize(json.loads(once)) == once
    assert json.loads(once) == value


def test_sign_does_not_mutate_body_dict() -> None:
    body = {"topic": "news"}
    before = copy.deepcopy(body)
    sign(KEY, MessageType.MESSAGE, body, created_time=T0, cid="c", seq=1, payload="x")
    assert body == before


def test_payload_can_be_erased_and_the_object_still_verifies() -> None:
    raw = message()
    assert raw["payload"] == "hello"
    del raw["payload"]
    obj = verify(raw, now=T0)
    assert obj.payload is None and obj.id == message()["id"]


def test_broadcast_message_has_no_cid_and_seq_zero() -> None:
    raw = sign(
        KEY, MessageType.MESSAGE, {"topic": "news"}, created_time=T0, payload="all"
    ).to_json()
    assert "cid" not in raw and raw["seq"] == 0
    assert verify(raw, now=T0).broadcast
    with pytest.raises(errors.EnvelopeError):
        sign(KEY, MessageType.MESSAGE, {"topic": "news"}, created_time=T0, seq=1, payload="x")
