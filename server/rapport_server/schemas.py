"""Response models shared by the routers (the OpenAPI reads like a manual from these)."""

from __future__ import annotations

import json
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from rapport_protocol import ConnectionState
from rapport_protocol.favours import Favour as FavourState
from rapport_protocol.favours import LedgerSide
from rapport_protocol.state import Grant as GrantState

from .tables import Connection as ConnectionRow
from .tables import Invitation as InvitationRow
from .tables import Party as PartyRow

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(Out, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")
    has_more: bool


class Party(Out):
    id: str
    kind: Literal["business", "person"]
    did: str
    display_name: str
    profile_url: str | None = None
    logo_url: str | None = None
    created_time: int

    @classmethod
    def of(cls, row: PartyRow) -> Party:
        return cls(
            id=row.id,
            kind="business" if row.kind == "business" else "person",
            did=row.did,
            display_name=row.display_name,
            profile_url=row.profile_url,
            logo_url=row.logo_url,
            created_time=row.created_at,
        )


class Invitation(Out):
    id: str
    token: str | None = Field(description="Link token; only shown to the inviter.")
    url: str | None = None
    status: str
    multi_use: bool
    max_uses: int | None
    uses: int
    expires_time: int | None
    created_time: int
    object: dict[str, Any] = Field(description="The signed invitation.")

    @classmethod
    def of(cls, row: InvitationRow, *, public_url: str, owner: bool) -> Invitation:
        return cls(
            id=row.id,
            token=row.token if owner else None,
            url=f"{public_url.rstrip('/')}/app/invite/{row.token}" if owner else None,
            status=row.status,
            multi_use=row.multi_use,
            max_uses=row.max_uses,
            uses=row.uses,
            expires_time=row.expires_at,
            created_time=row.created_at,
            object=json.loads(row.object),
        )


class Grant(Out):
    id: str
    direction: Literal["granted_by_me", "granted_to_me"]
    scope: str
    topic: str
    purpose: str | None
    rate: dict[str, Any] | None
    quiet_hours: dict[str, Any] | None
    expires_time: int | None
    status: str
    issued_time: int
    ended_time: int | None
    replaces: str | None
    used_in_window: int

    @classmethod
    def of(cls, grant: GrantState, my_role: int, now: int) -> Grant:
        spec = grant.spec
        # The record may hold older deliveries until the next counted one prunes it.
        used = len(grant.counted_at(now))
        return cls(
            id=grant.id,
            direction="granted_by_me" if grant.grantor == my_role else "granted_to_me",
            scope=spec.scope,
            topic=spec.topic,
            purpose=spec.purpose,
            rate=spec.rate.model_dump() if spec.rate else None,
            quiet_hours=spec.quiet_hours.model_dump() if spec.quiet_hours else None,
            expires_time=spec.expires_time,
            status=grant.status,
            issued_time=grant.issued_time,
            ended_time=grant.ended_time,
            replaces=grant.replaces,
            used_in_window=used,
        )


class MuteView(Out):
    until: int | None
    exempt_topics: list[str]
    mode: str


class Connection(Out):
    cid: str
    status: str
    my_role: Literal["inviter", "acceptor"]
    counterparty: str = Field(description="The other party's id.")
    counterparty_did: str | None
    counterparty_kind: str | None
    created_time: int
    updated_time: int
    muted_by_me: MuteView | None
    muted_by_them: MuteView | None
    grants: list[Grant]
    severance: dict[str, Any] | None
    data_instruction: str | None

    @classmethod
    def of(cls, row: ConnectionRow, state: ConnectionState, party_id: str, now: int) -> Connection:
        me = 0 if row.inviter_id == party_id else 1
        them = 1 - me

        def mute(role: int) -> MuteView | None:
            m = state.mute_by(role)
            if m is None or not m.active_at(now):
                return None
            return MuteView(until=m.until, exempt_topics=list(m.exempt_topics), mode=m.mode)

        return cls(
            cid=row.cid,
            status=state.status_at(now),
            my_role="inviter" if me == 0 else "acceptor",
            counterparty=row.acceptor_id if me == 0 else row.inviter_id,
            counterparty_did=state.dids[them],
            counterparty_kind=state.kinds[them],
            created_time=row.created_at,
            updated_time=row.updated_at,
            muted_by_me=mute(me),
            muted_by_them=mute(them),
            grants=[Grant.of(state.grants[g], me, now) for g in state.active_grants.values()],
            severance=state.severance.model_dump() if state.severance else None,
            data_instruction=row.data_instruction,
        )


class LogItem(Out):
    server_seq: int
    received_time: int
    object: dict[str, Any]


class GrantList(Out):
    granted_by_me: list[Grant]
    granted_to_me: list[Grant]


class Favour(Out):
    id: str
    requester: Literal["me", "them"]
    kind: str
    description: str
    status: str
    requested_time: int
    expires_time: int | None
    due_time: int | None
    return_of: str | None
    updated_time: int

    @classmethod
    def of(cls, favour: FavourState, my_role: int, now: int) -> Favour:
        return cls(
            id=favour.id,
            requester="me" if favour.requester == my_role else "them",
            kind=favour.kind,
            description=favour.description,
            status=favour.status_at(now),
            requested_time=favour.requested_time,
            expires_time=favour.expires_time,
            due_time=favour.due_time,
            return_of=favour.return_of,
            updated_time=favour.updated_time,
        )


class Ledger(Out):
    me: LedgerSide
    them: LedgerSide


class SendResult(Out):
    id: str = Field(description="The message's object id.")
    cid: str
    server_seq: int
    held: bool = Field(description="Accepted but held until the recipient's mute ends.")
    release_time: int | None


class SendBatchItem(Out):
    status: int = Field(
        description="The status this message alone would have had sent on its own: 201 "
        "accepted, else the status of its refusal."
    )
    message: SendResult | None = Field(None, description="When accepted (201).")
    problem: dict[str, Any] | None = Field(
        None, description="When refused: the RFC 9457 problem (same `code` as a single send)."
    )
    replayed: bool = Field(
        False, description="Answered from the response stored for the Idempotency-Key."
    )


class SendBatchResult(Out):
    results: list[SendBatchItem] = Field(description="One per object, in request order.")


class InboxMessage(Out):
    id: int = Field(description="Event number in your stream (the inbox cursor).")
    cid: str
    object_id: str
    sender: str
    topic: str
    content_type: str
    content: str | None = Field(description="The payload; null once erased by a sever.")
    received_time: int
    acked_time: int | None
    object: dict[str, Any]


class BroadcastResult(Out):
    id: str
    candidates: int
    delivered: int
    held: int
    refused: dict[str, int]


class StreamEvent(Out):
    """One entry of a party's event stream (SSE ``data``, webhook ``data``, JSON pages)."""

    id: int = Field(description="Per-party event number: SSE id, inbox id, webhook cursor.")
    type: Literal["message", "connection", "grant", "mute", "sever", "favour", "key"]
    cid: str
    created_time: int
    server_seq: int | None = Field(description="The signed object's number in the server log.")
    object: dict[str, Any] | None = Field(
        description="The signed object that caused the event (messages carry their payload)."
    )
