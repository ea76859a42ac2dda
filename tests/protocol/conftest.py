"""Builders for protocol tests: two parties and a connection, through the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from rapport_protocol import ConnectionState, SigningKey, apply, derive_cid, sign
from rapport_protocol.envelope import SignedObject
from rapport_protocol.types import AcceptBody, GrantSpec, InvitationBody, MessageType

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z, a Friday


@dataclass
class Party:
    """One side of a connection that signs objects and keeps its own hash chain."""

    key: SigningKey
    seq: int = 0
    prev: str | None = None
    log: list[tuple[dict[str, Any], int]] = field(default_factory=list)

    @property
    def did(self) -> str:
        return self.key.did

    def make(
        self, mtype: MessageType, body: Any, *, cid: str, at: int, **headers: Any
    ) -> SignedObject:
        """Sign the next object of this party's chain without advancing it.

        A message body may carry ``content``: it is moved to the detached payload.
        """
        if mtype is MessageType.MESSAGE and isinstance(body, dict) and "content" in body:
            headers["payload"] = body["content"]
            body = {k: v for k, v in body.items() if k != "content"}
        return sign(
            self.key,
            mtype,
            body,
            created_time=at,
            cid=cid,
            seq=self.seq + 1,
            prev=self.prev,
            **headers,
        )

    def advance(self, obj: SignedObject) -> None:
        self.seq, self.prev = obj.seq, obj.id


@dataclass
class Conn:
    business: Party
    person: Party
    cid: str
    state: ConnectionState
    log: list[tuple[dict[str, Any], int]]

    def send(
        self, who: Party, mtype: MessageType, body: Any, at: int, **headers: Any
    ) -> SignedObject:
        """Sign, apply (raising on refusal) and record one object."""
        obj = who.make(mtype, body, cid=self.cid, at=at, **headers)
        self.state = apply(self.state, obj, at)
        who.advance(obj)
        self.log.append((obj.raw, at))
        return obj


def connect(
    business_grants: list[GrantSpec] | None = None,
    person_grants: list[GrantSpec] | None = None,
    at: int = T0,
) -> Conn:
    """A business invites a person; the person accepts with ``person_grants``."""
    business = Party(SigningKey.from_seed(b"\x11" * 32))
    person = Party(SigningKey.from_seed(b"\x22" * 32))
    inv = sign(
        business.key,
        MessageType.INVITATION,
        InvitationBody(label="Roastery", kind="business", offered=business_grants or []),
        created_time=at,
    )
    state = apply(None, inv, at)
    cid = derive_cid(inv.id, person.did)
    acc = person.make(
        MessageType.ACCEPT,
        AcceptBody(invitation=inv.id, label="Ann", kind="person", grants=person_grants or []),
        cid=cid,
        at=at,
        thid=inv.id,
    )
    state = apply(state, acc, at)
    person.advance(acc)
    return Conn(business, person, cid, state, [(inv.raw, at), (acc.raw, at)])


@pytest.fixture
def conn() -> Conn:
    return connect(
        person_grants=[
            GrantSpec.model_validate(
                {
                    "scope": "message",
                    "topic": "order_updates",
                    "rate": {"count": 3, "period": "P1D"},
                }
            ),
            GrantSpec.model_validate({"scope": "message", "topic": "security"}),
            GrantSpec.model_validate({"scope": "favour", "topic": "review"}),
        ],
        business_grants=[
            GrantSpec.model_validate({"scope": "message", "topic": "support"}),
            GrantSpec.model_validate({"scope": "favour", "topic": "callback"}),
        ],
    )
