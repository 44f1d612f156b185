"""change-log archiving for point-in-time recovery

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_key_sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("log_container", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("restorable_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("restorable_until")
        batch_op.drop_column("log_container")
        batch_op.drop_column("log_key_sealed")
