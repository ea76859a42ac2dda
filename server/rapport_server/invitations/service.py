"""Invitations: create, look up, accept (which creates the connection) and decline."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from rapport_protocol import ConnectionState, MessageType, apply, errors, verify
from rapport_protocol.envelope import SignedObject
from rapport_protocol.state import start
from rapport_protocol.types import InvitationBody
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..connections import repository as conn_repo
from ..connections.codec import object_json
from ..connections.service import require_sender, require_type
from ..domain import Conflict, DomainError, NotFound, Subject
from ..protocol_errors import to_problem
from ..tables import Block, Connection, Invitation, LogEntry, Party
from ..writes import UnitContext

M = MessageType


class ReinviteBlocked(DomainError):
    status, code, title = 403, "reinvite_blocked", "You were cut off by this party"


@dataclass(frozen=True, slots=True)
class Accepted:
    connection: Connection
    state: ConnectionState


async def create(ctx: UnitContext, subject: Subject, obj: SignedObject, now: int) -> Invitation:
    """Store a signed invitation and give it a link token."""
    require_type(obj, {M.INVITATION})
    require_sender(subject, obj)
    body = obj.body
    assert isinstance(body, InvitationBody)
    if body.kind != subject.kind:
        raise DomainError("body.kind must be your party kind", status=422, code="invalid_body")
    session = ctx.session
    for did in obj.to:
        invitee = await _party_by_did(session, did)
        if invitee is not None and await _blocked(
            session, blocker=invitee.id, blocked=subject.party_id
        ):
            raise ReinviteBlocked("this party cut you off; only they can reconnect")
    if await session.get(Invitation, obj.id) is not None:
        raise DomainError("this invitation was already created", status=409, code="replayed")
    row = Invitation(
        id=obj.id,
        inviter_id=subject.party_id,
        token=secrets.token_urlsafe(24),
        object=object_json(obj),
        multi_use=body.multi_use,
        max_uses=(body.max_uses if body.multi_use else 1),
        uses=0,
        to_did=obj.to[0] if len(obj.to) == 1 else None,
        expires_at=obj.expires_time,
        status="open",
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def _party_by_did(session: AsyncSession, did: str) -> Party | None:
    result = await session.execute(select(Party).where(Party.did == did))
    return result.scalar_one_or_none()


async def _blocked(session: AsyncSession, *, blocker: str, blocked: str) -> bool:
    result = await session.execute(
        select(Block.blocker_id).where(Block.blocker_id == blocker, Block.blocked_id == blocked)
    )
    return result.first() is not None


async def by_token(session: AsyncSession, token: str) -> Invitation | None:
    result = await session.execute(select(Invitation).where(Invitation.token == token))
    return result.scalar_one_or_none()


async def list_mine(
    session: AsyncSession, subject: Subject, *, status: str | None, after: str | None, limit: int
) -> Sequence[Invitation]:
    query = select(Invitation).where(Invitation.inviter_id == subject.party_id)
    if status is not None:
        query = query.where(Invitation.status == status)
    if after is not None:
        query = query.where(Invitation.id > after)
    return (await session.execute(query.order_by(Invitation.id).limit(limit))).scalars().all()


def invitation_object(row: Invitation) -> SignedObject:
    import json

    return verify(json.loads(row.object))


async def respond(
    ctx: UnitContext, subject: Subject, invitation_id: str, obj: SignedObject, now: int
) -> Accepted:
    """Accept or decline an invitation: creates the connection (active or declined)."""
    require_type(obj, {M.ACCEPT, M.DECLINE})
    require_sender(subject, obj)
    session = ctx.session
    inv = await session.get(Invitation, invitation_id)
    if inv is None or (inv.to_did is not None and inv.to_did != subject.did):
        raise NotFound("no such invitation")
    if inv.status != "open":
        raise to_problem(errors.InvitationUsed(f"the invitation is {inv.status}"))
    if inv.inviter_id == subject.party_id:
        raise to_problem(errors.InvitationNotForYou("you cannot answer your own invitation"))
    inv_obj = invitation_object(inv)
    try:
        state = apply(start(inv_obj), obj, now)
    except errors.ProtocolError as exc:
        raise to_problem(exc) from None
    assert state.cid is not None
    if await session.get(Connection, state.cid) is not None:
        raise Conflict("you already answered this invitation", code="already_connected")
    if obj.type is M.ACCEPT:
        # Uses are counted with a guarded update so concurrent acceptances cannot overshoot.
        used = await session.execute(
            update(Invitation)
            .where(
                Invitation.id == inv.id,
                Invitation.status == "open",
                (Invitation.max_uses.is_(None)) | (Invitation.uses < Invitation.max_uses),
            )
            .values(uses=Invitation.uses + 1)
            .execution_options(synchronize_session=False)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise to_problem(errors.InvitationUsed("the invitation has no uses left"))
        if inv.max_uses is not None and inv.uses + 1 >= inv.max_uses:
            await session.execute(
                update(Invitation).where(Invitation.id == inv.id).values(status="used")
            )
        # Accepting an invitation from someone you cut off reopens the door: lift the block.
        await session.execute(
            delete(Block).where(
                Block.blocker_id == subject.party_id, Block.blocked_id == inv.inviter_id
            )
        )
    elif inv.to_did is not None:
        await session.execute(
            update(Invitation).where(Invitation.id == inv.id).values(status="declined")
        )
    row = Connection(
        cid=state.cid,
        invitation_id=inv.id,
        inviter_id=inv.inviter_id,
        acceptor_id=subject.party_id,
        status=state.status,
        state=state.model_dump_json(),
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await session.execute(
        insert(LogEntry),
        [
            {
                "cid": row.cid,
                "object_id": inv_obj.id,
                "type": inv_obj.type.value,
                "sender_id": inv.inviter_id,
                "object": inv.object,
                "payload": None,
                "received_at": inv.created_at,
            },
        ],
    )
    seq = await conn_repo.append(session, row.cid, obj, subject.party_id, now)
    if state.status == "active":
        await conn_repo.sync_grants(session, row, state)
    await conn_repo.add_event(session, inv.inviter_id, row.cid, "connection", seq, now)
    return Accepted(row, state)


async def revoke_invitations_of(session: AsyncSession, party_id: str) -> None:
    await session.execute(
        update(Invitation)
        .where(Invitation.inviter_id == party_id, Invitation.status == "open")
        .values(status="revoked")
    )
