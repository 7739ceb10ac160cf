"""notifications: the outbox of notifications written in their cause's transaction

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("actor_id", BigId, nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
    )


def downgrade() -> None:
    op.drop_table("notification_outbox")
