"""RFC 8785 JSON Canonicalization Scheme (JCS) and content identifiers.

Canonicalisation is delegated to the maintained ``rfc8785`` package. Strings are never
Unicode-normalised: the signed bytes are exactly the UTF-8 of the strings as sent.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import rfc8785

from . import errors


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise errors.JsonError(f"cannot canonicalise: {exc}") from None


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
