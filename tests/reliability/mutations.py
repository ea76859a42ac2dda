"""Ways to damage a signed object, shared by the envelope fuzz test and the HTTP fuzz.

Each mutation is a hypothesis strategy of ``(family, bytes)`` built from one valid signed
object. The oracle (:func:`same_object`) says when an accepted result is legitimate: only
when it means exactly what was signed (RFC 8785 bytes identical to the original's).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from rapport_protocol import SigningKey
from rapport_protocol.canonical import canonicalize

MEMBERS = ("id", "type", "from", "to", "cid", "created_time", "seq", "prev", "body", "proof")
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def same_object(original: dict[str, Any], accepted: dict[str, Any]) -> bool:
    """True when ``accepted`` is the signed object itself (possibly re-serialised), with its
    detached payload or without it (an erased message still verifies, by design)."""
    if "payload" not in accepted:
        original = {k: v for k, v in original.items() if k != "payload"}
    return canonicalize(accepted) == canonicalize(original)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _set_path(doc: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(doc, dict):
        copy = dict(doc)
        copy[head] = _set_path(doc.get(head), rest, value)
        return copy
    if isinstance(doc, list) and isinstance(head, int) and head < len(doc):
        copy_list = list(doc)
        copy_list[head] = _set_path(doc[head], rest, value)
        return copy_list
    return value


def _paths(doc: Any, prefix: list[Any] | None = None) -> list[list[Any]]:
    prefix = prefix or []
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, child in doc.items():
            out += _paths(child, [*prefix, key])
    elif isinstance(doc, list):
        for index, child in enumerate(doc):
            out += _paths(child, [*prefix, index])
    return out


def mutations(obj: dict[str, Any], other_key: SigningKey) -> st.SearchStrategy[tuple[str, bytes]]:
    """Damaged forms of ``obj`` (a valid signed object), tagged by family."""
    raw = _dumps(obj)
    paths = _paths(obj)

    truncated = st.integers(0, len(raw) - 1).map(lambda n: ("truncated", raw[:n]))
    byte_flip = st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)).map(
        lambda t: ("byte", raw[: t[0]] + bytes([t[1]]) + raw[t[0] + 1 :])
    )
    inserted = st.tuples(st.integers(0, len(raw)), st.binary(min_size=1, max_size=8)).map(
        lambda t: ("inserted", raw[: t[0]] + t[1] + raw[t[0] :])
    )
    deleted = st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 16)).map(
        lambda t: ("deleted", raw[: t[0]] + raw[t[0] + t[1] :])
    )
    duplicated = st.sampled_from([m for m in MEMBERS if m in obj]).flatmap(
        lambda m: st.sampled_from([obj[m], 1, "x", None]).map(
            lambda v: ("duplicate_key", b"{" + _dumps(m) + b":" + _dumps(v) + b"," + raw[1:])
        )
    )
    nested_dup = st.just(
        ("duplicate_key", raw.replace(b'"body": {', b'"body": {"topic": "other", ', 1))
    )
    wrong_type = st.tuples(st.sampled_from(paths), JSON_VALUES).map(
        lambda t: ("wrong_type", _dumps(_set_path(obj, t[0], t[1])))
    )
    removed = st.sampled_from(list(obj)).map(
        lambda k: ("missing", _dumps({n: v for n, v in obj.items() if n != k}))
    )
    extra = st.tuples(st.text(min_size=1, max_size=8), JSON_VALUES).map(
        lambda t: ("extra_member", _dumps({**obj, t[0]: t[1]}))
    )
    deep = st.integers(20, 5000).map(
        lambda n: (
            "over_deep",
            _dumps({**obj, "body": "PLACEHOLDER"}).replace(
                b'"PLACEHOLDER"', b'{"a":' * n + b"1" + b"}" * n
            ),
        )
    )
    oversize = st.integers(64 * 1024, 300 * 1024).map(
        lambda n: ("oversize", _dumps({**obj, "payload": "x" * n}))
    )
    lexical = st.sampled_from(
        [
            ("lexical", b"\xef\xbb\xbf" + raw),
            ("lexical", raw.replace(b'"seq": ', b'"seq": 1.0e0, "x": ', 1)),
            ("lexical", raw + b" {}"),
            ("lexical", raw.replace(b'"created_time": ', b'"created_time": NaN, "y": ', 1)),
            ("lexical", raw.replace(b'"seq": ', b'"seq": 99999999999999999999, "z": ', 1)),
            ("lexical", raw.replace(b'"topic": "', b'"topic": "\\ud800', 1)),
            ("lexical", raw.replace(b"{", b"[", 1)),
        ]
    )

    def resign(kind: str) -> tuple[str, bytes]:
        proof = dict(obj["proof"])
        if kind == "sig_flip":
            sig = proof["sig"]
            proof["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
        elif kind == "other_kid":
            proof["kid"] = other_key.kid
        elif kind == "other_from":
            return "signature", _dumps({**obj, "from": other_key.did})
        elif kind == "empty_sig":
            proof["sig"] = ""
        elif kind == "proof_type":
            proof["type"] = "ed25519-2020"
        return "signature", _dumps({**obj, "proof": proof})

    signature = st.sampled_from(
        ["sig_flip", "other_kid", "other_from", "empty_sig", "proof_type"]
    ).map(resign)
    return st.one_of(
        truncated,
        byte_flip,
        inserted,
        deleted,
        duplicated,
        nested_dup,
        wrong_type,
        removed,
        extra,
        deep,
        oversize,
        lexical,
        signature,
    )
