"""Experiments: the variant each ledger row was served by, the signals a report reads (finish
reason, a hash of the prompt to spot retries), quality feedback, and which experiments run.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spillover_ledger", sa.Column("experiment", sa.String(64)))
    op.add_column("spillover_ledger", sa.Column("variant", sa.String(64)))
    op.add_column("spillover_ledger", sa.Column("finish_reason", sa.String(32)))
    op.add_column("spillover_ledger", sa.Column("prompt_hash", sa.String(32)))
    op.create_index("ix_spillover_ledger_experiment", "spillover_ledger", ["experiment"])
    op.create_table(
        "spillover_feedback",
        sa.Column("request_id", sa.String(80), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.String(128)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "spillover_experiments",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("running", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spillover_experiments")
    op.drop_table("spillover_feedback")
    op.drop_index("ix_spillover_ledger_experiment", "spillover_ledger")
    for column in ("prompt_hash", "finish_reason", "variant", "experiment"):
        op.drop_column("spillover_ledger", column)
