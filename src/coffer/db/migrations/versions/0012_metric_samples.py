"""metric_samples: each instance's metrics history (connections, rates, CPU, memory,
volume, replication lag), for charts

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=False),
        sa.Column("connections", sa.Integer(), nullable=True),
        sa.Column("rate_kind", sa.String(length=16), nullable=True),
        sa.Column("rate_per_s", sa.Float(), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("volume_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("volume_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("replication_lag_s", sa.Float(), nullable=True),
    )
    op.create_index("ix_metric_samples_instance_at", "metric_samples", ["instance_id", "at"])
    op.create_index("ix_metric_samples_at", "metric_samples", ["at"])


def downgrade() -> None:
    op.drop_index("ix_metric_samples_at", table_name="metric_samples")
    op.drop_index("ix_metric_samples_instance_at", table_name="metric_samples")
    op.drop_table("metric_samples")
