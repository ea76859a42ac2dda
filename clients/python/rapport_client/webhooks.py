"""Verify webhook deliveries (Standard Webhooks).

A delivery carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``; the
signature header lists space-separated ``<version>,<base64 signature>`` values over
``"{id}.{timestamp}.{body}"``:

- ``v1a``: Ed25519 by the server's webhook key (``whpk_…``, published at
  ``/.well-known/rapport-webhook-keys``): anyone can check it, nobody else can forge it;
- ``v1``: HMAC-SHA256 with the endpoint's secret (``whsec_…``).

:func:`verify` accepts either kind of key, checks the timestamp is within tolerance
(5 minutes, against replays), compares in constant time, and returns the parsed payload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from rapport_protocol import VerifyKey
from rapport_protocol import errors as protocol_errors

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
PUBLIC_KEY_PREFIX = "whpk_"
DEFAULT_TOLERANCE = 300


class WebhookVerificationError(Exception):
    """The delivery is not authentic, or too old or too new to trust."""


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("not base64") from None


def _signatures(header: str, version: str) -> list[bytes]:
    found = []
    for item in header.split():
        name, sep, value = item.partition(",")
        if sep and name == version:
            try:
                found.append(_b64decode(value))
            except WebhookVerificationError:
                continue
    return found


def _signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return msg_id.encode() + b"." + timestamp.encode() + b"." + body


def verify(
    raw_body: bytes | str,
    headers: Mapping[str, str],
    key: str | bytes | VerifyKey,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> Any:
    """Check a delivery and return its JSON payload, or raise WebhookVerificationError.

    ``raw_body`` must be the exact bytes received (not re-serialised JSON). ``key`` is the
    endpoint secret ``whsec_…`` (checks ``v1``), or the server's public key ``whpk_…``
    or a :class:`rapport_protocol.VerifyKey` (checks ``v1a``).
    """
    body = raw_body.encode() if isinstance(raw_body, str) else bytes(raw_body)
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    timestamp = lower.get("webhook-timestamp")
    signature = lower.get("webhook-signature")
    if not (msg_id and timestamp and signature):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    if not timestamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not integer seconds")
    current = int(time.time()) if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    content = _signed_content(msg_id, timestamp, body)
    if isinstance(key, VerifyKey) or (isinstance(key, str) and key.startswith(PUBLIC_KEY_PREFIX)):
        if not _ed25519_ok(key, content, _signatures(signature, "v1a")):
            raise WebhookVerificationError("no valid v1a signature")
    else:
        secret = _secret_bytes(key)
        expected = hmac.new(secret, content, hashlib.sha256).digest()
        matched = False
        for candidate in _signatures(signature, "v1"):
            matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise WebhookVerificationError("no valid v1 signature")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("payload is not JSON") from None


def _secret_bytes(key: str | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    text = key[len(SECRET_PREFIX) :] if key.startswith(SECRET_PREFIX) else key
    secret = _b64decode(text)
    if not secret:
        raise WebhookVerificationError("empty secret")
    return secret


def _ed25519_ok(key: str | VerifyKey, content: bytes, signatures: list[bytes]) -> bool:
    if isinstance(key, str):
        try:
            key = VerifyKey(_b64decode(key[len(PUBLIC_KEY_PREFIX) :]))
        except protocol_errors.ProtocolError:
            raise WebhookVerificationError("not an Ed25519 public key") from None
    return any(key.verify(content, sig) for sig in signatures)


def sign(
    raw_body: bytes | str, *, msg_id: str, timestamp: int, secret: str | bytes
) -> dict[str, str]:
    """Headers of a ``v1`` (HMAC) delivery of ``raw_body``: for testing your receiver."""
    body = raw_body.encode() if isinstance(raw_body, str) else bytes(raw_body)
    mac = hmac.new(
        _secret_bytes(secret), _signed_content(msg_id, str(timestamp), body), hashlib.sha256
    ).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
