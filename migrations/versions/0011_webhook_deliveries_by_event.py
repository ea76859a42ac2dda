"""An index for an event's webhook deliveries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:30:00

A sever with ``data: "delete"`` erases the connection's messages from both inboxes. Their
webhook deliveries referred to those events by a foreign key with no index on its column,
so the delete failed on the key (answered 409 ``conflict``, every time) once any of those
messages had been queued for a webhook, and each deleted event's key check was a scan of
``webhook_deliveries``. The sever now deletes those deliveries first, through
``(event_id)``, which also serves the key's check.

On PostgreSQL the index is built without CONCURRENTLY: writes to ``webhook_deliveries``
wait while it builds.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_event_id", ["event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_event_id")
