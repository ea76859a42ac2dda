"""Our reference RFC 8785 code and rapport_protocol.canonical agree on arbitrary values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapport_protocol import canonical

from . import reference_jcs

# Strings without lone surrogates (strict JSON refuses them before canonicalisation).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
integers = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | integers | floats | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_reference_and_protocol_canonical_bytes_agree(value: Any) -> None:
    assert reference_jcs.canonicalize(value) == canonical.canonicalize(value)


@pytest.mark.parametrize(
    ("keys", "order"),
    [
        # UTF-16 code units, not code points: U+1F600 (D83D DE00) sorts before U+FB33.
        (["\ufb33", "\U0001f600"], ["\U0001f600", "\ufb33"]),
        (["b", "a", "\u00e9", "A"], ["A", "a", "b", "\u00e9"]),
    ],
)
def test_members_sort_by_utf16_code_units(keys: list[str], order: list[str]) -> None:
    value = {k: 0 for k in keys}
    expected = "{" + ",".join(f'"{k}":0' for k in order) + "}"
    assert reference_jcs.canonicalize(value) == expected.encode()
    assert canonical.canonicalize(value) == expected.encode()


def test_strings_are_not_unicode_normalised() -> None:
    composed, decomposed = "\u00e9", "e\u0301"
    assert canonical.canonicalize(composed) != canonical.canonicalize(decomposed)
    assert canonical.canonicalize(decomposed) == '"e\u0301"'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\u0000\u001f", '"\\u0000\\u001f"'),
        ("\b\t\n\f\r", '"\\b\\t\\n\\f\\r"'),
        ('"\\/', '"\\"\\\\/"'),
        ("\u007f\u2028", '"\u007f\u2028"'),
    ],
)
def test_string_escaping_is_minimal(value: str, expected: str) -> None:
    assert canonical.canonicalize(value) == expected.encode()
    assert reference_jcs.canonicalize(value) == expected.encode()


# Member names and strings drawn to straddle the one place code-point order and UTF-16
# order part (characters from U+E000 up against astral ones), next to ASCII.
edge_text = st.text(
    st.sampled_from(["a", "Z", "\u00e9", "\ud7ff", "\ue000", "\ufb33", "\uffff"])
    | st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)
    | st.characters(max_codepoint=0x1F),
    max_size=4,
)
edge_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | edge_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(edge_text, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(edge_values)
def test_the_c_encoder_path_gives_the_rfc8785_package_bytes(value: Any) -> None:
    import rfc8785

    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(canonical.errors.JsonError):
            canonical.canonicalize(value)
        return
    assert canonical.canonicalize(value) == expected


def test_a_rapport_object_is_canonicalised_without_the_python_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unused(value: Any) -> bytes:
        raise AssertionError("the pure-Python canonicaliser ran")

    monkeypatch.setattr(canonical.rfc8785, "dumps", unused)
    obj = {"type": "m", "body": {"topic": "news", "n": 3}, "from": "did:key:z6Mk", "to": []}
    assert canonical.canonicalize(obj) == reference_jcs.canonicalize(obj)
    assert canonical.canonicalize({"text": "caf\u00e9 \U0001f600"}) == reference_jcs.canonicalize(
        {"text": "caf\u00e9 \U0001f600"}
    )
