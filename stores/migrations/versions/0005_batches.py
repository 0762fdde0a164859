"""Batches: uploaded files, batches and their lines; the ledger row's batch id.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spillover_ledger", sa.Column("batch_id", sa.String(64)))
    op.create_index("ix_spillover_ledger_batch_id", "spillover_ledger", ["batch_id"])
    op.create_table(
        "spillover_batch_files",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False, index=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(256), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "spillover_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False, index=True),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(128)),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(64), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        *[sa.Column(f"{stamp}_at", sa.BigInteger) for stamp in ("in_progress", "finalizing", "completed", "failed", "expired",
                                                               "cancelling", "cancelled")],
        sa.Column("output_file_id", sa.String(64)),
        sa.Column("error_file_id", sa.String(64)),
        sa.Column("errors", sa.Text),
        sa.Column("batch_metadata", sa.Text),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("hosted_batch_id", sa.String(128)),
    )
    op.create_table(
        "spillover_batch_lines",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("custom_id", sa.String(512), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("result", sa.Text),
        sa.Column("finished_at", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("spillover_batch_lines")
    op.drop_table("spillover_batches")
    op.drop_table("spillover_batch_files")
    op.drop_index("ix_spillover_ledger_batch_id", "spillover_ledger")
    op.drop_column("spillover_ledger", "batch_id")
