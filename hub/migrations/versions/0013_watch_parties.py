"""rooms: watch parties and their members

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 19:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "watch_parties",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("course_id", BigId, nullable=False),
        sa.Column("lesson_id", BigId, nullable=False),
        sa.Column("host_id", BigId, nullable=False),
        sa.Column("controller_id", BigId, nullable=True),
        sa.Column("control", sa.String(length=8), nullable=False),
        sa.Column("group_id", BigId, nullable=True),
        sa.Column("invite_code", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("playing", sa.Boolean(), nullable=False),
        sa.Column("resume", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Float(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("state_at", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("command_version", sa.BigInteger(), nullable=False),
        sa.Column("waiting_for", sa.JSON(), nullable=False),
        sa.Column("waiting_since", sa.BigInteger(), nullable=True),
        sa.Column("skip_wait", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_watch_parties_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["course_lessons.id"],
            name=op.f("fk_watch_parties_lesson_id_course_lessons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["users.id"],
            name=op.f("fk_watch_parties_host_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["controller_id"],
            ["users.id"],
            name=op.f("fk_watch_parties_controller_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["study_groups.id"],
            name=op.f("fk_watch_parties_group_id_study_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_parties")),
        sa.UniqueConstraint("invite_code", name=op.f("uq_watch_parties_invite_code")),
    )
    with op.batch_alter_table("watch_parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watch_parties_course_id"), ["course_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_watch_parties_host_id"), ["host_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_watch_parties_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_watch_parties_status"), ["status"], unique=False)

    op.create_table(
        "watch_party_members",
        sa.Column("party_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("no_wait", sa.Boolean(), nullable=False),
        sa.Column("holds", sa.JSON(), nullable=False),
        sa.Column("joined_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"],
            ["watch_parties.id"],
            name=op.f("fk_watch_party_members_party_id_watch_parties"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_watch_party_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("party_id", "user_id", name=op.f("pk_watch_party_members")),
    )
    with op.batch_alter_table("watch_party_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_watch_party_members_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("watch_party_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watch_party_members_user_id"))
    op.drop_table("watch_party_members")
    with op.batch_alter_table("watch_parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watch_parties_status"))
        batch_op.drop_index(batch_op.f("ix_watch_parties_group_id"))
        batch_op.drop_index(batch_op.f("ix_watch_parties_host_id"))
        batch_op.drop_index(batch_op.f("ix_watch_parties_course_id"))
    op.drop_table("watch_parties")
