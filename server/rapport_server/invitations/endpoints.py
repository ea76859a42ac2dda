"""Invitations: create, list, look up by link token, accept, decline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from ..domain import NotFound
from ..schemas import Connection, Invitation, Page
from ..tables import Invitation as InvitationRow
from ..web import (
    OBJECT_BODY_SCHEMA,
    ObjectDep,
    PageDep,
    ServicesDep,
    SessionDep,
    SubjectDep,
    decode_cursor,
    encode_cursor,
    run_write,
)
from ..writes import UnitContext
from . import service

router = APIRouter(prefix="/v1/invitations", tags=["invitations"])

InvitationId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthenticated"},
    403: {"description": "sender_mismatch / reinvite_blocked / invitation_not_for_you"},
    404: {"description": "not_found"},
    409: {"description": "invitation_used / already_connected / replayed"},
    410: {"description": "invitation_expired"},
    422: {"description": "invalid object (bad_signature, invalid_body, type_mismatch, ...)"},
}


@router.post(
    "",
    summary="Create an invitation",
    status_code=201,
    response_model=Invitation,
    responses=ERRORS,
    openapi_extra={"requestBody": OBJECT_BODY_SCHEMA},
)
async def create(
    request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """Store your signed invitation (single- or multi-use, optional expiry, the grants you
    offer and those you request) and get a link token for it."""

    async def unit(ctx: UnitContext) -> Invitation:
        row = await service.create(ctx, subject, obj, svc.clock())
        return Invitation.of(row, public_url=svc.settings.public_url, owner=True)

    return await run_write(request, svc, subject.party_id, unit, status_code=201)


@router.get("", summary="List my invitations", response_model=Page[Invitation], responses=ERRORS)
async def list_mine(
    svc: ServicesDep,
    subject: SubjectDep,
    session: SessionDep,
    page: PageDep,
    status: Annotated[str | None, Query(pattern="^(open|used|declined|revoked)$")] = None,
) -> Page[Invitation]:
    """The invitations you created, oldest id first."""
    rows = await service.list_mine(
        session, subject, status=status, after=decode_cursor(page.cursor, str), limit=page.limit + 1
    )
    return _page(rows, page.limit, svc.settings.public_url)


def _page(rows: Sequence[InvitationRow], limit: int, public_url: str) -> Page[Invitation]:
    items = list(rows)
    more = len(items) > limit
    items = items[:limit]
    return Page[Invitation](
        data=[Invitation.of(r, public_url=public_url, owner=True) for r in items],
        next_cursor=encode_cursor(items[-1].id) if more else None,
        has_more=more,
    )


@router.get(
    "/by-token/{token}",
    summary="Look up an invitation by its link",
    response_model=Invitation,
    responses={404: {"description": "not_found"}},
)
async def by_token(
    token: Annotated[str, Path(min_length=8, max_length=64)], svc: ServicesDep, session: SessionDep
) -> Invitation:
    """What a link points to: the signed invitation and its status. No login needed (the
    token is the capability); the token itself is not echoed."""
    row = await service.by_token(session, token)
    if row is None:
        raise NotFound("no such invitation")
    return Invitation.of(row, public_url=svc.settings.public_url, owner=False)


@router.post(
    "/{invitation_id}/accept",
    summary="Accept an invitation",
    status_code=201,
    response_model=Connection,
    responses=ERRORS,
    openapi_extra={"requestBody": OBJECT_BODY_SCHEMA},
)
async def accept(
    invitation_id: InvitationId,
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
    obj: ObjectDep,
) -> Response:
    """Accept with your signed accept object, which carries the grants you give the
    inviter. Creates the connection."""

    async def unit(ctx: UnitContext) -> Connection:
        now = svc.clock()
        done = await service.respond(ctx, subject, invitation_id, obj, now)
        return Connection.of(done.connection, done.state, subject.party_id, now)

    return await run_write(request, svc, subject.party_id, unit, status_code=201)


@router.post(
    "/{invitation_id}/decline",
    summary="Decline an invitation",
    response_model=Connection,
    responses=ERRORS,
    openapi_extra={"requestBody": OBJECT_BODY_SCHEMA},
)
async def decline(
    invitation_id: InvitationId,
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
    obj: ObjectDep,
) -> Response:
    """Decline with your signed decline object. The inviter learns of it; an invitation
    addressed to you alone is closed."""

    async def unit(ctx: UnitContext) -> Connection:
        now = svc.clock()
        done = await service.respond(ctx, subject, invitation_id, obj, now)
        return Connection.of(done.connection, done.state, subject.party_id, now)

    return await run_write(request, svc, subject.party_id, unit)
