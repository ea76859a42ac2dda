"""Stored responses for ``Idempotency-Key`` (Stripe semantics), shared by every write path.

A successful write stores its response under (party, key) in the same transaction as its
effect; a retry with the same key and the same request gets that response back, a retry
with the same key and another request is refused.
"""

from __future__ import annotations

from .domain import DomainError


def stored_reply(
    request_hash: str, status_code: int, response: str, digest: str
) -> tuple[int, str]:
    """The stored status and body, if the stored request's digest is ``digest``."""
    if request_hash != digest:
        raise DomainError(
            "this Idempotency-Key was used with another request",
            status=422,
            code="idempotency_key_reused",
        )
    return status_code, response
