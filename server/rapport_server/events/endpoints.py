"""``GET /v1/events``: a party's durable event stream, as SSE or as JSON pages."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..domain import DomainError, Subject
from ..metrics import STREAM_FRAMES, STREAMS_OPEN
from ..schemas import Page, StreamEvent
from ..services import Services
from ..web import PageDep, ServicesDep, SubjectDep, decode_cursor, encode_cursor, party_read
from . import service

router = APIRouter(tags=["events"])

PAGE = 100  # events read per query; a slow SSE consumer holds at most one page in memory

SSE_DESCRIPTION = (
    "With `Accept: text/event-stream`: Server-Sent Events, one frame per event "
    "(`id` = event number, `event` = type, `data` = the StreamEvent JSON), a comment "
    "heartbeat every few seconds. Resume with `Last-Event-ID` (or `?after=`). The stream "
    "ends when your access token would expire; reconnect with a fresh token."
)


@router.get(
    "/v1/events",
    summary="My event stream (SSE or JSON pages)",
    response_model=Page[StreamEvent],
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        401: {"description": "unauthenticated"},
    },
    description=SSE_DESCRIPTION,
)
async def events(
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
    page: PageDep,
    after: Annotated[
        int | None, Query(ge=0, le=2**53 - 1, description="Start after this event number.")
    ] = None,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Everything you must learn about — messages, grants, mutes, severs, favour steps,
    new connections — numbered 1, 2, 3, … in commit order. The inbox shares the numbers."""
    start = after if after is not None else (decode_cursor(page.cursor, int) or 0)
    if "text/event-stream" in request.headers.get("accept", ""):
        if last_event_id is not None:
            start = _parse_last_event_id(last_event_id)
        return EventSourceResponse(
            _stream(svc, subject, start),
            ping=svc.settings.stream_heartbeat,
            send_timeout=30,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    async with svc.sessionmaker() as session:
        rows = await service.after(session, subject.party_id, start, page.limit + 1)
    more = len(rows) > page.limit
    rows = list(rows[: page.limit])
    body = {
        "data": [service.to_wire(e, entry) for e, entry in rows],
        "next_cursor": encode_cursor(rows[-1][0].seq) if more else None,
        "has_more": more,
    }
    return JSONResponse(body)


def _parse_last_event_id(value: str) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise DomainError(
            "Last-Event-ID is an event number this server sent", status=400, code="invalid_cursor"
        )
    return int(value)


async def _key_still_current(svc: Services, subject: Subject) -> bool:
    cached = svc.parties.get(subject.party_id)
    if cached is None:
        # Streams of one party re-check together: one read for all of them.
        cached = await svc.parties.load(subject.party_id, party_read(svc, subject.party_id))
        if cached is None:
            return False
    return cached[0] == subject.did


async def _stream(svc: Services, subject: Subject, start: int) -> AsyncIterator[Any]:
    """Read from the table; sleep until a wake-up hint (or the poll interval); repeat.

    Pull-based: the next page is read only after the previous one was written to the
    socket, so a slow consumer never makes the server buffer more than a page.
    """
    last = start
    deadline = time.monotonic() + svc.settings.access_token_ttl
    yield ServerSentEvent(retry=1000, comment="rapport event stream")
    with STREAMS_OPEN.track_inprogress(), svc.notifier.subscribe(subject.party_id) as sub:
        while time.monotonic() < deadline and not svc.notifier.stopping:
            if not await _key_still_current(svc, subject):
                return  # the key was rotated or the account deleted: the stream ends
            sub.clear()
            async with svc.sessionmaker() as session:
                rows = await service.after(session, subject.party_id, last, PAGE)
            for event, entry in rows:
                wire = service.to_wire(event, entry)
                yield ServerSentEvent(
                    data=json.dumps(wire, separators=(",", ":")),
                    id=str(event.seq),
                    event=event.kind,
                )
                STREAM_FRAMES.inc()
                last = event.seq
            if len(rows) < PAGE:
                await sub.wait(min(svc.settings.stream_poll, max(deadline - time.monotonic(), 0)))
