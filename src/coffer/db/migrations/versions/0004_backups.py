"""backups

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column(
            "datastore_version_id",
            sa.String(36),
            sa.ForeignKey("datastore_versions.id"),
            nullable=False,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("workflow_id", sa.String(128), nullable=True),
        sa.Column("location", sa.String(512), nullable=False),
        sa.Column("store", sa.String(512), nullable=False),
        sa.Column("container", sa.String(255), nullable=False),
        sa.Column("data_key_sealed", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("raw_bytes", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(64), nullable=True),
        sa.Column("positions_json", sa.Text(), nullable=False),
        sa.Column("counts_json", sa.Text(), nullable=False),
        sa.Column("counts_exact", sa.Boolean(), nullable=False),
        sa.Column("schedule_id", sa.String(36), nullable=True),
        sa.Column("progress_bytes", sa.BigInteger(), nullable=False),
        sa.Column("fail_reason", sa.Text(), nullable=True),
        sa.Column("verify_status", sa.String(16), nullable=True),
        sa.Column("verify_detail", sa.Text(), nullable=True),
        sa.Column("verified_at", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
    )
    for column in (
        "project_id",
        "instance_id",
        "parent_id",
        "state",
        "created",
        "deleted",
        "schedule_id",
        "workflow_id",
    ):
        op.create_index(f"ix_backups_{column}", "backups", [column])
    op.create_table(
        "backup_schedules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("full_cron", sa.String(128), nullable=False),
        sa.Column("incremental_cron", sa.String(128), nullable=True),
        sa.Column("retention", sa.String(32), nullable=False),
        sa.Column("last_run", sa.Text(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    for column in ("project_id", "instance_id"):
        op.create_index(f"ix_backup_schedules_{column}", "backup_schedules", [column])
    op.create_table(
        "backup_strategies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=True),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("swift_container", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "instance_id"),
    )
    op.create_index("ix_backup_strategies_project_id", "backup_strategies", ["project_id"])


def downgrade() -> None:
    op.drop_table("backup_strategies")
    op.drop_table("backup_schedules")
    op.drop_table("backups")
