"""A connection and everything done within it: grants, mutes, sever, favours, ledger, log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from rapport_protocol import MessageType
from rapport_protocol.envelope import SignedObject
from rapport_protocol.favours import ledger as favour_ledger

from ..domain import NotFound, Subject
from ..schemas import Connection, Favour, Grant, GrantList, Ledger, LogItem, Page
from ..tables import Party
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
from . import receipts, service
from . import repository as repo
from .codec import wire_object
from .service import Applied, require_type, role_of, state_of

router = APIRouter(prefix="/v1/connections", tags=["connections"])
M = MessageType

Cid = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Connection id.")]
ObjId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
GrantIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}(\.[0-9]{1,3})?$")]
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthenticated"},
    404: {"description": "not_found: no such connection of yours"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    400: {"description": "malformed JSON (json_* codes)"},
    403: {"description": "sender_mismatch / grant_missing / grant_expired / muted"},
    409: {
        "description": "replayed / chain_broken / grant_conflict / grant_exists / "
        "favour_invalid_transition / connection_not_active"
    },
    410: {"description": "connection_severed"},
    422: {"description": "invalid object: bad_signature, invalid_body, clock_skew, type_mismatch"},
    429: {"description": "rate_exceeded / quiet_hours, with Retry-After"},
}
BODY = {"requestBody": OBJECT_BODY_SCHEMA}


async def _write(
    request: Request,
    svc: ServicesDep,
    subject: Subject,
    cid: str,
    obj: SignedObject,
    types: set[MessageType],
    view: Callable[[Applied, int], BaseModel],
    status: int = 200,
) -> Response:
    require_type(obj, types)

    async def unit(ctx: UnitContext) -> BaseModel:
        now = svc.clock()
        applied = await service.apply_object(ctx, subject, cid, obj, now)
        return view(applied, now)

    return await run_write(request, svc, subject.party_id, unit, status_code=status)


def _connection_view(subject: Subject) -> Callable[[Applied, int], BaseModel]:
    return lambda a, now: Connection.of(a.connection, a.state, subject.party_id, now)


async def _mine(session: SessionDep, subject: Subject, cid: str) -> Any:
    row = await service.get(session, subject, cid)
    if row is None:
        raise NotFound("no such connection")
    return row


@router.get(
    "", summary="List my connections", response_model=Page[Connection], responses=READ_ERRORS
)
async def list_connections(
    svc: ServicesDep,
    subject: SubjectDep,
    session: SessionDep,
    page: PageDep,
    status: Annotated[Literal["active", "declined", "severed"] | None, Query()] = None,
    counterparty: Annotated[str | None, Query(max_length=36, description="A party id.")] = None,
) -> Page[Connection]:
    """Your connections, filtered by status or counterparty."""
    rows = await repo.list_for(
        session,
        subject.party_id,
        status=status,
        counterparty=counterparty,
        after=decode_cursor(page.cursor, str),
        limit=page.limit + 1,
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    now = svc.clock()
    return Page[Connection](
        data=[Connection.of(r, state_of(r), subject.party_id, now) for r in rows],
        next_cursor=encode_cursor(rows[-1].cid) if more else None,
        has_more=more,
    )


@router.get("/{cid}", summary="Get a connection", response_model=Connection, responses=READ_ERRORS)
async def get_connection(
    cid: Cid, svc: ServicesDep, subject: SubjectDep, session: SessionDep
) -> Connection:
    """One of your connections: status, mutes, grants in force, severance."""
    row = await _mine(session, subject, cid)
    return Connection.of(row, state_of(row), subject.party_id, svc.clock())


@router.get(
    "/{cid}/log", summary="The verifiable log", response_model=Page[LogItem], responses=READ_ERRORS
)
async def get_log(
    cid: Cid, subject: SubjectDep, session: SessionDep, page: PageDep
) -> Page[LogItem]:
    """Every signed object of the connection in order, with the server's receipt (sequence
    number and received time). Verify it with ``rapport_protocol.verify_log``."""
    await _mine(session, subject, cid)
    after = decode_cursor(page.cursor, int) or 0
    rows = await repo.log_page(session, cid, after=after, limit=page.limit + 1)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return Page[LogItem](
        data=[
            LogItem(
                server_seq=r.seq,
                received_time=r.received_at,
                object=wire_object(r.object, r.payload),
            )
            for r in rows
        ],
        next_cursor=encode_cursor(rows[-1].seq) if more else None,
        has_more=more,
    )


@router.get(
    "/{cid}/grants", summary="Grants both ways", response_model=GrantList, responses=READ_ERRORS
)
async def list_grants(
    cid: Cid,
    svc: ServicesDep,
    subject: SubjectDep,
    session: SessionDep,
    history: Annotated[bool, Query(description="Include ended grants.")] = False,
) -> GrantList:
    """What you allow the other party to send you, and what it allows you."""
    row = await _mine(session, subject, cid)
    state = state_of(row)
    me = role_of(row, subject.party_id)
    grants = (
        state.grants.values()
        if history
        else [state.grants[g] for g in state.active_grants.values()]
    )
    now = svc.clock()
    views = [Grant.of(g, me, now) for g in grants]
    return GrantList(
        granted_by_me=[g for g in views if g.direction == "granted_by_me"],
        granted_to_me=[g for g in views if g.direction == "granted_to_me"],
    )


def _grant_view(
    subject: Subject, grant_id: Callable[[Applied], str]
) -> Callable[[Applied, int], BaseModel]:
    def view(a: Applied, now: int) -> BaseModel:
        return Grant.of(a.state.grants[grant_id(a)], role_of(a.connection, subject.party_id), now)

    return view


@router.post(
    "/{cid}/grants",
    summary="Issue a grant",
    status_code=201,
    response_model=Grant,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def issue_grant(
    cid: Cid, request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """Allow the other party to send you a scope/topic, with optional constraints."""
    return await _write(
        request,
        svc,
        subject,
        cid,
        obj,
        {M.GRANT_ISSUE},
        _grant_view(subject, lambda a: obj.id),
        status=201,
    )


@router.post(
    "/{cid}/grants/{grant_id}/amend",
    summary="Amend a grant",
    status_code=201,
    response_model=Grant,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def amend_grant(
    cid: Cid,
    grant_id: GrantIdPath,
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
    obj: ObjectDep,
) -> Response:
    """Replace a grant in force (compare-and-swap: ``body.replaces`` must be the grant in
    force, else 409 ``grant_conflict``)."""
    _path_matches(obj, "replaces", grant_id)
    return await _write(
        request,
        svc,
        subject,
        cid,
        obj,
        {M.GRANT_AMEND},
        _grant_view(subject, lambda a: obj.id),
        status=201,
    )


@router.post(
    "/{cid}/grants/{grant_id}/revoke",
    summary="Revoke a grant",
    response_model=Grant,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def revoke_grant(
    cid: Cid,
    grant_id: GrantIdPath,
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
    obj: ObjectDep,
) -> Response:
    """Withdraw a grant: nothing more is delivered under it."""
    _path_matches(obj, "grant_id", grant_id)
    return await _write(
        request, svc, subject, cid, obj, {M.GRANT_REVOKE}, _grant_view(subject, lambda a: grant_id)
    )


def _path_matches(obj: SignedObject, field: str, value: str) -> None:
    from ..domain import DomainError

    if getattr(obj.body, field, None) != value:
        raise DomainError(f"body.{field} must match the path", status=422, code="path_mismatch")


@router.get(
    "/{cid}/grants/{grant_id}/receipt", summary="Consent receipt of a grant", responses=READ_ERRORS
)
async def grant_receipt(
    cid: Cid,
    grant_id: GrantIdPath,
    svc: ServicesDep,
    subject: SubjectDep,
    session: SessionDep,
    format: Annotated[Literal["kantara", "dpv"], Query()] = "kantara",
) -> dict[str, Any]:
    """A consent receipt derived from the signed log: Kantara Consent Receipt 1.1 JSON, or an
    ISO/IEC TS 27560 record in W3C DPV JSON-LD."""
    row = await _mine(session, subject, cid)
    state = state_of(row)
    grant = state.grants.get(grant_id)
    if grant is None:
        raise NotFound("no such grant in this connection")
    parties = (row.inviter_id, row.acceptor_id)
    grantor = await session.get(Party, parties[grant.grantor])
    grantee = await session.get(Party, parties[1 - grant.grantor])
    if grantor is None or grantee is None:  # parties are never hard-deleted
        raise NotFound("party missing")
    build = receipts.kantara if format == "kantara" else receipts.dpv
    return build(
        grant,
        state,
        row,
        grantor,
        grantee,
        grant_id.split(".")[0],
        svc.settings.public_url,
        svc.clock(),
    )


@router.put(
    "/{cid}/mute",
    summary="Mute the other party",
    response_model=Connection,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def mute(
    cid: Cid, request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """Mute until a time or indefinitely, with exempt topics; ``hold`` keeps messages for
    later, ``reject`` refuses them. Replaces any mute of yours."""
    return await _write(request, svc, subject, cid, obj, {M.MUTE}, _connection_view(subject))


@router.post(
    "/{cid}/unmute",
    summary="Lift my mute",
    response_model=Connection,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def unmute(
    cid: Cid, request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """End your mute now; held messages are released into your inbox."""
    return await _write(request, svc, subject, cid, obj, {M.UNMUTE}, _connection_view(subject))


@router.post(
    "/{cid}/sever",
    summary="Cut the other party off",
    response_model=Connection,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def sever(
    cid: Cid, request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """Terminal: every grant ends both ways, open favours are cancelled, the data
    instruction is applied (``delete`` erases message content but keeps the signed log),
    and ``block_reinvite`` stops the other party inviting you again."""
    return await _write(request, svc, subject, cid, obj, {M.SEVER}, _connection_view(subject))


@router.get("/{cid}/favours", summary="Favours", response_model=list[Favour], responses=READ_ERRORS)
async def list_favours(
    cid: Cid,
    svc: ServicesDep,
    subject: SubjectDep,
    session: SessionDep,
    status: Annotated[Literal["open", "all"], Query()] = "open",
) -> list[Favour]:
    """Favours asked in this connection (open ones by default)."""
    row = await _mine(session, subject, cid)
    now = svc.clock()
    me = role_of(row, subject.party_id)
    views = [Favour.of(f, me, now) for f in state_of(row).favours.values()]
    if status == "open":
        views = [v for v in views if v.status in ("requested", "accepted")]
    return views


@router.post(
    "/{cid}/favours",
    summary="Ask a favour",
    status_code=201,
    response_model=Favour,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def request_favour(
    cid: Cid, request: Request, svc: ServicesDep, subject: SubjectDep, obj: ObjectDep
) -> Response:
    """Ask the other party a favour (needs their ``favour`` grant for that kind);
    ``return_of`` names a favour of theirs this one returns."""
    return await _write(
        request,
        svc,
        subject,
        cid,
        obj,
        {M.FAVOUR_REQUEST},
        _favour_view(subject, obj.id),
        status=201,
    )


def _favour_view(subject: Subject, favour_id: str) -> Callable[[Applied, int], BaseModel]:
    return lambda a, now: Favour.of(
        a.state.favours[favour_id], role_of(a.connection, subject.party_id), now
    )


STEP_TYPES = {
    "accept": M.FAVOUR_ACCEPT,
    "decline": M.FAVOUR_DECLINE,
    "withdraw": M.FAVOUR_WITHDRAW,
    "fulfil": M.FAVOUR_FULFIL,
    "acknowledge": M.FAVOUR_ACKNOWLEDGE,
}


@router.post(
    "/{cid}/favours/{favour_id}/{step}",
    summary="Answer or progress a favour",
    response_model=Favour,
    responses=WRITE_ERRORS,
    openapi_extra=BODY,
)
async def favour_step(
    cid: Cid,
    favour_id: ObjId,
    step: Annotated[Literal["accept", "decline", "withdraw", "fulfil", "acknowledge"], Path()],
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
    obj: ObjectDep,
) -> Response:
    """accept / decline (the one asked), withdraw / acknowledge (the one asking), fulfil
    (the one asked, once accepted)."""
    _path_matches(obj, "favour", favour_id)
    return await _write(
        request, svc, subject, cid, obj, {STEP_TYPES[step]}, _favour_view(subject, favour_id)
    )


@router.get(
    "/{cid}/ledger", summary="Reciprocity ledger", response_model=Ledger, responses=READ_ERRORS
)
async def ledger(cid: Cid, svc: ServicesDep, subject: SubjectDep, session: SessionDep) -> Ledger:
    """Favours given and received by each side, derived from the log."""
    row = await _mine(session, subject, cid)
    sides = favour_ledger(state_of(row).favours, svc.clock())
    me = role_of(row, subject.party_id)
    return Ledger(me=sides[me], them=sides[1 - me])
