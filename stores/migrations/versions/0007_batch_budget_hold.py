"""Batch budget holds: each line's worst-case cost, reserved in its owner's budgets at the batch's
creation and given back as the line finishes; and on batch rows, their cost at sync list price.

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


def downgrade() -> None:
    op.drop_column("spillover_ledger", "sync_cost_micro_usd")
    op.drop_column("spillover_batch_lines", "reserved_micro_usd")
