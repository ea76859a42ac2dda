from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rapport_protocol import errors
from rapport_protocol.strict_json import Limits, loads


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'{"a":1,"a":2}', errors.JsonDuplicateKey),
        (b'{"x":{"b":[{"c":1,"c":1}]}}', errors.JsonDuplicateKey),
        (b"[NaN]", errors.JsonNonFinite),
        (b"[-Infinity]", errors.JsonNonFinite),
        (b'["\\ud800"]', errors.JsonLoneSurrogate),
        (b'{"\\udfff":1}', errors.JsonLoneSurrogate),
        (b"[1.5]", errors.JsonFloatForbidden),
        (b"[1e3]", errors.JsonFloatForbidden),
        (b"9007199254740992", errors.JsonIntegerOutOfRange),
        (b"-9007199254740992", errors.JsonIntegerOutOfRange),
        (b"1" * 400, errors.JsonIntegerOutOfRange),
        (b"[" * 33 + b"]" * 33, errors.JsonTooDeep),
        (b"[" * 50000 + b"]" * 50000, errors.JsonTooLarge),
        (b'"\xff"', errors.JsonInvalidUtf8),
        (b'\xef\xbb\xbf{"a":1}', errors.JsonInvalidUtf8),
        (b'{"a":1} x', errors.JsonError),
        (b"{'a':1}", errors.JsonError),
        (b'["a\x01"]', errors.JsonError),
        (b"", errors.JsonError),
    ],
)
def test_rejects_ambiguous_json_with_its_own_code(
    data: bytes, error: type[errors.JsonError]
) -> None:
    with pytest.raises(error) as info:
        loads(data)
    assert info.value.code == error.code


def test_depth_limit_counts_containers() -> None:
    assert loads(b"[" * 32 + b"]" * 32, Limits(max_depth=32)) is not None
    with pytest.raises(errors.JsonTooDeep):
        loads(b'{"a":' * 33 + b"1" + b"}" * 33)


def test_safe_integer_bounds_are_inclusive() -> None:
    assert loads(b"[9007199254740991,-9007199254740991]") == [2**53 - 1, -(2**53 - 1)]


def test_non_ascii_is_kept_verbatim_not_normalised() -> None:
    # "é" precomposed and decomposed stay distinct.
    assert loads('["\u00e9","e\u0301"]'.encode()) == ["\u00e9", "e\u0301"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_accepts_every_strict_value(value: object) -> None:
    import json

    assert loads(json.dumps(value).encode()) == value
