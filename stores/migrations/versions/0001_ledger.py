"""The ledger table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spillover_ledger",
        sa.Column("request_id", sa.String(80), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(128)),
        sa.Column("api", sa.String(16), nullable=False),
        sa.Column("model_asked", sa.String(256), nullable=False),
        sa.Column("model_served", sa.String(256)),
        sa.Column("destination", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("price_version", sa.String(64), nullable=False),
        sa.Column("cache_result", sa.String(16), nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("total_ms", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spill_reason", sa.String(32)),
    )
    op.create_index("ix_spillover_ledger_at", "spillover_ledger", ["at"])
    op.create_index("ix_spillover_ledger_team", "spillover_ledger", ["team"])


def downgrade() -> None:
    op.drop_table("spillover_ledger")
