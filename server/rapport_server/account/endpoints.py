"""My account: export everything, or delete it (severing every connection, signed by me)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from rapport_protocol import MessageType, envelope, errors, strict_json
from rapport_protocol.types import SeverBody
from sqlalchemy import delete, select, update

from ..connections import repository as conn_repo
from ..connections import service as conn_service
from ..connections.codec import wire_object
from ..domain import DomainError, NotFound
from ..invitations.service import revoke_invitations_of
from ..protocol_errors import to_problem
from ..schemas import Connection, Invitation, Party
from ..tables import Connection as ConnectionRow
from ..tables import Event, LogEntry, RetiredKey, WebhookDelivery, WebhookEndpoint
from ..tables import Invitation as InvitationRow
from ..tables import Party as PartyRow
from ..web import ServicesDep, SessionDep, SubjectDep, run_write
from ..writes import UnitContext

router = APIRouter(prefix="/v1/account", tags=["account"])


class Export(BaseModel):
    party: Party
    exported_time: int
    connections: list[dict[str, Any]]
    invitations: list[Invitation]
    inbox: list[dict[str, Any]]


@router.get(
    "/export",
    summary="Export all my data",
    response_model=Export,
    responses={401: {"description": "unauthenticated"}},
)
async def export(svc: ServicesDep, subject: SubjectDep, session: SessionDep) -> Export:
    """Everything the server holds about you: your party, every connection with its full
    signed log, your invitations and your inbox."""
    party = await session.get(PartyRow, subject.party_id)
    if party is None:
        raise NotFound("no such party")
    now = svc.clock()
    rows = (
        (
            await session.execute(
                select(ConnectionRow)
                .where(conn_repo.mine(subject.party_id))
                .order_by(ConnectionRow.cid)
            )
        )
        .scalars()
        .all()
    )
    connections = []
    for row in rows:
        log = (
            (
                await session.execute(
                    select(LogEntry).where(LogEntry.cid == row.cid).order_by(LogEntry.seq)
                )
            )
            .scalars()
            .all()
        )
        connections.append(
            {
                "connection": Connection.of(
                    row, conn_service.state_of(row), subject.party_id, now
                ).model_dump(mode="json"),
                "log": [
                    {
                        "server_seq": e.seq,
                        "received_time": e.received_at,
                        "object": wire_object(e.object, e.payload),
                    }
                    for e in log
                ],
            }
        )
    invitations = (
        (
            await session.execute(
                select(InvitationRow).where(InvitationRow.inviter_id == subject.party_id)
            )
        )
        .scalars()
        .all()
    )
    events = (
        (
            await session.execute(
                select(Event).where(Event.party_id == subject.party_id).order_by(Event.seq)
            )
        )
        .scalars()
        .all()
    )
    return Export(
        party=Party.of(party),
        exported_time=now,
        connections=connections,
        invitations=[
            Invitation.of(i, public_url=svc.settings.public_url, owner=True) for i in invitations
        ],
        inbox=[
            {
                "id": e.seq,
                "cid": e.cid,
                "kind": e.kind,
                "server_seq": e.log_seq,
                "created_time": e.created_at,
                "acked_time": e.acked_at,
            }
            for e in events
        ],
    )


class Deleted(BaseModel):
    deleted: Literal[True] = True
    severed: int


@router.post(
    "/delete",
    summary="Delete my account",
    response_model=Deleted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["objects"],
                        "properties": {
                            "objects": {
                                "type": "array",
                                "items": {"type": "object"},
                                "description": "One signed sever object for each of your "
                                "active connections.",
                            }
                        },
                    }
                }
            },
        }
    },
    responses={
        401: {"description": "unauthenticated"},
        422: {"description": "missing_sever: a connection has no sever object"},
    },
)
async def delete_account(request: Request, svc: ServicesDep, subject: SubjectDep) -> Response:
    """Sever every active connection with the data instruction in your signed sever objects,
    revoke your open invitations, retire your key and delete your party."""
    try:
        doc = strict_json.loads(
            await request.body(), strict_json.Limits(max_bytes=svc.settings.max_body_bytes)
        )
        if (
            not isinstance(doc, dict)
            or set(doc) != {"objects"}
            or not isinstance(doc["objects"], list)
        ):
            raise DomainError('body is {"objects": [...]}', status=422, code="validation_error")
        now = svc.clock()
        objects = [
            envelope.verify(o, now=now, skew=svc.settings.clock_skew_seconds)
            for o in doc["objects"]
        ]
    except errors.ProtocolError as exc:
        raise to_problem(exc) from None
    by_cid = {}
    for obj in objects:
        conn_service.require_type(obj, {MessageType.SEVER})
        assert isinstance(obj.body, SeverBody)
        if obj.cid is not None:
            by_cid[obj.cid] = obj

    async def unit(ctx: UnitContext) -> Deleted:
        session = ctx.session
        active = (
            (
                await session.execute(
                    select(ConnectionRow.cid).where(
                        conn_repo.mine(subject.party_id), ConnectionRow.status == "active"
                    )
                )
            )
            .scalars()
            .all()
        )
        missing = [cid for cid in active if cid not in by_cid]
        if missing:
            raise DomainError(
                "every active connection needs a signed sever object",
                status=422,
                code="missing_sever",
                missing=missing,
            )
        t = svc.clock()
        for cid in active:
            await conn_service.apply_object(ctx, subject, cid, by_cid[cid], t)
        await revoke_invitations_of(session, subject.party_id)
        # Nothing more is delivered to a deleted party's receivers.
        endpoints = select(WebhookEndpoint.id).where(WebhookEndpoint.party_id == subject.party_id)
        await session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.endpoint_id.in_(endpoints)),
            execution_options={"synchronize_session": False},  # no RETURNING of every id
        )
        await session.execute(
            delete(WebhookEndpoint).where(WebhookEndpoint.party_id == subject.party_id)
        )
        session.add(RetiredKey(did=subject.did, party_id=subject.party_id, retired_at=t))
        await session.execute(
            update(PartyRow).where(PartyRow.id == subject.party_id).values(deleted_at=t)
        )
        ctx.after_commit(lambda: svc.parties.drop(subject.party_id))
        return Deleted(severed=len(active))

    return await run_write(request, svc, subject.party_id, unit)
