"""How protocol errors become HTTP problems: one table, shared by every endpoint."""

from __future__ import annotations

from rapport_protocol import errors
from rapport_protocol.decision import Refused

from .domain import DomainError

# Codes not listed map by class: JsonError → 400, StateError → 409, anything else → 422.
_STATUS_BY_CODE = {
    "grant_missing": 403,
    "grant_expired": 403,
    "muted": 403,
    "not_a_party": 403,
    "connection_severed": 410,
    "message_expired": 422,
    "quiet_hours": 429,
    "rate_exceeded": 429,
    "replayed": 409,
    "chain_broken": 409,
    "reinvite_blocked": 403,
    "invitation_expired": 410,
    "invitation_used": 409,
    "invitation_not_for_you": 403,
    "grant_not_found": 404,
    "favour_not_found": 404,
    "mute_not_found": 409,
}

_TITLES = {
    "grant_missing": "No grant covers this",
    "rate_exceeded": "Rate cap reached",
    "quiet_hours": "Quiet hours",
    "muted": "The recipient muted you",
    "connection_severed": "Connection severed",
}


def status_for(exc: errors.ProtocolError) -> int:
    """The HTTP status for a protocol error."""
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    if isinstance(exc, errors.JsonError):
        return 400
    if isinstance(exc, errors.StateError):
        return 409
    return 422


def to_problem(exc: errors.ProtocolError) -> DomainError:
    """A :class:`DomainError` carrying the protocol error's code, status and details."""
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    refusal = exc.extra.get("refusal")
    if isinstance(refusal, Refused):
        if refusal.retry_after is not None:
            extra["retry_after"] = refusal.retry_after
            headers["Retry-After"] = str(refusal.retry_after)
        if refusal.muted_until is not None:
            extra["muted_until"] = refusal.muted_until
    for key in ("grant_status", "index"):
        if key in exc.extra:
            extra[key] = exc.extra[key]
    title = _TITLES.get(exc.code, exc.code.replace("_", " ").capitalize())
    detail = exc.detail if exc.detail != exc.code else title
    return DomainError(
        detail, status=status_for(exc), code=exc.code, title=title, headers=headers, **extra
    )
