"""FastAPI dependencies shared by every router: services, the subject, signed bodies,
pagination and idempotent execution of write units."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from rapport_protocol import envelope, errors, strict_json
from rapport_protocol.envelope import SignedObject
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .domain import Conflict, DomainError, Subject, Unauthenticated
from .idempotency import stored_reply
from .parties import service as parties
from .protocol_errors import to_problem
from .services import PartyRead, Services
from .tables import IdempotencyRecord
from .writes import UnitContext

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger(__name__)


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop on
    # every request for a field read.
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]


async def session(svc: ServicesDep) -> AsyncIterator[AsyncSession]:
    """A read session. Writes never use it: they go through the write batcher.

    It is closed after the answer has begun: a connection that breaks then (the database
    reset or gone) must not cut off a finished answer, so that failure is logged and the
    connection discarded instead of raised. A failure during the read still raises (and
    answers 503)."""
    s = svc.sessionmaker()
    try:
        yield s
    finally:
        try:
            await s.close()
        except (DBAPIError, OSError, TimeoutError) as exc:
            log.warning("read_session_close_failed", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await s.invalidate()


SessionDep = Annotated[AsyncSession, Depends(session)]


# Declares the ``bearer`` security scheme in the OpenAPI on every operation that needs a
# subject; the checks (and the 401 problem) stay ours, hence auto_error=False.
_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="An access token from /v1/oauth/token."
)


async def current_subject(
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Subject:
    """The party behind the bearer token. The token must name the party's current key."""
    return await subject_of(svc, credentials.credentials if credentials is not None else None)


SEND_PARTY_MAX_AGE = 30.0
"""How stale a cached (party → current key) entry a *send* accepts, in seconds. A send
cannot profit from a stale entry: its object must be signed by the token's key, and the
connection's own state names each party's current key (a rotation is applied to every
connection of the party, a deletion severs them), so a rotated-out key is refused there
(``not_a_party``). Re-reading the party every ``PartyCache.ttl`` seconds per sender was
~3.5% of a send's server CPU (bench/PROFILE.md). Past half that age a send re-reads the
entry in the background (``PartyCache.refresh``) and goes on with it."""


def party_read(svc: Services, party_id: str) -> PartyRead:
    """The read of ``party_id``'s (did, kind) for ``svc.parties`` (``None``: gone)."""

    async def read() -> tuple[str, str] | None:
        async with svc.sessionmaker() as s:
            party = await parties.get(s, party_id)
        return None if party is None else (party.did, party.kind)

    return read


async def subject_of(svc: Services, token: str | None, *, max_age: float | None = None) -> Subject:
    """The party behind the bearer ``token`` (``None``: no bearer token was sent).
    ``max_age``: the oldest cached party entry to accept (default: the cache's ``ttl``)."""
    token = token.strip() if token is not None else None
    if not token:
        raise Unauthenticated(
            "send 'Authorization: Bearer <access token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    party_id, did = svc.tokens.check(token, svc.clock())
    cached = svc.parties.get(party_id, max_age)
    if cached is None:
        cached = await svc.parties.load(party_id, party_read(svc, party_id))
        if cached is None:
            raise Unauthenticated("unknown party", code="invalid_token")
    elif max_age is not None and svc.parties.older_than(party_id, max_age / 2):
        # This request goes on with the entry it has.
        svc.parties.refresh(party_id, party_read(svc, party_id))
    if cached[0] != did:
        raise Unauthenticated("the key of this token was rotated or revoked", code="invalid_token")
    return Subject(party_id=party_id, did=did, kind=cached[1])


SubjectDep = Annotated[Subject, Depends(current_subject)]

OBJECT_BODY_SCHEMA: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["object"],
                "additionalProperties": False,
                "properties": {
                    "object": {
                        "type": "object",
                        "description": "A protocol object signed by you (spec/protocol.md; "
                        "JSON Schemas in spec/schemas/).",
                    }
                },
            }
        }
    },
}


async def signed_object(request: Request, svc: ServicesDep) -> SignedObject:
    """The ``{"object": …}`` request body, parsed strictly and verified (not yet applied)."""
    return await verified_body(request, svc)


async def verified_body(request: Request, svc: Services) -> SignedObject:
    return verify_body(await request.body(), svc)


def _strict_doc(raw: bytes, svc: Services) -> Any:
    """A request body parsed strictly, within the body limit; refusals as problems."""
    try:
        return strict_json.loads(raw, strict_json.Limits(max_bytes=svc.settings.max_body_bytes))
    except errors.ProtocolError as exc:
        raise to_problem(exc) from None


def verify_body(raw: bytes, svc: Services) -> SignedObject:
    """``{"object": …}`` parsed strictly and verified; refusals as problems."""
    doc = _strict_doc(raw, svc)
    try:
        if not isinstance(doc, dict) or set(doc) != {"object"}:
            raise DomainError(
                'the body is {"object": <signed object>}', status=422, code="validation_error"
            )
        return envelope.verify(
            doc["object"],
            now=svc.clock(),
            skew=svc.settings.clock_skew_seconds,
            text_size=len(raw),
        )
    except errors.ProtocolError as exc:
        raise to_problem(exc) from None


SEND_BATCH_MAX = 100
"""The most messages one ``POST /v1/messages/batch`` carries."""


VERIFY_SLICE = 16
"""Objects of a batch verified between two turns given to the event loop."""


async def verify_batch_body(raw: bytes, svc: Services) -> list[SignedObject | DomainError]:
    """``{"objects": [<signed object>, …]}`` parsed strictly; each object verified on its
    own. The body's shape is the request's (a problem for all of it); an object that does
    not verify is that item's refusal, in its place in the list. The event loop gets a
    turn every :data:`VERIFY_SLICE` objects (a verification is ~0.1 ms: 100 in a row
    would hold every other request up for ~10 ms)."""
    doc = _strict_doc(raw, svc)
    if (
        not isinstance(doc, dict)
        or set(doc) != {"objects"}
        or not isinstance(doc["objects"], list)
        or not 1 <= len(doc["objects"]) <= SEND_BATCH_MAX
    ):
        raise DomainError(
            f'the body is {{"objects": [<signed object>, …]}} with 1 to {SEND_BATCH_MAX} objects',
            status=422,
            code="validation_error",
        )
    now = svc.clock()
    skew = svc.settings.clock_skew_seconds
    verified: list[SignedObject | DomainError] = []
    for n, item in enumerate(doc["objects"]):
        if n and n % VERIFY_SLICE == 0:
            await asyncio.sleep(0)
        try:
            verified.append(envelope.verify(item, now=now, skew=skew, text_size=len(raw)))
        except errors.ProtocolError as exc:
            verified.append(to_problem(exc))
    return verified


BATCH_BODY_SCHEMA: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["objects"],
                "additionalProperties": False,
                "properties": {
                    "objects": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": SEND_BATCH_MAX,
                        "items": {
                            "type": "object",
                            "description": "A message object signed by you, naming its "
                            "connection in `cid` (spec/protocol.md).",
                        },
                    }
                },
            }
        }
    },
}


ObjectDep = Annotated[SignedObject, Depends(signed_object)]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the hot write routes need: services, the subject and the verified object."""

    svc: Services
    subject: Subject
    obj: SignedObject


async def signed_request(request: Request) -> SignedRequest:
    """``ServicesDep`` + ``SubjectDep`` + ``ObjectDep`` as one dependency (the subject is
    checked first, as there). FastAPI's per-dependency work was a measurable part of a
    send: the security dependency alone cost ~0.18 ms a request in FastAPI's cache-key
    code (bench/PROFILE.md). So the bearer token is read here, the way ``HTTPBearer``
    reads it, and routes using this declare the scheme with :data:`BEARER_SECURITY`."""
    svc: Services = request.app.state.services
    token = bearer(request.headers.get("authorization"))
    subject = await subject_of(svc, token, max_age=SEND_PARTY_MAX_AGE)
    return SignedRequest(svc, subject, await verified_body(request, svc))


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header, read the way ``HTTPBearer`` reads it."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


SignedRequestDep = Annotated[SignedRequest, Depends(signed_request)]
BEARER_SECURITY: dict[str, Any] = {"security": [{"bearer": []}]}
"""``openapi_extra`` for routes that take :data:`SignedRequestDep` (no ``HTTPBearer``)."""


class PageParams(BaseModel):
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=256, description="From next_cursor.")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type[str] | type[int]) -> Any:
    if cursor is None:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise DomainError(
            "cursor is not one this server issued", status=400, code="invalid_cursor"
        ) from None
    if type(value) is not kind:
        raise DomainError("cursor is not one this server issued", status=400, code="invalid_cursor")
    return value


IDEMPOTENCY_HEADER = "Idempotency-Key"


async def idempotency_of(request: Request) -> tuple[str, str] | None:
    """This request's ``Idempotency-Key`` (checked) and the digest of method, path, body."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    return idempotency(key, request.method, request.url.path, await request.body())


def idempotency(key: str | None, method: str, path: str, body: bytes) -> tuple[str, str] | None:
    """``key`` checked, and the digest of method, path and body it is stored with."""
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise DomainError(
            "Idempotency-Key is 1 to 255 printable ASCII characters",
            status=400,
            code="invalid_idempotency_key",
        )
    digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()
    return key, digest


def _stored(found: IdempotencyRecord, digest: str) -> tuple[int, str]:
    return stored_reply(found.request_hash, found.status_code, found.response, digest)


def replayed_response(status_code: int, text: str) -> Response:
    return Response(
        text,
        status_code=status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


async def stored_response(request: Request, svc: Services, subject_id: str) -> Response | None:
    """The stored response for this request's ``Idempotency-Key``, if a completed request
    with the same key and body exists (for operations that run as several write units and
    so must look before they start)."""
    idempotency = await idempotency_of(request)
    if idempotency is None:
        return None
    key, digest = idempotency
    async with svc.sessionmaker() as session:
        found = await session.get(IdempotencyRecord, (subject_id, key))
    return None if found is None else replayed_response(*_stored(found, digest))


async def run_write(
    request: Request,
    svc: Services,
    subject_id: str | None,
    unit: Callable[[UnitContext], Awaitable[M]],
    *,
    status_code: int = 200,
    savepoint: bool = True,
) -> Response:
    """Run a write unit through the batcher, with Stripe-style ``Idempotency-Key``.

    ``savepoint=False``: see :meth:`WriteBatcher.submit` (only for units that raise before
    their first write).

    The stored response is written in the same transaction as the effect, so a retried
    request either finds the effect with its response, or neither.
    Only successful responses are stored: a refused request changed nothing, and a retry
    is evaluated afresh.
    """
    idempotency = await idempotency_of(request) if subject_id is not None else None
    if idempotency is None or subject_id is None:
        result = await svc.batcher.submit(unit, savepoint=savepoint)
        return JSONResponse(result.model_dump(mode="json"), status_code=status_code)
    key, digest = idempotency

    async def idempotent(ctx: UnitContext) -> tuple[int, str, bool]:
        found = await ctx.session.get(IdempotencyRecord, (subject_id, key))
        if found is not None:
            return (*_stored(found, digest), True)
        result = await unit(ctx)
        text = result.model_dump_json()
        ctx.session.add(
            IdempotencyRecord(
                party_id=subject_id,
                key=key,
                request_hash=digest,
                status_code=status_code,
                response=text,
                created_at=svc.clock(),
            )
        )
        await ctx.session.flush()
        return status_code, text, False

    try:
        code, text, replayed = await svc.batcher.submit(idempotent, savepoint=savepoint)
    except IntegrityError:
        raise Conflict(
            "a request with this Idempotency-Key is in progress", code="idempotency_in_progress"
        ) from None
    if replayed:
        return replayed_response(code, text)
    return Response(text, status_code=code, media_type="application/json")
