"""The object size limit: whatever ``sign`` produces, ``parse`` accepts, and the other way.

The limit is on the canonical form of the whole object (proof and payload included). The
canonical form is the shortest JSON text of an object, so an object that ``sign`` lets
through always fits the parser's byte limit when sent canonically, and a payload of
characters JSON must escape is refused by the signer, not only by the receiver.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapport_protocol import SigningKey, errors, parse, sign, strict_json, verify
from rapport_protocol.canonical import b64url, canonicalize
from rapport_protocol.envelope import MAX_OBJECT_BYTES, object_size
from rapport_protocol.types import MAX_PAYLOAD_BYTES, MessageType

T0 = 1_800_000_000
KEY = SigningKey.from_seed(b"\x41" * 32)
CID = "c" * 32


def message(payload: str) -> Any:
    return sign(
        KEY,
        MessageType.MESSAGE,
        {"topic": "news"},
        created_time=T0,
        cid=CID,
        seq=1,
        payload=payload,
    )


@pytest.mark.parametrize(
    ("payload", "fits"),
    [
        ("a" * MAX_PAYLOAD_BYTES, True),
        ("é" * (MAX_PAYLOAD_BYTES // 2), True),
        ("\U0001f600" * (MAX_PAYLOAD_BYTES // 4), True),
        ("\u2028" * (MAX_PAYLOAD_BYTES // 3), True),  # not escaped by JCS
        ("/" * MAX_PAYLOAD_BYTES, True),  # not escaped by JCS
        ('"' * MAX_PAYLOAD_BYTES, False),  # 2 bytes each: ~66 KB of JSON
        ("\\" * MAX_PAYLOAD_BYTES, False),
        ("\n" * MAX_PAYLOAD_BYTES, False),
        ("\x01" * MAX_PAYLOAD_BYTES, False),  # \u0001: 6 bytes each, ~197 KB of JSON
        ('"' * 16000, True),
        ("\x01" * 10000, True),
    ],
)
def test_every_message_sign_produces_parses_and_the_others_are_refused_by_sign(
    payload: str, fits: bool
) -> None:
    if not fits:
        with pytest.raises(errors.JsonTooLarge):
            message(payload)
        return
    obj = message(payload)
    data = obj.canonical_bytes()
    assert len(data) == object_size(obj.raw) <= MAX_OBJECT_BYTES
    assert parse(data, now=T0).id == obj.id


def test_the_limit_is_exact_at_65536_canonical_bytes() -> None:
    base = object_size(message('"' * 10000).raw) - 2 * 10000  # all but the escaped quotes
    n = (MAX_OBJECT_BYTES - base) // 2
    largest = message('"' * n)
    assert object_size(largest.raw) in (MAX_OBJECT_BYTES - 1, MAX_OBJECT_BYTES)
    assert parse(largest.canonical_bytes(), now=T0).id == largest.id
    with pytest.raises(errors.JsonTooLarge):
        message('"' * (n + 1))


def forged_message(payload: str) -> dict[str, Any]:
    """A correctly signed message over the limit, built without ``sign``'s checks."""
    data = payload.encode()
    body = {
        "topic": "news",
        "content_digest": hashlib.sha256(data).hexdigest(),
        "content_length": len(data),
    }
    fields = {
        "type": MessageType.MESSAGE.uri,
        "from": KEY.did,
        "cid": CID,
        "created_time": T0,
        "seq": 1,
        "body": body,
    }
    signing_input = canonicalize(fields)
    return {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **fields,
        "proof": {"type": "ed25519-jcs", "kid": KEY.kid, "sig": b64url(KEY.sign(signing_input))},
        "payload": payload,
    }


@pytest.mark.parametrize("payload", ['"' * MAX_PAYLOAD_BYTES, "\x01" * MAX_PAYLOAD_BYTES])
def test_verify_refuses_an_oversize_object_that_arrived_inside_a_larger_document(
    payload: str,
) -> None:
    raw = forged_message(payload)
    # What a binding does: the wrapper is within its own (larger) limit and parses...
    wrapper = canonicalize({"object": raw})
    doc = strict_json.loads(wrapper, strict_json.Limits(max_bytes=4 * MAX_OBJECT_BYTES))
    # ...but the object inside is over the object limit, as parse would say of it alone.
    with pytest.raises(errors.JsonTooLarge):
        verify(doc["object"], now=T0)
    with pytest.raises(errors.JsonTooLarge):
        parse(canonicalize(raw), now=T0)
    # Without the payload (erased) the same object is small and verifies.
    small = {k: v for k, v in raw.items() if k != "payload"}
    assert verify(small, now=T0).id == raw["id"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=6))
def test_object_size_is_the_length_of_the_canonical_form(value: dict[str, Any]) -> None:
    assert object_size(value) == len(canonicalize(value))


def test_object_size_counts_every_escape_like_jcs() -> None:
    every_bmp_char = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000)
    value = {"s": every_bmp_char, "astral": "\U0001f600\U0010ffff"}
    assert object_size(value) == len(canonicalize(value))


# Any JSON text of a value: compact or spaced, escaped to ASCII or not, keys in any order.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(_values, st.booleans(), st.sampled_from([None, 0, 2]), st.booleans())
def test_no_json_text_is_shorter_than_the_canonical_form(
    value: Any, ascii_only: bool, indent: int | None, reverse: bool
) -> None:
    """What lets ``verify(text_size=…)`` skip the size computation for small texts."""
    import json

    if reverse and isinstance(value, dict):
        value = dict(reversed(list(value.items())))
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    parsed = strict_json.loads(text)
    assert len(canonicalize(parsed)) <= len(text)


def test_a_large_text_still_gets_the_size_check() -> None:
    obj = message("x" * 100).to_json()
    with pytest.raises(errors.JsonTooLarge):
        verify({**obj, "payload": "y" * (MAX_OBJECT_BYTES + 1)}, text_size=MAX_OBJECT_BYTES + 9)
