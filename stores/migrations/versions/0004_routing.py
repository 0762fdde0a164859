"""Routing: the router, its score and reason on each row, the escalations, and the request an
abandoned cascade attempt was made for.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spillover_ledger", sa.Column("router", sa.String(32)))
    op.add_column("spillover_ledger", sa.Column("route_score", sa.Float))
    op.add_column("spillover_ledger", sa.Column("route_reason", sa.String(32)))
    op.add_column("spillover_ledger", sa.Column("escalations", sa.String(512)))
    op.add_column("spillover_ledger", sa.Column("attempt_of", sa.String(80)))
    op.create_index("ix_spillover_ledger_attempt_of", "spillover_ledger", ["attempt_of"])


def downgrade() -> None:
    op.drop_index("ix_spillover_ledger_attempt_of", "spillover_ledger")
    for column in ("attempt_of", "escalations", "route_reason", "route_score", "router"):
        op.drop_column("spillover_ledger", column)
