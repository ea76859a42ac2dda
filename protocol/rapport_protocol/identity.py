"""Ed25519 identities as ``did:key`` identifiers (W3C CCG did:key method, v0.7).

A ``did:key`` for Ed25519 is ``did:key:z`` + base58btc(0xed 0x01 ‖ 32-byte public key); it
always starts ``did:key:z6Mk``. The key id (``kid``) of such a DID is the DID URL
``<did>#<multibase value>``. Public keys are rejected unless they are canonical encodings of
points of large prime order, so small-order ("weak") keys can never become identities.

This is the one module that touches private key material.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import base58
import nacl.bindings
import nacl.exceptions
import nacl.signing

from . import errors

DID_KEY_PREFIX = "did:key:"
_ED25519_MULTICODEC = b"\xed\x01"
_PUBLIC_KEY_BYTES = 32


@lru_cache(maxsize=4096)
def _multibase(public_key: bytes) -> str:
    # Base58 is pure Python (~20 µs for a key here): a signer would otherwise pay it twice
    # a signature, for ``from`` and ``proof.kid`` (a quarter of signing a typical message).
    return "z" + base58.b58encode(_ED25519_MULTICODEC + public_key).decode("ascii")


def _check_point(public_key: bytes) -> None:
    if len(public_key) != _PUBLIC_KEY_BYTES:
        raise errors.IdentityError("an Ed25519 public key is 32 bytes")
    # libsodium: true only for canonical encodings of points on the main subgroup that
    # are not of small order.
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(public_key):
        raise errors.WeakPublicKey("public key is not a valid point of large order")


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """An Ed25519 public key with its ``did:key`` identity."""

    public_key: bytes

    def __post_init__(self) -> None:
        _check_point(self.public_key)

    @property
    def did(self) -> str:
        """The ``did:key`` identifier."""
        return DID_KEY_PREFIX + _multibase(self.public_key)

    @property
    def kid(self) -> str:
        """The key id: the DID URL ``<did>#<multibase>``."""
        mb = _multibase(self.public_key)
        return f"{DID_KEY_PREFIX}{mb}#{mb}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is a valid Ed25519 signature of ``message``.

        Verification is libsodium's ``crypto_sign_verify_detached``: it rejects S ≥ L,
        non-canonical or small-order R and A (see the spec, §Signature verification).
        """
        if len(signature) != 64:
            return False
        try:
            nacl.bindings.crypto_sign_open(signature + message, self.public_key)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True


class SigningKey:
    """An Ed25519 private key. Never serialised by the protocol; key files are the SDK's."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.verify_key = VerifyKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key from the operating system's CSPRNG."""
        return cls(os.urandom(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key for a 32-byte seed (RFC 8032 private key)."""
        return cls(seed)

    @property
    def seed(self) -> bytes:
        """The 32-byte RFC 8032 private key. Handle with care."""
        return bytes(self._key)

    @property
    def did(self) -> str:
        return self.verify_key.did

    @property
    def kid(self) -> str:
        return self.verify_key.kid

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached Ed25519 signature of ``message``."""
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"SigningKey(did={self.did!r})"


@lru_cache(maxsize=65536)
def parse_did(did: str) -> VerifyKey:
    """Parse an Ed25519 ``did:key`` into its :class:`VerifyKey`.

    Raises :class:`~rapport_protocol.errors.IdentityError` (``invalid_did``) for anything
    that is not exactly ``did:key:z6Mk…`` of a valid key, and
    :class:`~rapport_protocol.errors.WeakPublicKey` for small-order or non-canonical points.
    """
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX + "z"):
        raise errors.IdentityError("not a base58btc did:key")
    encoded = did[len(DID_KEY_PREFIX) + 1 :]
    if not encoded or len(encoded) > 64:
        raise errors.IdentityError("did:key value has the wrong length")
    try:
        raw = base58.b58decode(encoded.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise errors.IdentityError("did:key value is not base58btc") from None
    if raw[:2] != _ED25519_MULTICODEC:
        raise errors.IdentityError("did:key is not an Ed25519 key (multicodec 0xed01)")
    key = VerifyKey(raw[2:]) if len(raw) == 34 else None
    if key is None:
        raise errors.IdentityError("Ed25519 did:key carries 32 key bytes")
    if key.did != did:  # leading-zero and other non-canonical base58 spellings
        raise errors.IdentityError("did:key is not canonically encoded")
    return key


def did_of_kid(kid: str) -> str:
    """The DID a key id belongs to; the fragment must be the DID's own multibase value."""
    did, sep, fragment = kid.partition("#")
    if not sep or not did.startswith(DID_KEY_PREFIX) or did[len(DID_KEY_PREFIX) :] != fragment:
        raise errors.InvalidKeyId("kid must be <did:key>#<its multibase value>")
    return did
