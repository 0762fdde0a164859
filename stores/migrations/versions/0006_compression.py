"""Compression: what the compress stage did on each row, the prompt tokens before it and what
the removed tokens would have cost.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spillover_ledger", sa.Column("compression", sa.String(16)))
    op.add_column("spillover_ledger", sa.Column("prompt_tokens_original", sa.Integer))
    op.add_column("spillover_ledger", sa.Column("compression_saved_micro_usd", sa.BigInteger))


def downgrade() -> None:
    for column in ("compression_saved_micro_usd", "prompt_tokens_original", "compression"):
        op.drop_column("spillover_ledger", column)
