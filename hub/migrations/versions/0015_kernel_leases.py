"""ide: kernel leases (one kernel per project across hub processes), runs indexed by status

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "kernel_leases",
        sa.Column("project_id", BigId, autoincrement=False, nullable=False),
        sa.Column("hub_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_kernel_leases_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_kernel_leases")),
    )
    with op.batch_alter_table("kernel_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kernel_runs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kernel_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kernel_runs_status"))
    op.drop_table("kernel_leases")
