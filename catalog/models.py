"""Catalog tables: courses, their sections and lessons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigId, UTCDateTime


class Course(Base):
    __tablename__ = "courses"
    # The catalog's newest and price orders (migration 0019): a listing sorted by either reads
    # its first courses in index order instead of sorting every match. Popularity and rating
    # have none: a sale or review would then update an index instead of the row alone.
    __table_args__ = (
        Index("ix_courses_published_at_id", "published_at", "id"),
        Index("ix_courses_price_id", "price", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220), unique=True)
    subtitle: Mapped[str] = mapped_column(String(300), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    level: Mapped[str] = mapped_column(String(16))  # beginner | intermediate | advanced
    language: Mapped[str] = mapped_column(String(16))
    price: Mapped[int] = mapped_column(Integer, default=0)  # coins; 0 is free
    status: Mapped[str] = mapped_column(String(16), index=True)  # draft | published | archived
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Kept in step with the enrollments and reviews, in the transactions that write them, so
    # the catalog sorts 10,000 courses by popularity or rating without aggregating.
    enrollment_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_total: Mapped[int] = mapped_column(Integer, default=0)
    # Tags as words, for full-text search (the FTS5 table / tsvector index read it).
    tags_text: Mapped[str] = mapped_column(Text, default="")
    # Storage key of an uploaded cover image; without one the first lesson video's poster is
    # the cover.
    cover_key: Mapped[str | None] = mapped_column(String(200), default=None)


class CourseTag(Base):
    """One row per course and tag (lower-cased): the catalog's tag filter and tag cloud."""

    __tablename__ = "course_tags"

    course_id: Mapped[int] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class Section(Base):
    __tablename__ = "course_sections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)


class Lesson(Base):
    __tablename__ = "course_lessons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    section_id: Mapped[int] = mapped_column(
        ForeignKey("course_sections.id", ondelete="CASCADE"), index=True
    )
    # Denormalized: a lesson's course is read on every playback authorization.
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(8))  # video | text
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="SET NULL"), default=None, index=True
    )
    body: Mapped[str] = mapped_column(Text, default="")
    free_preview: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer)


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("user_id", "course_id", name="uq_enrollment_user_course"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Found by user through the unique (user_id, course_id) index.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    price_paid: Mapped[int] = mapped_column(Integer, default=0)
    # The ledger transfer that paid for it (none for free courses).
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LessonProgress(Base):
    """What one student has watched of one lesson: the union of the played ranges."""

    __tablename__ = "lesson_progress"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    lesson_id: Mapped[int] = mapped_column(
        ForeignKey("course_lessons.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    position: Mapped[float] = mapped_column(Float, default=0.0)
    # Sorted, disjoint [from, to] pairs in seconds.
    watched: Mapped[list[Any]] = mapped_column(JSON, default=list)
    watched_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # First opened: what could have been watched since bounds what a heartbeat may credit.
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Review(Base):
    __tablename__ = "course_reviews"
    __table_args__ = (UniqueConstraint("user_id", "course_id", name="uq_review_user_course"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
