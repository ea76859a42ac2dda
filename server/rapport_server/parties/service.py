"""Parties: registration with proof of key possession, lookup, key rotation."""

from __future__ import annotations

import uuid_utils
from rapport_protocol import MessageType, apply
from rapport_protocol import errors as protocol_errors
from rapport_protocol.envelope import SignedObject
from rapport_protocol.types import KeyRotationBody
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.tokens import Assertion
from ..connections import repository as conn_repo
from ..connections.service import require_sender, require_type, state_of
from ..domain import Conflict, DomainError, Subject
from ..protocol_errors import to_problem
from ..tables import Connection, Party, RetiredKey, UsedAssertion
from ..writes import UnitContext


class KeyRetired(DomainError):
    status, code, title = 409, "key_retired", "This key was retired and cannot be used again"


async def consume_assertion(session: AsyncSession, assertion: Assertion) -> None:
    """Record the assertion's ``jti``; a second use is refused (replay)."""
    exists = await session.get(UsedAssertion, assertion.jti)
    if exists is not None:
        raise DomainError("assertion already used", status=400, code="invalid_grant")
    await session.execute(
        insert(UsedAssertion).values(jti=assertion.jti, expires_at=assertion.expires_at)
    )


async def register(
    ctx: UnitContext,
    assertion: Assertion,
    *,
    kind: str,
    display_name: str,
    profile_url: str | None,
    logo_url: str | None,
    now: int,
) -> Party:
    session = ctx.session
    if await session.get(RetiredKey, assertion.did) is not None:
        raise KeyRetired("this key was retired")
    existing = await session.execute(select(Party.id).where(Party.did == assertion.did))
    if existing.first() is not None:
        raise Conflict("a party with this key is already registered", code="already_registered")
    await consume_assertion(session, assertion)
    party = Party(
        id=str(uuid_utils.uuid7()),
        kind=kind,
        did=assertion.did,
        display_name=display_name,
        profile_url=profile_url,
        logo_url=logo_url,
        created_at=now,
    )
    session.add(party)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "a party with this key is already registered", code="already_registered"
        ) from None
    return party


async def get(session: AsyncSession, party_id: str) -> Party | None:
    party = await session.get(Party, party_id)
    return None if party is None or party.deleted_at is not None else party


async def rotate_key(
    ctx: UnitContext, subject: Subject, obj: SignedObject, new_key: Assertion, now: int
) -> Party:
    """Move the party to a new key. The old key signed ``obj``; ``new_key`` proves the new.

    The rotation statement is appended to every connection log of the party, so each log
    still verifies on its own; the old key stops working at once.
    """
    require_type(obj, {MessageType.KEY_ROTATION})
    require_sender(subject, obj)
    body = obj.body
    assert isinstance(body, KeyRotationBody)
    if body.new_key != new_key.did:
        raise DomainError(
            "the assertion must be signed by body.new_key", status=422, code="invalid_body"
        )
    session = ctx.session
    if await session.get(RetiredKey, new_key.did) is not None:
        raise KeyRetired("the new key was retired before")
    taken = await session.execute(select(Party.id).where(Party.did == new_key.did))
    if taken.first() is not None:
        raise Conflict("the new key belongs to a party already", code="already_registered")
    await consume_assertion(session, new_key)
    rows = (
        (
            await session.execute(
                select(Connection).where(
                    conn_repo.mine(subject.party_id), Connection.status == "active"
                )
            )
        )
        .scalars()
        .all()
    )
    for row in rows:
        try:
            new_state = apply(state_of(row), obj, now)
        except protocol_errors.ProtocolError as exc:
            raise to_problem(exc) from None
        await conn_repo.append(session, row.cid, obj, subject.party_id, now)
        await conn_repo.save_state(session, row, new_state, now)
    await session.execute(
        insert(RetiredKey).values(
            did=subject.did, party_id=subject.party_id, retired_at=now, successor=new_key.did
        )
    )
    await session.execute(update(Party).where(Party.id == subject.party_id).values(did=new_key.did))
    party = await session.get(Party, subject.party_id, populate_existing=True)
    assert party is not None
    return party
