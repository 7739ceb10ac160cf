"""catalog: indexes for the newest and price orders

A listing sorted by publication time or price (``sort=newest|price|price_desc``) read and
sorted every match for its first page: all 10,000 courses for the unfiltered catalog, every
course with a common word for a search. With (published_at, id) and (price, id) indexes it
reads the courses in order and stops when the page is full. Popularity and rating get no
index: every sale updates ``enrollment_count`` and every review the rating counters, and with
an index on them those updates could no longer be heap-only (each would write an entry into
every index of ``courses``, its GIN full-text index too).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain CREATE INDEX on both backends (a batch on SQLite could copy the table, and with
    # it drop the triggers that keep its FTS5 table in step).
    op.create_index("ix_courses_published_at_id", "courses", ["published_at", "id"])
    op.create_index("ix_courses_price_id", "courses", ["price", "id"])


def downgrade() -> None:
    op.drop_index("ix_courses_price_id", table_name="courses")
    op.drop_index("ix_courses_published_at_id", table_name="courses")
