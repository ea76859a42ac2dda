"""Messages: send within a connection, read and acknowledge the inbox, broadcast."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from rapport_protocol import MessageType
from rapport_protocol.types import MessageBody
from sqlalchemy.exc import IntegrityError

from ..connections import repository as conn_repo
from ..connections import service as conn_service
from ..connections.codec import wire_object
from ..connections.endpoints import BODY, WRITE_ERRORS, Cid
from ..domain import Conflict, DomainError, NotFound
from ..schemas import BroadcastResult, InboxMessage, Page, SendResult
from ..tables import Event, LogEntry
from ..web import (
    BEARER_SECURITY,
    ObjectDep,
    PageDep,
    ServicesDep,
    SessionDep,
    SignedRequestDep,
    SubjectDep,
    decode_cursor,
    encode_cursor,
    idempotency_of,
    replayed_response,
    run_write,
    stored_response,
)
from ..writes import UnitContext
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
    svc, obj = signed.svc, signed.obj
    conn_service.require_type(obj, {MessageType.MESSAGE})
    send_request = sending.SendRequest(
        signed.subject, cid, obj, svc.clock(), await idempotency_of(request)
    )

    async def unit(ctx: UnitContext) -> sending.SendReply:
        return await sending.send_one(ctx, send_request)

    # Set-based: every send waiting for the same commit is applied by one send_group call.
    try:
        reply = await svc.batcher.submit_group(sending.send_group, send_request, unit)
    except IntegrityError:
        raise Conflict(
            "a request with this Idempotency-Key is in progress", code="idempotency_in_progress"
        ) from None
    if reply.replayed:
        return replayed_response(reply.status_code, reply.text)
    return Response(reply.text, status_code=reply.status_code, media_type="application/json")


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
    after = ""
    while True:

        async def chunk(ctx: UnitContext, after: str = after) -> service.BroadcastOutcome:
            return await service.broadcast_chunk(
                ctx, broadcast, now, after=after, limit=BROADCAST_CHUNK
            )

        out = await svc.batcher.submit(chunk)
        candidates += out.candidates
        delivered += out.delivered
        held += out.held
        already += out.already
        refused.update(out.refused)
        if out.last is None:
            break
        after = out.last
    if already and not candidates:
        raise DomainError("this broadcast was already delivered", status=409, code="replayed")
    result = BroadcastResult(
        id=obj.id, candidates=candidates, delivered=delivered, held=held, refused=dict(refused)
    )

    async def unit(ctx: UnitContext) -> BroadcastResult:
        return result  # the chunks are committed; this stores the response for the key

    return await run_write(request, svc, subject.party_id, unit, status_code=201)
