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
