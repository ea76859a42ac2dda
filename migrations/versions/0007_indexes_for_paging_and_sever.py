"""Indexes so that listing pages and a deleting sever cost the same at any table size

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 06:10:00

- ``events.log_seq``: a sever with ``data: "delete"`` removes the connection's messages from
  both inboxes. The statement filtered events on ``cid``, which no index leads with: a scan
  of every party's events under the connection's lock (~0.3 s at 5 million events on
  PostgreSQL, growing with the table). The messages are now found from the connection's own
  log entries (``ix_log_entries_cid_seq``) and then by ``log_seq``. Log numbers only grow,
  so this index's inserts land on its last page.
- ``connections``: ``GET /v1/connections`` pages in cid order. With indexes on (party,
  status) only, every page read and sorted all of the party's connections. Now each side
  (inviter, acceptor) has (party, cid) and (party, status, cid); the latter replace the
  (party, status) ones, which they also serve. Only a connection's creation and a change of
  its status touch them; state writes stay HOT updates.
- ``invitations``: ``(inviter_id, id)`` and ``(inviter_id, status, id)`` replace
  ``(inviter_id)`` for the same reason.
- ``webhook_deliveries``: ``(endpoint_id, id)``, for an endpoint's delivery log in id
  order (it read the endpoint's whole history through ``(endpoint_id, event_id)``). Not
  with the status: a delivery's status changes on every delivery, and each change would
  move its entry; a page filtered by a status walks the endpoint's deliveries in id order.

On PostgreSQL the indexes are built without CONCURRENTLY: writes to these tables wait
while they build (seconds for millions of events; plan the upgrade accordingly).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (indexes created: name -> columns, indexes dropped: name -> columns)
CHANGES: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]] = {
    "events": ({"ix_events_log_seq": ["log_seq"]}, {}),
    "connections": (
        {
            "ix_connections_inviter_cid": ["inviter_id", "cid"],
            "ix_connections_acceptor_cid": ["acceptor_id", "cid"],
            "ix_connections_inviter_status_cid": ["inviter_id", "status", "cid"],
            "ix_connections_acceptor_status_cid": ["acceptor_id", "status", "cid"],
        },
        {
            "ix_connections_inviter_status": ["inviter_id", "status"],
            "ix_connections_acceptor_status": ["acceptor_id", "status"],
        },
    ),
    "invitations": (
        {
            "ix_invitations_inviter_id_id": ["inviter_id", "id"],
            "ix_invitations_inviter_status_id": ["inviter_id", "status", "id"],
        },
        {"ix_invitations_inviter_id": ["inviter_id"]},
    ),
    "webhook_deliveries": ({"ix_webhook_deliveries_endpoint_id_id": ["endpoint_id", "id"]}, {}),
}


def upgrade() -> None:
    for table, (created, dropped) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in created.items():
                batch_op.create_index(name, columns, unique=False)
            for name in dropped:
                batch_op.drop_index(name)


def downgrade() -> None:
    for table, (created, dropped) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in dropped.items():
                batch_op.create_index(name, columns, unique=False)
            for name in created:
                batch_op.drop_index(name)
