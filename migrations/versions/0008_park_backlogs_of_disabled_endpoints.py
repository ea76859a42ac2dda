"""Park the pending deliveries of endpoints that were disabled before this version

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:45:00

Since 0007's release a disabled endpoint's pending deliveries wait at ``next_attempt_at =
1e18`` (``webhooks.service.PARKED``), out of the worker's due range, and enabling the
endpoint makes them due at once. Endpoints disabled under an earlier version kept their
backed-off times, so each worker pass still walked their backlogs. This moves them to the
parked time too. Enabling such an endpoint behaves as before (due now).

Downgrade leaves the rows parked: earlier versions never attempt a disabled endpoint's
deliveries and make them due on enable, so the parked time means the same to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARKED = 1e18  # webhooks.service.PARKED at this version (a migration does not import it)


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE webhook_deliveries SET next_attempt_at = :parked"
            " WHERE status = 'pending' AND endpoint_id IN"
            " (SELECT id FROM webhook_endpoints WHERE status = 'disabled')"
        ).bindparams(parked=PARKED)
    )


def downgrade() -> None:
    pass
