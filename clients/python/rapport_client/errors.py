"""Typed exceptions for every refusal a Rapport server can answer with.

The server answers errors as RFC 9457 problem+json with a stable snake_case ``code``
(shared with :mod:`rapport_protocol.errors`). :func:`error_for` turns such an answer into
the most specific class below: a class named after the code when there is one
(``grant_missing`` → :class:`GrantMissing`), otherwise the class of its HTTP status
(``invalid_body`` at 422 → :class:`ValidationError`). Every exception carries ``status``,
``code``, ``detail`` and the server's ``request_id``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RapportError(Exception):
    """Base of every SDK error.

    ``status`` is the HTTP status (``None`` when no answer arrived), ``code`` the stable
    problem code, ``request_id`` the server's ``X-Request-Id`` (quote it when reporting a
    problem), ``body`` the whole problem document.
    """

    default_code: ClassVar[str] = "rapport_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code or self.default_code
        self.request_id = request_id
        self.detail = detail or self.code
        self.body: dict[str, Any] = body or {}
        self.headers: dict[str, str] = headers or {}
        super().__init__(self.detail)

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"] if self.status is not None else []
        if self.request_id:
            parts.append(f"request {self.request_id}")
        suffix = f" ({', '.join(parts)})" if parts else ""
        return f"{self.code}: {self.detail}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"request_id={self.request_id!r}, detail={self.detail!r})"
        )


# --- no answer -------------------------------------------------------------------------


class APIConnectionError(RapportError):
    """The server could not be reached (after the retries)."""

    default_code = "connection_error"


class APITimeoutError(APIConnectionError):
    """The request timed out (after the retries)."""

    default_code = "timeout"


class ResponseFormatError(RapportError):
    """The server answered something that is not what the API promises."""

    default_code = "unexpected_response"


# --- by HTTP status ----------------------------------------------------------------------


class BadRequest(RapportError):
    """400: malformed JSON (``json_*``), bad cursor, bad idempotency key, OAuth errors."""

    default_code = "bad_request"


class AuthenticationError(RapportError):
    """401 (or an OAuth ``invalid_grant``): no valid token for this key."""

    default_code = "unauthenticated"


class PermissionDenied(RapportError):
    """403: the rules do not allow this."""

    default_code = "forbidden"


class NotFound(RapportError):
    """404: no such resource of yours (existence of others' resources is never revealed)."""

    default_code = "not_found"


class Conflict(RapportError):
    """409: the state changed under you (chain, grant version, favour status, ...)."""

    default_code = "conflict"


class Gone(RapportError):
    """410: the thing has ended for good."""

    default_code = "gone"


class ValidationError(RapportError):
    """422: the request or the signed object is not valid."""

    default_code = "validation_error"

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Field-level details, when the server gave them."""
        value = self.body.get("errors")
        return list(value) if isinstance(value, list) else []


class TooManyRequests(RapportError):
    """429: not now. ``retry_after`` is when (seconds) it may work."""

    default_code = "too_many_requests"

    @property
    def retry_after(self) -> int | None:
        """Seconds to wait, from the problem body or the ``Retry-After`` header."""
        value = self.body.get("retry_after")
        if isinstance(value, int):
            return value
        header = self.headers.get("retry-after")
        return int(header) if header and header.isdigit() else None


class ServerError(RapportError):
    """5xx: the server failed; nothing you did wrong."""

    default_code = "internal_error"


class ServiceUnavailable(ServerError):
    """503: temporarily unavailable; nothing was changed."""

    default_code = "service_unavailable"


# --- by code -----------------------------------------------------------------------------


class InvalidToken(AuthenticationError):
    """The token's key was rotated or the party deleted."""

    default_code = "invalid_token"


class InvalidGrant(AuthenticationError):
    """The OAuth assertion was refused (unknown key, replayed jti, bad audience...)."""

    default_code = "invalid_grant"


class GrantMissing(PermissionDenied):
    """No grant of the recipient covers this scope and topic."""

    default_code = "grant_missing"


class GrantExpired(PermissionDenied):
    """The grant that covered this has expired."""

    default_code = "grant_expired"


class Muted(PermissionDenied):
    """The recipient muted you (``mode: reject``). ``until`` is when the mute ends."""

    default_code = "muted"

    @property
    def until(self) -> int | None:
        """UTC seconds when the mute ends (``None``: indefinitely)."""
        value = self.body.get("muted_until")
        return value if isinstance(value, int) else None


class NotAParty(PermissionDenied):
    """You are not a party to this connection."""

    default_code = "not_a_party"


class SenderMismatch(PermissionDenied):
    """The object is not signed by the authenticated party's current key."""

    default_code = "sender_mismatch"


class ReinviteBlocked(PermissionDenied):
    """The other party severed with ``block_reinvite``: you may not invite them again."""

    default_code = "reinvite_blocked"


class InvitationNotForYou(PermissionDenied):
    """The invitation is addressed to someone else."""

    default_code = "invitation_not_for_you"


class GrantNotFound(NotFound):
    """No such grant in this connection."""

    default_code = "grant_not_found"


class FavourNotFound(NotFound):
    """No such favour in this connection."""

    default_code = "favour_not_found"


class ChainBroken(Conflict):
    """The object's ``seq``/``prev`` do not continue your chain in this connection."""

    default_code = "chain_broken"


class Replayed(Conflict):
    """This exact signed object was already received."""

    default_code = "replayed"


class GrantConflict(Conflict):
    """Compare-and-swap failed: the grant you amend is no longer the one in force."""

    default_code = "grant_conflict"


class GrantExists(Conflict):
    """A grant for this scope and topic is already in force (amend it instead)."""

    default_code = "grant_exists"


class FavourInvalidTransition(Conflict):
    """That favour step is not allowed in the favour's status, or not by you."""

    default_code = "favour_invalid_transition"


class ConnectionNotActive(Conflict):
    """The connection is not active (not yet accepted, or declined)."""

    default_code = "connection_not_active"


class InvitationUsed(Conflict):
    """The invitation has been used up."""

    default_code = "invitation_used"


class IdempotencyInProgress(Conflict):
    """A request with this idempotency key is still being processed."""

    default_code = "idempotency_in_progress"


class ConnectionSevered(Gone):
    """The connection was severed; nothing more flows in it."""

    default_code = "connection_severed"


class InvitationExpired(Gone):
    """The invitation has expired."""

    default_code = "invitation_expired"


class IdempotencyKeyReused(ValidationError):
    """The idempotency key was used before with a different request."""

    default_code = "idempotency_key_reused"


class RateExceeded(TooManyRequests):
    """The grant's rate cap is reached; ``retry_after`` says when the next one fits."""

    default_code = "rate_exceeded"


class QuietHours(TooManyRequests):
    """The recipient's quiet hours; ``retry_after`` says when they end."""

    default_code = "quiet_hours"


_BY_STATUS: dict[int, type[RapportError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: ValidationError,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


def _named(cls: type[RapportError]) -> list[type[RapportError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_named(sub))
    return out


ERRORS_BY_CODE: dict[str, type[RapportError]] = {
    cls.default_code: cls for cls in _named(RapportError) if cls not in _BY_STATUS.values()
}
"""The exception class of each problem code that has its own class."""


def error_for(
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
) -> RapportError:
    """The exception for an error answer: by ``code`` first, then by HTTP status."""
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    cls = ERRORS_BY_CODE.get(code or "")
    if cls is None:
        cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else RapportError
    detail = problem.get("detail") or problem.get("title")
    request_id = problem.get("request_id") or (headers or {}).get("x-request-id")
    return cls(
        str(detail) if detail else f"HTTP {status}",
        status=status,
        code=code or cls.default_code,
        request_id=str(request_id) if request_id else None,
        body=problem,
        headers=headers,
    )
