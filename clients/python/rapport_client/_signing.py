"""The client's own side of the protocol: its key, its clock, and its hash chains.

Every state-changing call carries an object this module signs with the local key. Objects
inside a connection continue the party's per-connection hash chain (``seq``, ``prev``);
the chain head is kept in memory and, when unknown (a fresh process), recovered from the
connection's signed log.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import OKPKey
from pydantic import BaseModel
from rapport_protocol import MessageType, SigningKey, errors, sign, verify_log
from rapport_protocol.canonical import b64url
from rapport_protocol.envelope import SignedObject

from ._core import Clock

ASSERTION_LIFETIME = 120


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a party's chain stands in one connection: last ``seq`` and object id."""

    seq: int = 0
    last: str | None = None


def client_assertion(key: SigningKey, audience: str, now: int) -> str:
    """An RFC 7523 JWT (EdDSA, ``iss`` = ``sub`` = the DID) proving possession of ``key``."""
    jwk = OKPKey.import_key(
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "d": b64url(key.seed),
            "x": b64url(key.verify_key.public_key),
        }
    )
    claims = {
        "iss": key.did,
        "sub": key.did,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(18),
    }
    with warnings.catch_warnings():  # joserfc flags OKP as "not recommended" in some versions
        warnings.simplefilter("ignore")
        return jwt.encode(
            {"alg": "Ed25519", "kid": key.kid, "typ": "JWT"}, claims, jwk, algorithms=["Ed25519"]
        )


def chain_position(entries: Iterable[dict[str, Any]], did: str) -> ChainHead:
    """The head of ``did``'s chain in a connection, from the connection's log entries.

    The log is replayed through the protocol's state machine (signatures and chains are
    checked; receipt times are not, the log is history). Should the log not replay, the
    head is the last object signed by ``did`` in it.
    """
    items = list(entries)
    try:
        state = verify_log(
            [(e["object"], e["received_time"]) for e in items], check_time=False
        ).state
        head = state.heads[state.role_of(did)]
        return ChainHead(head.seq, head.last)
    except errors.ProtocolError:
        mine = [
            e["object"] for e in items if e["object"].get("from") == did and "cid" in e["object"]
        ]
        if not mine:
            return ChainHead()
        last = max(mine, key=lambda o: int(o["seq"]))
        return ChainHead(int(last["seq"]), str(last["id"]))


class Signer:
    """Signs protocol objects for one party and keeps its chain heads per connection."""

    def __init__(self, key: SigningKey, clock: Clock) -> None:
        self.key = key
        self.clock = clock
        self.chains: dict[str, ChainHead] = {}

    @property
    def did(self) -> str:
        """The party's current did:key."""
        return self.key.did

    def unchained(
        self,
        mtype: MessageType,
        body: BaseModel | dict[str, Any],
        *,
        payload: str | None = None,
        **headers: Any,
    ) -> SignedObject:
        """An object outside any chain (invitation, key rotation, broadcast)."""
        return sign(self.key, mtype, body, created_time=self.clock(), payload=payload, **headers)

    def next_in(
        self,
        cid: str,
        head: ChainHead,
        mtype: MessageType,
        body: BaseModel | dict[str, Any],
        *,
        payload: str | None = None,
        **headers: Any,
    ) -> SignedObject:
        """The object continuing the chain at ``head`` in ``cid`` (the head is not moved)."""
        return sign(
            self.key,
            mtype,
            body,
            created_time=self.clock(),
            cid=cid,
            seq=head.seq + 1,
            prev=head.last,
            payload=payload,
            **headers,
        )

    def advance(self, obj: SignedObject) -> None:
        """Record that the server accepted ``obj``: it is the new head of its chain."""
        if obj.cid is not None:
            self.chains[obj.cid] = ChainHead(obj.seq, obj.id)

    def forget(self, cid: str) -> None:
        """Drop a chain head whose state is unknown; it is recovered from the log."""
        self.chains.pop(cid, None)
