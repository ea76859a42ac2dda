"""One index for a connection's items in a party's stream, in place of ``events.log_seq``

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:35:00

``GET /v1/messages?cid=…`` (one connection's items in a party's inbox) read the party's
messages in ``seq`` order through ``(party_id, kind, seq)`` and skipped those of other
connections: a business with many connections read all of its inbox from the cursor on
to fill one page of one connection (24 ms at 200,000 messages on either backend, growing
with the inbox). ``(party_id, cid, kind, seq)`` answers that page from its first entry.

The same index finds a connection's messages in either inbox when it is severed with
``data: "delete"`` (one range for each side), which is what ``(log_seq)`` was for
(migration 0007), so that one is dropped: each event still has four index entries.

On PostgreSQL the index is built without CONCURRENTLY: writes to ``events`` wait while it
builds (seconds for millions of events; plan the upgrade accordingly).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_party_cid_kind_seq", ["party_id", "cid", "kind", "seq"], unique=False
        )
        batch_op.drop_index("ix_events_log_seq")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_log_seq", ["log_seq"], unique=False)
        batch_op.drop_index("ix_events_party_cid_kind_seq")
