"""Message type URIs and the body model of each type.

Every protocol object has the same envelope (see :mod:`rapport_protocol.envelope`); its
``type`` selects the body model here. Body models forbid unknown members and are strict, so
a body means one thing only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import constraints, identity

TYPE_PREFIX = "https://rapport.dev/protocol/1.0/"

Topic = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9_.\-]{0,63})$")]
ObjectId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
GrantId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}(\.[0-9]{1,3})?$")]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=4000)]
Timestamp = Annotated[int, Field(ge=0, le=2**53 - 1)]
MAX_PAYLOAD_BYTES = 32768


class MessageType(StrEnum):
    """Short names of the protocol's message types; the wire ``type`` is ``TYPE_PREFIX + name``."""

    INVITATION = "invitation"
    ACCEPT = "accept"
    DECLINE = "decline"
    GRANT_ISSUE = "grant-issue"
    GRANT_AMEND = "grant-amend"
    GRANT_REVOKE = "grant-revoke"
    MUTE = "mute"
    UNMUTE = "unmute"
    SEVER = "sever"
    FAVOUR_REQUEST = "favour-request"
    FAVOUR_ACCEPT = "favour-accept"
    FAVOUR_DECLINE = "favour-decline"
    FAVOUR_WITHDRAW = "favour-withdraw"
    FAVOUR_FULFIL = "favour-fulfil"
    FAVOUR_ACKNOWLEDGE = "favour-acknowledge"
    MESSAGE = "message"
    KEY_ROTATION = "key-rotation"

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RateCap(_Body):
    """At most ``count`` deliveries in any sliding window of ``period`` (ISO-8601 duration)."""

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    period: Annotated[str, Field(max_length=constraints.MAX_PERIOD_LENGTH)]

    # "before": any string that is not a valid period is ``invalid_period`` (raised through
    # pydantic as is), not a generic length or pattern error; non-strings stay invalid_body.
    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: object) -> object:
        if isinstance(value, str):
            constraints.period_seconds(value)
        return value

    @property
    def seconds(self) -> int:
        return constraints.period_seconds(self.period)


class QuietHours(_Body):
    """Local wall-clock window ``[start, end)`` in IANA zone ``tz`` when nothing is delivered."""

    # [0-9], not \d: pydantic's regex engine, like Python's, reads \d as any Unicode digit.
    start: Annotated[str, Field(pattern=r"^[0-9]{2}:[0-9]{2}$")]
    end: Annotated[str, Field(pattern=r"^[0-9]{2}:[0-9]{2}$")]
    tz: Annotated[str, Field(min_length=1, max_length=constraints.MAX_ZONE_LENGTH)]

    # Like rate periods: any string naming no zone is ``invalid_time_zone``.
    @field_validator("tz", mode="before")
    @classmethod
    def _zone(cls, value: object) -> object:
        if isinstance(value, str):
            constraints.zone(value)
        return value

    @model_validator(mode="after")
    def _valid(self) -> QuietHours:
        constraints.parse_clock(self.start)
        constraints.parse_clock(self.end)
        return self


class GrantSpec(_Body):
    """What the grantor lets the other party send it: one scope and topic, with constraints."""

    scope: Literal["message", "favour"]
    topic: Topic
    purpose: ShortText | None = None
    rate: RateCap | None = None
    quiet_hours: QuietHours | None = None
    expires_time: Timestamp | None = None


class InvitationBody(_Body):
    label: ShortText
    kind: Literal["business", "person"]
    multi_use: bool = False
    max_uses: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    offered: Annotated[list[GrantSpec], Field(max_length=64)] = []
    requested: Annotated[list[GrantSpec], Field(max_length=64)] = []
    goal: ShortText | None = None
    nonce: Annotated[str, Field(min_length=8, max_length=64)] | None = None
    """Random text making otherwise identical invitations distinct objects (ids are
    content hashes)."""

    @model_validator(mode="after")
    def _uses(self) -> InvitationBody:
        if self.max_uses is not None and not self.multi_use and self.max_uses != 1:
            raise ValueError("a single-use invitation has max_uses 1")
        return self


class AcceptBody(_Body):
    invitation: ObjectId
    label: ShortText
    kind: Literal["business", "person"]
    grants: Annotated[list[GrantSpec], Field(max_length=64)] = []


class DeclineBody(_Body):
    invitation: ObjectId
    reason: ShortText | None = None


class GrantIssueBody(_Body):
    grant: GrantSpec


class GrantAmendBody(_Body):
    replaces: GrantId
    grant: GrantSpec


class GrantRevokeBody(_Body):
    grant_id: GrantId


class MuteBody(_Body):
    until: Timestamp | None = None
    exempt_topics: Annotated[list[Topic], Field(max_length=64)] = []
    mode: Literal["hold", "reject"] = "hold"


class EmptyBody(_Body):
    pass


class SeverBody(_Body):
    data: Literal["delete", "retain_legal", "export_then_delete"]
    block_reinvite: bool = False
    reason: ShortText | None = None


class FavourRequestBody(_Body):
    kind: Topic
    description: LongText
    return_of: ObjectId | None = None
    due_time: Timestamp | None = None


class FavourStepBody(_Body):
    favour: ObjectId
    note: LongText | None = None


class MessageBody(_Body):
    topic: Topic
    purpose: ShortText | None = None
    content_type: Annotated[str, Field(pattern=r"^[a-z]+/[a-zA-Z0-9.+\-]+$")] = "text/plain"
    content_digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """Lowercase hex SHA-256 of the UTF-8 ``payload`` (the content travels detached)."""
    content_length: Annotated[int, Field(ge=0, le=MAX_PAYLOAD_BYTES)]
    reply_to: ObjectId | None = None

    @field_validator("topic")
    @classmethod
    def _concrete(cls, value: str) -> str:
        if value == "*":
            raise ValueError("a message names one concrete topic")
        return value


class KeyRotationBody(_Body):
    new_key: Annotated[str, Field(max_length=128)]

    @field_validator("new_key")
    @classmethod
    def _did(cls, value: str) -> str:
        identity.parse_did(value)
        return value


BODY_MODELS: dict[MessageType, type[_Body]] = {
    MessageType.INVITATION: InvitationBody,
    MessageType.ACCEPT: AcceptBody,
    MessageType.DECLINE: DeclineBody,
    MessageType.GRANT_ISSUE: GrantIssueBody,
    MessageType.GRANT_AMEND: GrantAmendBody,
    MessageType.GRANT_REVOKE: GrantRevokeBody,
    MessageType.MUTE: MuteBody,
    MessageType.UNMUTE: EmptyBody,
    MessageType.SEVER: SeverBody,
    MessageType.FAVOUR_REQUEST: FavourRequestBody,
    MessageType.FAVOUR_ACCEPT: FavourStepBody,
    MessageType.FAVOUR_DECLINE: FavourStepBody,
    MessageType.FAVOUR_WITHDRAW: FavourStepBody,
    MessageType.FAVOUR_FULFIL: FavourStepBody,
    MessageType.FAVOUR_ACKNOWLEDGE: FavourStepBody,
    MessageType.MESSAGE: MessageBody,
    MessageType.KEY_ROTATION: KeyRotationBody,
}

TYPES_BY_URI: dict[str, MessageType] = {t.uri: t for t in MessageType}

# Objects that stand outside a connection's hash chains (seq 0, no prev, no cid).
UNCHAINED = frozenset({MessageType.INVITATION, MessageType.KEY_ROTATION})
# Objects that may be either: a message without cid is a broadcast, one signed object
# delivered to many connections.
EITHER = frozenset({MessageType.MESSAGE})
