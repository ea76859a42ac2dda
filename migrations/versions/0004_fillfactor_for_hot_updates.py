"""fillfactor 50 on connections and parties, so their frequent updates can be HOT

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:30:00

PostgreSQL only (SQLite has no such option). Only pages written from now on keep the
room; an existing table gets it when rewritten (``VACUUM FULL connections``, ``CLUSTER``
or ``pg_repack``), which this migration does not do: it would lock the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("connections", "parties")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
