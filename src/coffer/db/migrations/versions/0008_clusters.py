"""clusters (Galera, Redis Cluster): the cluster table, members' cluster and role, and
the extra ports a member leases (port lease owners grow from an instance id to
``<instance id>/<purpose>``)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("project_id", sa.String(length=32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "datastore_version_id",
            sa.String(length=36),
            sa.ForeignKey("datastore_versions.id"),
            nullable=False,
        ),
        sa.Column("task_status", sa.String(length=32), nullable=False),
        sa.Column("task_workflow_id", sa.String(length=128), nullable=True),
        sa.Column("task_deadline", sa.DateTime(), nullable=True),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("fault_message", sa.Text(), nullable=True),
        sa.Column("fault_created", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_clusters_project_id", "clusters", ["project_id"])
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cluster_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("cluster_json", sa.Text(), nullable=True))
        batch_op.create_index("ix_instances_cluster_id", ["cluster_id"], unique=False)
    with op.batch_alter_table("port_leases", schema=None) as batch_op:
        batch_op.alter_column(
            "instance_id", existing_type=sa.String(length=36), type_=sa.String(length=64)
        )


def downgrade() -> None:
    with op.batch_alter_table("port_leases", schema=None) as batch_op:
        batch_op.alter_column(
            "instance_id", existing_type=sa.String(length=64), type_=sa.String(length=36)
        )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_cluster_id")
        batch_op.drop_column("cluster_json")
        batch_op.drop_column("cluster_id")
    op.drop_index("ix_clusters_project_id", table_name="clusters")
    op.drop_table("clusters")
