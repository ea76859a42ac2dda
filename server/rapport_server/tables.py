"""The relational schema of the server's domains (the record of every connection).

Times are integer UTC seconds, like the protocol. Signed objects are stored as the exact
canonical JSON that was verified, so a log read back verifies byte for byte.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Party(Base):
    """A business or person, known by its current Ed25519 did:key."""

    __tablename__ = "parties"
    # Every event bumps ``event_seq`` (not indexed): with room left on each page the
    # update is HOT (no new entries in the two indexes). A broadcast bumps a page's every
    # row at once, hence half pages (migration 0004).
    __table_args__ = ({"postgresql_with": {"fillfactor": 50}},)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    did: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    profile_url: Mapped[str | None] = mapped_column(String(2048))
    logo_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Number of the party's latest event. Bumped in the writing transaction, so the
    party's event numbers commit in order (a stream reader never skips one)."""
    ack_floor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Every inbox message of the party numbered at or below it is acknowledged (a lower
    bound, raised by acks: ``messages/service.ack``). ``GET /v1/inbox?unacked=true``
    starts there instead of reading every acknowledged message from the first."""


class RetiredKey(Base):
    """A key that was rotated away or whose party was deleted: it never works again."""

    __tablename__ = "retired_keys"

    did: Mapped[str] = mapped_column(String(128), primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    retired_at: Mapped[int] = mapped_column(BigInteger)
    successor: Mapped[str | None] = mapped_column(String(128))


class UsedAssertion(Base):
    """JWT ids of client assertions already exchanged (replay protection)."""

    __tablename__ = "used_assertions"

    jti: Mapped[str] = mapped_column(String(160), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class ServerSecret(Base):
    """Server-side key material generated on first start (token key, webhook key)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Invitation(Base):
    __tablename__ = "invitations"
    __table_args__ = (
        # A party's invitations in id order, with or without a status (list_mine's pages).
        Index("ix_invitations_inviter_id_id", "inviter_id", "id"),
        Index("ix_invitations_inviter_status_id", "inviter_id", "status", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    inviter_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    object: Mapped[str] = mapped_column(Text)
    multi_use: Mapped[bool] = mapped_column(Boolean)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    to_did: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Connection(Base):
    """One connection and its protocol state, a JSON snapshot of ``ConnectionState``.

    ``version`` is bumped on every change; writers compare-and-swap on it so two instances
    can never both apply an object on the same state.
    """

    __tablename__ = "connections"
    __table_args__ = (
        # A party's connections in cid order, on either side, with or without a status
        # (connections/repository.list_for pages through them; migration 0007).
        Index("ix_connections_inviter_cid", "inviter_id", "cid"),
        Index("ix_connections_acceptor_cid", "acceptor_id", "cid"),
        Index("ix_connections_inviter_status_cid", "inviter_id", "status", "cid"),
        Index("ix_connections_acceptor_status_cid", "acceptor_id", "status", "cid"),
        # Every accepted object rewrites ``state``/``version``/``updated_at`` (none
        # indexed): with room for the new version on the page the update is HOT, without
        # entries in the four indexes. Rows are ~1.4 KB, so half pages (migration 0004).
        {"postgresql_with": {"fillfactor": 50}},
    )

    cid: Mapped[str] = mapped_column(String(32), primary_key=True)
    invitation_id: Mapped[str] = mapped_column(ForeignKey("invitations.id"), index=True)
    inviter_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    acceptor_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    status: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    data_instruction: Mapped[str | None] = mapped_column(String(32))


class LogEntry(Base):
    """A connection's verifiable log: every signed object in order, with the receipt."""

    __tablename__ = "log_entries"
    __table_args__ = (
        # object_id first: the same index answers "was this object ever seen?".
        UniqueConstraint("object_id", "cid"),
        Index("ix_log_entries_cid_seq", "cid", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys on this append-only table or on events (migration 0006): parties
    # and connections are never deleted, and every writer appends only for rows it holds
    # locked in the same transaction; the per-row checks were ~15% of a broadcast's
    # database time.
    cid: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    sender_id: Mapped[str] = mapped_column(String(36))
    object: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """The per-party event stream and inbox: the outbox of everything a party must learn.

    Written in the same transaction as the change it reports. ``seq`` numbers a party's
    events 1, 2, 3, … in commit order; the inbox cursor, the SSE ``Last-Event-ID`` and the
    webhook cursors all use it. ``kind`` is ``message`` for inbox items, else the change
    (``connection``, ``grant``, ``mute``, ``sever``, ``favour``, …).
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("party_id", "seq"),
        Index("ix_events_party_kind_seq", "party_id", "kind", "seq"),
        # One connection's items in a party's stream (the inbox filtered to a cid) and a
        # connection's messages in either inbox (sever with data "delete"): without it the
        # filtered inbox walked all of the party's messages (migration 0010).
        Index("ix_events_party_cid_kind_seq", "party_id", "cid", "kind", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    party_id: Mapped[str] = mapped_column(String(36))  # no foreign key: see LogEntry
    seq: Mapped[int] = mapped_column(BigInteger)
    cid: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    log_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)


class HeldMessage(Base):
    """A message accepted while its recipient muted the sender in ``hold`` mode."""

    __tablename__ = "held_messages"
    __table_args__ = (Index("ix_held_messages_party_release", "party_id", "release_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    cid: Mapped[str] = mapped_column(String(32), index=True)
    log_seq: Mapped[int] = mapped_column(BigInteger)
    release_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ActiveGrant(Base):
    """Index of grants in force, for set-based broadcast selection (the state JSON is the
    source of truth; this table is rewritten with it in the same transaction)."""

    __tablename__ = "active_grants"
    __table_args__ = (
        Index("ix_active_grants_grantee_scope_topic_cid", "grantee_id", "scope", "topic", "cid"),
    )

    cid: Mapped[str] = mapped_column(ForeignKey("connections.cid"), primary_key=True)
    grantor_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    grantee_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    grant_id: Mapped[str] = mapped_column(String(70))


class Block(Base):
    """``blocker`` severed ``blocked`` with ``block_reinvite``: ``blocked`` may not invite it."""

    __tablename__ = "blocks"

    blocker_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    blocked_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class WebhookEndpoint(Base):
    """A party's webhook receiver. ``cursor`` is the last event seq already enqueued."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    cursor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    types: Mapped[str | None] = mapped_column(String(200))
    """Comma-separated event types to deliver; NULL means all."""
    description: Mapped[str | None] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    """After a rotation, deliveries are signed with both secrets until ``previous_until``."""
    previous_until: Mapped[int | None] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    """One event to one endpoint: retried with backoff until delivered or dead."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
        # An endpoint's deliveries in id order (its delivery log's pages; migration 0007).
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        # An event's deliveries: erased with it by a sever's "delete", and the foreign
        # key's own check when events are deleted (migration 0011).
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class IdempotencyRecord(Base):
    """A stored response for ``Idempotency-Key`` (Stripe semantics)."""

    __tablename__ = "idempotency_records"

    party_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)
