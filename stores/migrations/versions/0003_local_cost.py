"""Local cost: when each request finished, and each interval's replica time and its cost.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spillover_ledger", sa.Column("finished_at", sa.DateTime(timezone=True)))
    op.create_index("ix_spillover_ledger_finished_at", "spillover_ledger", ["finished_at"])
    op.create_table(
        "spillover_local_intervals",
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("interval_s", sa.Integer, nullable=False),
        sa.Column("replicas", sa.Integer, nullable=False),
        sa.Column("up_s", sa.Float, nullable=False),
        sa.Column("busy_s", sa.Float, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("attributed_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("idle_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("usd_per_replica_hour", sa.Numeric(12, 6), nullable=False),
        sa.Column("price_version", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spillover_local_intervals")
    op.drop_index("ix_spillover_ledger_finished_at", "spillover_ledger")
    op.drop_column("spillover_ledger", "finished_at")
