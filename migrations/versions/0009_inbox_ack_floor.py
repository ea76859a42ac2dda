"""A per-party acknowledgement floor, so unacknowledged inbox pages skip the acked past

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:35:00

``GET /v1/inbox?unacked=true`` walked the party's messages from the cursor (usually the
start) and skipped each acknowledged one: a party that had acknowledged a million
messages read a million rows for every page. ``parties.ack_floor`` is a lower bound below
which every message of the party is acknowledged; acks raise it and the page starts above
it. No index is added, so sends and broadcasts write nothing more. Existing parties start
at 0 (correct, merely slow until their next in-order ack).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ack_floor", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.drop_column("ack_floor")
