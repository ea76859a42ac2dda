"""Messages: send within a connection, read and acknowledge the inbox, broadcast."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
from collections import Counter, deque
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from rapport_protocol import MessageType
from rapport_protocol.envelope import SignedObject
from rapport_protocol.types import MessageBody
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from ..connections import repository as conn_repo
from ..connections import service as conn_service
from ..connections.codec import wire_object
from ..connections.endpoints import BODY, WRITE_ERRORS, Cid
from ..domain import Conflict, DomainError, NotFound, Subject
from ..problems import domain_problem, store_unavailable
from ..schemas import BroadcastResult, InboxMessage, Page, SendBatchResult, SendResult
from ..services import Services
from ..tables import Event, LogEntry
from ..web import (
    BATCH_BODY_SCHEMA,
    BEARER_SECURITY,
    IDEMPOTENCY_HEADER,
    SEND_PARTY_MAX_AGE,
    ObjectDep,
    PageDep,
    ServicesDep,
    SessionDep,
    SignedRequestDep,
    SubjectDep,
    bearer,
    decode_cursor,
    encode_cursor,
    idempotency,
    replayed_response,
    run_write,
    stored_response,
    subject_of,
    verify_batch_body,
    verify_body,
)
from ..writes import StoreUnavailable, Unit, UnitContext
from . import sending, service

router = APIRouter(tags=["messages"])

BROADCAST_CHUNK = 1000  # connections decided and written per transaction


@router.post(
    "/v1/connections/{cid}/messages",
    summary="Send a message",
    status_code=201,
    response_model=SendResult,
    responses=WRITE_ERRORS,
    openapi_extra={**BODY, **BEARER_SECURITY},
)
async def send(cid: Cid, request: Request, signed: SignedRequestDep) -> Response:
    """Send a signed message (content in ``payload``). Accepted only if the recipient's
    grants allow it now; otherwise refused with the reason (403/409/410/429)."""
    # Served by SendRoute below; this route documents the operation and answers requests
    # SendRoute passes on (a cid that is not 32 hex digits: 422, as for every route).
    key = request.headers.get(IDEMPOTENCY_HEADER)
    reply = await accept_send(
        signed.svc, signed.subject, cid, signed.obj, key, request.url.path, await request.body()
    )
    if reply.replayed:
        return replayed_response(reply.status_code, reply.text)
    return Response(reply.text, status_code=reply.status_code, media_type="application/json")


async def accept_send(
    svc: Services,
    subject: Subject,
    cid: str,
    obj: SignedObject,
    key: str | None,
    path: str,
    body: bytes,
) -> sending.SendReply:
    """The send after its subject and object are verified, for both routes: the type
    check, the ``Idempotency-Key`` (``key``, digested with the path and body), then the
    write batcher (set-based: every send waiting for the same commit is applied by one
    ``Sends`` group call)."""
    conn_service.require_type(obj, {MessageType.MESSAGE})
    idem = idempotency(key, "POST", path, body)
    send_request = sending.SendRequest(subject, cid, obj, svc.clock(), idem)
    try:
        return await svc.batcher.submit_group(svc.sends, send_request, _fallback(svc, send_request))
    except IntegrityError:
        raise _in_progress() from None


@router.post(
    "/v1/messages/batch",
    summary="Send several messages",
    status_code=200,
    response_model=SendBatchResult,
    responses=WRITE_ERRORS,
    openapi_extra={"requestBody": BATCH_BODY_SCHEMA, **BEARER_SECURITY},
)
async def send_batch(request: Request) -> Response:
    """Send up to 100 signed messages, on any of your connections, in one request. Each is
    decided on its own, exactly as if sent alone and in list order (several on one chain
    follow each other); the answer has one result per object: the 201 ``message`` or the
    refusal's ``problem``. The body's shape and the bearer token concern the whole request.
    With an ``Idempotency-Key``, a retry with the same body answers the accepted messages
    from their stored results (``replayed``) and decides the refused ones again."""
    svc: Services = request.app.state.services
    token = bearer(request.headers.get("authorization"))
    subject = await subject_of(svc, token, max_age=SEND_PARTY_MAX_AGE)
    body = await request.body()
    objects = await verify_batch_body(body, svc)
    idem = idempotency(request.headers.get(IDEMPOTENCY_HEADER), "POST", request.url.path, body)
    now = svc.clock()
    waiting: list[asyncio.Future[sending.SendReply] | DomainError] = []
    for i, obj in enumerate(objects):
        if isinstance(obj, DomainError):
            waiting.append(obj)
            continue
        try:
            conn_service.require_type(obj, {MessageType.MESSAGE})
            if obj.cid is None:
                raise DomainError(
                    "a message sent in a batch names its connection (cid)",
                    status=422,
                    code="invalid_object",
                )
        except DomainError as exc:
            waiting.append(exc)
            continue
        item_idem = None if idem is None else (_item_key(idem[0], i), idem[1])
        send_request = sending.SendRequest(subject, obj.cid, obj, now, item_idem)
        waiting.append(
            svc.batcher.enqueue_group(svc.sends, send_request, _fallback(svc, send_request))
        )
    items = []
    for entry in waiting:
        if isinstance(entry, DomainError):
            items.append(_problem_item(entry))
            continue
        try:
            reply = await entry
        except DomainError as exc:
            items.append(_problem_item(exc))
        except IntegrityError:
            items.append(_problem_item(_in_progress()))
        except StoreUnavailable:
            items.append(_problem_item(store_unavailable()))
        else:
            replayed = "true" if reply.replayed else "false"
            items.append(
                f'{{"status":{reply.status_code},"message":{reply.text},'
                f'"problem":null,"replayed":{replayed}}}'
            )
    text = '{"results":[' + ",".join(items) + "]}"
    return Response(text, status_code=200, media_type="application/json")


def _in_progress() -> Conflict:
    """A send whose ``Idempotency-Key`` another request is still writing (a race on the
    stored record's primary key)."""
    return Conflict(
        "a request with this Idempotency-Key is in progress", code="idempotency_in_progress"
    )


def _item_key(key: str, index: int) -> str:
    """The key a batch's item ``index`` is stored under: a control character (which a
    client's key cannot contain) so it is never a single send's key, and the key digested
    so that it fits the column whatever the client's key length."""
    return f"\x1fbatch:{hashlib.sha256(key.encode()).hexdigest()[:48]}:{index}"


def _fallback(svc: Services, send_request: sending.SendRequest) -> Unit[sending.SendReply]:
    async def unit(ctx: UnitContext) -> sending.SendReply:
        return await svc.sends.one(ctx, send_request)

    return unit


def _problem_item(exc: DomainError) -> str:
    item = {
        "status": exc.status,
        "message": None,
        "problem": domain_problem(exc),
        "replayed": False,
    }
    return json.dumps(item, separators=(",", ":"))


_SEND_PATH = re.compile(r"/v1/connections/([0-9a-f]{32})/messages")
_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"idempotent-replayed", b"true")


class SendRoute:
    """``POST /v1/connections/{cid}/messages`` as plain ASGI, in front of FastAPI.

    The send is the hot path, and FastAPI's per-request machinery (routing through every
    route before it, dependency solving, ``Request`` and ``Response`` objects) cost more
    server CPU than the send's own work (bench/PROFILE.md, session 4). This does what the
    ``send`` route above does — the same checks in the same order, through the same
    functions — and leaves every other request, and a send whose cid is malformed, to the
    app. Errors are rendered by the app's own exception handlers, so problems are alike.
    It runs inside the request-id and body-limit middlewares.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _SEND_PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        try:
            status, text, headers = await self._send(app, scope, receive, match[1])
        except Exception as exc:
            handler = next(
                (
                    app.exception_handlers[c]
                    for c in type(exc).__mro__
                    if c in app.exception_handlers
                ),
                None,
            )
            if handler is None:
                raise
            response = await handler(StarletteRequest(scope, receive), exc)
            await response(scope, receive, send)
            return
        data = text.encode()
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    @staticmethod
    async def _send(
        app: Any, scope: Scope, receive: Receive, cid: str
    ) -> tuple[int, str, list[tuple[bytes, bytes]]]:
        svc: Services = app.state.services
        authorization = key = None
        for name, value in scope["headers"]:  # the first of each, as Request.headers
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
        subject = await subject_of(svc, bearer(authorization), max_age=SEND_PARTY_MAX_AGE)
        chunks = []
        while True:  # the body-limit middleware has bounded it already
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        obj = verify_body(body, svc)
        reply = await accept_send(svc, subject, cid, obj, key, scope["path"], body)
        headers = [_JSON, _REPLAYED] if reply.replayed else [_JSON]
        return reply.status_code, reply.text, headers


def _inbox_item(event: Event, entry: LogEntry) -> InboxMessage:
    obj = wire_object(entry.object, entry.payload)
    body = MessageBody.model_validate(obj["body"])
    return InboxMessage(
        id=event.seq,
        cid=event.cid,
        object_id=entry.object_id,
        sender=obj["from"],
        topic=body.topic,
        content_type=body.content_type,
        content=entry.payload,
        received_time=entry.received_at,
        acked_time=event.acked_at,
        object=obj,
    )


@router.get(
    "/v1/messages",
    summary="My inbox",
    response_model=Page[InboxMessage],
    responses={401: {"description": "unauthenticated"}},
)
async def inbox(
    svc: ServicesDep,
    subject: SubjectDep,
    session: SessionDep,
    page: PageDep,
    cid: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    unacked: Annotated[bool, Query(description="Only messages not yet acknowledged.")] = False,
) -> Page[InboxMessage]:
    """Messages delivered to you, oldest first, by your stream's event number. Messages
    held by a mute appear once it ends."""
    now = svc.clock()
    if await service.has_due_held(session, subject.party_id, now):

        async def release(ctx: UnitContext) -> int:
            return await conn_repo.release_held(ctx.session, subject.party_id, now)

        await svc.batcher.submit(release)
        await session.rollback()  # end the read snapshot taken before the release
    after = decode_cursor(page.cursor, int) or 0
    rows = await service.inbox(
        session, subject, after=after, limit=page.limit + 1, cid=cid, unacked=unacked
    )
    more = len(rows) > page.limit
    rows = list(rows[: page.limit])
    return Page[InboxMessage](
        data=[_inbox_item(e, log) for e, log in rows],
        next_cursor=encode_cursor(rows[-1][0].seq) if more else None,
        has_more=more,
    )


@router.post(
    "/v1/messages/{message_id}/ack",
    summary="Acknowledge receipt",
    response_model=InboxMessage,
    responses={401: {"description": "unauthenticated"}, 404: {"description": "not_found"}},
)
async def ack(
    message_id: Annotated[int, Path(ge=1, le=2**62)],
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
) -> Response:
    """Mark a message of your inbox as received (idempotent)."""

    async def unit(ctx: UnitContext) -> InboxMessage:
        event = await service.ack(ctx, subject, message_id, svc.clock())
        if event is None or event.log_seq is None:
            raise NotFound("no such message in your inbox")
        entry = await ctx.session.get(LogEntry, event.log_seq)
        assert entry is not None
        return _inbox_item(event, entry)

    return await run_write(request, svc, subject.party_id, unit)


@router.post(
    "/v1/broadcasts",
    summary="Broadcast to every connection that permits it",
    status_code=201,
    response_model=BroadcastResult,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def broadcast(
    request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """One signed message (no ``cid``) delivered to each of your connections whose grants
    permit its topic now; returns counts by outcome. Selection is set-based, in chunks of
    connections that each commit on their own (other writes are not held up by a large
    fan-out); retrying an interrupted broadcast delivers to the connections it missed."""
    broadcast = service.check_broadcast(subject, obj)
    stored = await stored_response(request, svc, subject.party_id)
    if stored is not None:
        return stored
    now = svc.clock()
    candidates = delivered = held = already = 0
    refused: Counter[str] = Counter()

    def add(out: service.BroadcastOutcome) -> None:
        nonlocal candidates, delivered, held, already
        candidates += out.candidates
        delivered += out.delivered
        held += out.held
        already += out.already
        refused.update(out.refused)

    # The next chunk is read and decided while the current ones are written: one at a
    # time through the batcher (SQLite), or up to one per lane, each in its own
    # transaction (PostgreSQL). Chunks are disjoint ranges of cids, decided ahead.
    lanes = svc.broadcast_lanes or [svc.batcher]
    ahead = service.Lookahead(svc.sessionmaker, broadcast, now, BROADCAST_CHUNK)
    writing: deque[asyncio.Task[service.BroadcastOutcome]] = deque()
    after = ""
    try:
        for n in itertools.count():
            decided = await ahead.decided(after)

            async def chunk(
                ctx: UnitContext, after: str = after, decided: service.Decided = decided
            ) -> service.BroadcastOutcome:
                return await service.broadcast_chunk(
                    ctx, broadcast, now, after=after, limit=BROADCAST_CHUNK, decided=decided
                )

            writing.append(asyncio.create_task(lanes[n % len(lanes)].submit(chunk)))
            if decided.last is None:
                break
            after = decided.last
            if len(writing) == len(lanes):
                add(await asyncio.shield(writing[0]))
                writing.popleft()
        while writing:
            add(await asyncio.shield(writing[0]))
            writing.popleft()
    finally:
        # A chunk failed (or the request was cancelled: shielded, the chunk being waited
        # for is not cancelled with it): let the others finish, so that none is left
        # running; the committed ones are skipped when the client retries.
        await asyncio.gather(*writing, return_exceptions=True)
        await ahead.close()
    if already and not candidates:
        raise DomainError("this broadcast was already delivered", status=409, code="replayed")
    result = BroadcastResult(
        id=obj.id, candidates=candidates, delivered=delivered, held=held, refused=dict(refused)
    )

    async def unit(ctx: UnitContext) -> BroadcastResult:
        return result  # the chunks are committed; this stores the response for the key

    return await run_write(request, svc, subject.party_id, unit, status_code=201)
