"""active_grants: the grantee index ends with cid, so a broadcast pages through it in order

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:05:00

A broadcast reads the connections that grant its sender a topic in pages by cid. With cid
as the index's last column, each page is one ordered range of the index that stops after
a page's rows, instead of every grant above the cursor gathered and sorted per page.

The new index is built before the old one is dropped, with a plain CREATE INDEX: on
PostgreSQL it blocks writes to active_grants (grant changes, connects) while it builds —
seconds for a million grants. A deployment that cannot pause them can build
``ix_active_grants_grantee_scope_topic_cid`` with CREATE INDEX CONCURRENTLY first; this
migration then only drops the old index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("ix_active_grants_grantee_scope_topic", ["grantee_id", "scope", "topic"])
NEW = ("ix_active_grants_grantee_scope_topic_cid", ["grantee_id", "scope", "topic", "cid"])


def _swap(drop: tuple[str, list[str]], create: tuple[str, list[str]]) -> None:
    with op.batch_alter_table("active_grants", schema=None) as batch_op:
        batch_op.create_index(create[0], create[1], unique=False, if_not_exists=True)
        batch_op.drop_index(drop[0])


def upgrade() -> None:
    _swap(OLD, NEW)


def downgrade() -> None:
    _swap(NEW, OLD)
