"""configuration groups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:39:05.220835
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "configurations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("datastore_version_id", sa.String(length=36), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["datastore_version_id"],
            ["datastore_versions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("configurations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_configurations_project_id"), ["project_id"], unique=False
        )

    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("configuration_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("parameters_json", sa.Text(), nullable=False, server_default="{}")
        )
        batch_op.create_index(
            batch_op.f("ix_instances_configuration_id"), ["configuration_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_instances_configuration_id", "configurations", ["configuration_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_constraint("fk_instances_configuration_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_instances_configuration_id"))
        batch_op.drop_column("parameters_json")
        batch_op.drop_column("configuration_id")

    with op.batch_alter_table("configurations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_configurations_project_id"))

    op.drop_table("configurations")
