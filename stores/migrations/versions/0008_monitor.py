"""Monitoring: the ledger's hourly rollup, the alerts the evaluator raised, and named leases (one
alert evaluator among several ingress replicas).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spillover_ledger_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("model_asked", sa.String(256), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("spill_reason", sa.String(32), nullable=False),
        sa.Column("cache_result", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("compression_saved_micro_usd", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_spillover_ledger_hourly_hour", "spillover_ledger_hourly", ["hour"])
    op.create_table(
        "spillover_alerts",
        sa.Column("id", sa.String(400), primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("summary", sa.String(512), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("notified_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_spillover_alerts_state", "spillover_alerts", ["state"])
    op.create_table(
        "spillover_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spillover_leases")
    op.drop_index("ix_spillover_alerts_state", "spillover_alerts")
    op.drop_table("spillover_alerts")
    op.drop_index("ix_spillover_ledger_hourly_hour", "spillover_ledger_hourly")
    op.drop_table("spillover_ledger_hourly")
