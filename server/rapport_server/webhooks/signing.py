"""Standard Webhooks signatures: ``v1`` (HMAC-SHA256, per-endpoint secret) and ``v1a``
(Ed25519, the server's key, published at ``/.well-known/rapport-webhook-keys``).

Both sign ``"{webhook-id}.{webhook-timestamp}.{body}"``; ``webhook-signature`` lists every
signature, space-separated, so receivers can verify with either scheme and secrets can be
rotated without a gap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from nacl.signing import SigningKey

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
PUBLIC_KEY_PREFIX = "whpk_"


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign_v1(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class ServerSigner:
    """The server's Ed25519 webhook key (derived from a secret shared by all instances)."""

    def __init__(self, seed_material: str) -> None:
        seed = hashlib.sha256(b"rapport webhook signing key\0" + seed_material.encode()).digest()
        self._key = SigningKey(seed)
        raw = bytes(self._key.verify_key)
        self.public_key = PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()
        self.kid = "whk_" + hashlib.sha256(raw).hexdigest()[:16]

    def sign_v1a(self, msg_id: str, timestamp: int, body: bytes) -> str:
        sig = self._key.sign(signed_content(msg_id, timestamp, body)).signature
        return "v1a," + base64.b64encode(sig).decode()

    def headers(
        self, msg_id: str, timestamp: int, body: bytes, endpoint_secrets: list[str]
    ) -> dict[str, str]:
        """The three Standard Webhooks headers for one attempt."""
        signatures = [self.sign_v1a(msg_id, timestamp, body)]
        signatures += [sign_v1(s, msg_id, timestamp, body) for s in endpoint_secrets]
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures),
        }
