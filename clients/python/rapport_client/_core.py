"""What the sync and async clients share: requests as data, the retry policy, answers.

Every API operation is written once as a *plan*: a generator that yields
:class:`ApiRequest` values and receives :class:`ApiResponse` values, and finally returns
its result. :class:`~rapport_client.Client` drives plans with blocking I/O,
:class:`~rapport_client.AsyncClient` with ``await``; neither knows what a plan does.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from . import errors

T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""Explicit timeouts: 30 s per read/write, 10 s to connect."""

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"idempotency_in_progress"})


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request of a plan, before authentication and retry headers."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    form: dict[str, str] | None = None
    auth: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    rebuild: Callable[[], ApiRequest] | None = None
    """For requests that must differ per attempt (a fresh assertion ``jti``)."""

    @property
    def is_write(self) -> bool:
        """POST/PUT/DELETE: sent with one ``Idempotency-Key`` reused across retries."""
        return self.method in ("POST", "PUT", "PATCH", "DELETE") and self.form is None


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """An answer as a plan sees it."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        """The problem code of an error answer."""
        if isinstance(self.body, dict) and isinstance(self.body.get("code"), str):
            return str(self.body["code"])
        return None

    def error(self) -> errors.RapportError:
        """The typed exception for this (error) answer."""
        return errors.error_for(self.status, self.body, self.headers)


Plan = Generator[ApiRequest, ApiResponse, T]
"""An operation: yields requests, receives their answers, returns its result."""


def expect(response: ApiResponse) -> Any:
    """The JSON body of a success answer; raises the typed error otherwise."""
    if not response.ok:
        raise response.error()
    return response.body


def decode_body(response: httpx.Response) -> Any:
    """JSON when the answer is JSON (problem+json included), else the text or ``None``."""
    if not response.content:
        return None
    ctype = response.headers.get("content-type", "")
    if "json" in ctype:
        try:
            return json.loads(response.content)
        except ValueError:
            return response.text
    return response.text


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before trying again.

    Retries connection errors, 408, 429, 5xx and ``idempotency_in_progress`` up to
    ``max_retries`` times with full-jitter exponential backoff (``base`` · 2ⁿ, at most
    ``max_backoff`` seconds). A ``Retry-After`` is honoured when it is at most
    ``max_retry_after`` seconds; a longer one (a rate cap that frees up tomorrow) is not
    waited for: the error is raised with its ``retry_after`` instead.
    """

    max_retries: int = 3
    base: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 20.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds before retry number ``attempt`` (0-based) absent a ``Retry-After``."""
        return rng.uniform(0, min(self.max_backoff, self.base * (2**attempt)))

    def delay_for(
        self, attempt: int, response: ApiResponse | None, rng: random.Random
    ) -> float | None:
        """Seconds to wait before retrying, or ``None`` if this outcome is final."""
        if attempt >= self.max_retries:
            return None
        if response is None:  # no answer: connection error or timeout
            return self.backoff(attempt, rng)
        retryable = response.status in RETRYABLE_STATUS or response.code in RETRYABLE_CODES
        if not retryable:
            return None
        after = retry_after_seconds(response.headers.get("retry-after"))
        if after is None:
            return self.backoff(attempt, rng)
        if after > self.max_retry_after:
            return None
        return after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def transport_error(exc: httpx.TransportError) -> errors.RapportError:
    """The SDK error for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return errors.APITimeoutError(f"timed out: {type(exc).__name__}")
    return errors.APIConnectionError(f"could not reach the server: {type(exc).__name__}")


def header_dict(headers: httpx.Headers) -> dict[str, str]:
    """Lower-cased response headers."""
    return {k.lower(): v for k, v in headers.items()}


Clock = Callable[[], int]


def system_clock() -> int:
    """Integer UTC seconds (the protocol's time unit)."""
    return int(time.time())
