"""log_entries and events: no foreign-key checks on the two append-only tables

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 00:50:00

Every send and every broadcast recipient appends a log entry and an event, and each of
their foreign keys (a log entry's connection and sender, an event's party) ran a lookup
of the parent row with a lock for every inserted row: on PostgreSQL about 15% of a
100,000-recipient broadcast's database time (bench/PROFILE.md, session 11). The parents
are never deleted (a party is erased by ``deleted_at``, a connection is severed, not
removed) and every writer appends only for rows it has locked in the same transaction —
the connection whose state it has just compare-and-swapped, the sender it authenticated,
the recipient whose event counter it bumps — so the checks could not fail. The same
columns of ``events.cid`` and ``held_messages.cid`` never had one. The indexes stay.

On SQLite the two tables are rebuilt (``batch_alter_table``): minutes for a large file.
Downgrade restores the constraints (on PostgreSQL that validates every existing row).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (constraint name, column, referenced table, referenced column)
DROPPED = {
    "log_entries": [
        ("fk_log_entries_cid_connections", "cid", "connections", "cid"),
        ("fk_log_entries_sender_id_parties", "sender_id", "parties", "id"),
    ],
    "events": [("fk_events_party_id_parties", "party_id", "parties", "id")],
}


def upgrade() -> None:
    for table, keys in DROPPED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, _, _, _ in keys:
                batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, keys in DROPPED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, column, parent, parent_column in keys:
                batch_op.create_foreign_key(name, parent, [column], [parent_column])
