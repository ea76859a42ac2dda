"""RFC 8785 JSON Canonicalization Scheme (JCS) and content identifiers.

Canonicalisation is delegated to the maintained ``rfc8785`` package. Strings are never
Unicode-normalised: the signed bytes are exactly the UTF-8 of the strings as sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import rfc8785

from . import errors


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _plain(value):
        # The C encoder writes JCS for such values: integers print the same, and its
        # string escapes are JCS's (\" \\ \b \f \n \r \t, other controls as lowercase
        # \u00xx, nothing else escaped). Sorting by code point is JCS's UTF-16 order
        # while no member name has a character at or above U+E000 (_plain checks).
        # ~5x cheaper than the pure-Python package (bench/PROFILE.md); equality with it is
        # property-tested (tests/protocol/test_canonical.py).
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it below
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise errors.JsonError(f"cannot canonicalise: {exc}") from None


_SAFE_INTEGER = 2**53 - 1


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what the C encoder writes exactly as JCS: objects with
    string member names below U+E000, arrays, strings, booleans, null and integers within
    ±(2^53-1) (no floats: their shortest forms differ)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str or kind is bool or node is None:
            continue
        if kind is int:
            if -_SAFE_INTEGER <= node <= _SAFE_INTEGER:
                continue
            return False
        if kind is dict:
            for key in node:
                if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                    return False
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
        else:
            return False
    return True


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url-without-padding decoding; raises ``ValueError`` on bad input."""
    if "=" in text or not text.isascii():
        raise ValueError("padding or non-ASCII in base64url")
    padded = text + "=" * (-len(text) % 4)
    raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    if b64url(raw) != text:  # rejects non-canonical trailing bits and stray characters
        raise ValueError("non-canonical base64url")
    return raw


def content_id(canonical_bytes: bytes) -> str:
    """The content identifier of canonical bytes: ``"b" + base32`` is avoided for readability;
    we use lowercase hex SHA-256, 64 characters."""
    return hashlib.sha256(canonical_bytes).hexdigest()
