"""Shared pieces of the domain layer: the authenticated subject, the clock, domain errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], int]


def system_clock() -> int:
    """Integer UTC seconds from the system clock (the only clock the server reads)."""
    return int(time.time())


@dataclass(frozen=True, slots=True)
class Subject:
    """The authenticated party a request acts for. Services scope every query by it."""

    party_id: str
    did: str
    kind: str


class DomainError(Exception):
    """A refusal with a stable ``code`` and HTTP ``status`` (rendered as problem+json)."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Unauthenticated(DomainError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class SenderMismatch(DomainError):
    status, code, title = 403, "sender_mismatch", "The object is not signed by you"


class TypeMismatch(DomainError):
    status, code, title = 422, "type_mismatch", "Wrong object type for this route"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Temporarily unavailable"
