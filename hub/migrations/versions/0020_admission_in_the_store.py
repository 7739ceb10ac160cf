"""realtime: members' budgets and the standing version checked where messages are stored

A chat message used to be admitted by a Redis script (the sender's budget, and the version of
members' standing that a hub's cached standings are valid for) before the transaction that
stores it: a second round trip on every batch, half the time a message waited for. Both are
now checked inside that transaction. The budget counts the sender's recent messages in the
channel (an index on channel, author and time keeps it to those rows) and the version lives in
``realtime_versions``, moved by whoever changes a member's standing.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-28 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "realtime_versions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index(
        "ix_chat_messages_channel_author_created",
        "chat_messages",
        ["channel", "author_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_chat_messages_channel_author_created", table_name="chat_messages")
    op.drop_table("realtime_versions")
