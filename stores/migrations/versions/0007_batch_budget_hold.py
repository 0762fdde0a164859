"""Batch budget holds: each line's worst-case cost, reserved in its owner's budgets at the batch's
creation and given back as the line finishes; on batch rows, their cost at sync list price; and
each line's claim by the worker running it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spillover_batch_lines", sa.Column("reserved_micro_usd", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("spillover_ledger", sa.Column("sync_cost_micro_usd", sa.BigInteger))
    op.add_column("spillover_batch_lines", sa.Column("claimed_by", sa.String(64)))
    op.add_column("spillover_batch_lines", sa.Column("claimed_until", sa.Float))


def downgrade() -> None:
    op.drop_column("spillover_batch_lines", "claimed_until")
    op.drop_column("spillover_batch_lines", "claimed_by")
    op.drop_column("spillover_ledger", "sync_cost_micro_usd")
    op.drop_column("spillover_batch_lines", "reserved_micro_usd")
