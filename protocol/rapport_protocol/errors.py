"""Typed protocol errors.

Every failure the protocol can detect has its own class and a stable snake_case ``code``.
The same codes are used by the server (problem+json ``code``) and by the SDK (exception
classes), so a refusal means the same thing everywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ProtocolError(Exception):
    """Base class of every error raised by ``rapport_protocol``."""

    code: ClassVar[str] = "protocol_error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        self.extra: dict[str, Any] = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


# --- strict JSON -------------------------------------------------------------------------


class JsonError(ProtocolError):
    """The bytes are not acceptable strict JSON."""

    code = "json_invalid"


class JsonInvalidUtf8(JsonError):
    code = "json_invalid_utf8"


class JsonDuplicateKey(JsonError):
    code = "json_duplicate_key"


class JsonNonFinite(JsonError):
    code = "json_non_finite"


class JsonLoneSurrogate(JsonError):
    code = "json_lone_surrogate"


class JsonFloatForbidden(JsonError):
    code = "json_float_forbidden"


class JsonIntegerOutOfRange(JsonError):
    code = "json_integer_out_of_range"


class JsonTooLarge(JsonError):
    code = "json_too_large"


class JsonTooDeep(JsonError):
    code = "json_too_deep"


# --- identities and keys -------------------------------------------------------------


class IdentityError(ProtocolError):
    """A did:key, key id or public key is malformed or unacceptable."""

    code = "invalid_did"


class InvalidKeyId(IdentityError):
    code = "invalid_kid"


class WeakPublicKey(IdentityError):
    """The public key is not a canonical point of large prime order."""

    code = "weak_public_key"


# --- signed objects ------------------------------------------------------------------


class EnvelopeError(ProtocolError):
    """The signed object does not have the required shape."""

    code = "invalid_object"


class UnknownType(EnvelopeError):
    code = "unknown_type"


class InvalidBody(EnvelopeError):
    code = "invalid_body"


class IdMismatch(EnvelopeError):
    """The ``id`` is not the content hash of the object."""

    code = "id_mismatch"


class PayloadMismatch(EnvelopeError):
    """The detached ``payload`` is not the content ``body.content_digest`` commits to."""

    code = "payload_mismatch"


class KidMismatch(EnvelopeError):
    """``proof.kid`` does not belong to the ``from`` DID."""

    code = "kid_mismatch"


class BadSignature(EnvelopeError):
    code = "bad_signature"


class ClockSkew(EnvelopeError):
    """``created_time`` is outside the accepted window around ``now``."""

    code = "clock_skew"


class ObjectExpired(EnvelopeError):
    code = "object_expired"


class ChainBroken(EnvelopeError):
    """``seq``/``prev`` do not continue the sender's hash chain."""

    code = "chain_broken"


class Replayed(EnvelopeError):
    """The object has been seen before."""

    code = "replayed"


# --- state machines ------------------------------------------------------------------


class StateError(ProtocolError):
    """The object is well formed but not allowed in the current state."""

    code = "invalid_transition"


class NotAParty(StateError):
    code = "not_a_party"


class WrongConnection(StateError):
    code = "wrong_connection"


class InvitationExpired(StateError):
    code = "invitation_expired"


class InvitationUsed(StateError):
    code = "invitation_used"


class InvitationNotForYou(StateError):
    """The sender may not answer this invitation: it is the inviter, or the invitation is
    addressed (``to``) to other DIDs."""

    code = "invitation_not_for_you"


class ReinviteBlocked(StateError):
    code = "reinvite_blocked"


class ConnectionNotActive(StateError):
    code = "connection_not_active"


class ConnectionSevered(StateError):
    code = "connection_severed"


class GrantExists(StateError):
    code = "grant_exists"


class GrantNotFound(StateError):
    code = "grant_not_found"


class GrantConflict(StateError):
    """Compare-and-swap failed: the grant was changed since the version named."""

    code = "grant_conflict"


class InvalidPeriod(InvalidBody):
    code = "invalid_period"


class InvalidTimeZone(InvalidBody):
    code = "invalid_time_zone"


class MuteNotFound(StateError):
    code = "mute_not_found"


class FavourNotFound(StateError):
    code = "favour_not_found"


class FavourStateError(StateError):
    code = "favour_invalid_transition"


class FavourReturnInvalid(StateError):
    code = "favour_return_invalid"


class NotPermitted(StateError):
    """The delivery decision refused the object; ``extra["refusal"]`` carries the reason."""

    code = "not_permitted"


class MessageExpired(NotPermitted):
    code = "message_expired"


class GrantMissing(NotPermitted):
    code = "grant_missing"


class GrantExpired(NotPermitted):
    code = "grant_expired"


class Muted(NotPermitted):
    code = "muted"


class QuietHours(NotPermitted):
    code = "quiet_hours"


class RateExceeded(NotPermitted):
    code = "rate_exceeded"


def _all_subclasses(cls: type[ProtocolError]) -> list[type[ProtocolError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


ERRORS_BY_CODE: dict[str, type[ProtocolError]] = {c.code: c for c in _all_subclasses(ProtocolError)}
"""Every error class by its stable code."""
