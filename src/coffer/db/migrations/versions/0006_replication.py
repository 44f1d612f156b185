"""replication: replica_of, the source's replication secret, observed replication state

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica_of_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("replication_secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("replication_json", sa.Text(), nullable=True))
        batch_op.create_index("ix_instances_replica_of_id", ["replica_of_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_replica_of_id")
        batch_op.drop_column("replication_json")
        batch_op.drop_column("replication_secret_sealed")
        batch_op.drop_column("replica_of_id")
