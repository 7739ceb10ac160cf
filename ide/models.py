"""IDE tables: projects, their invited members, the update log of every Yjs document, kernel
runs, and which hub process holds each project's kernel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigId, UTCDateTime


class Project(Base):
    """A shared code project. Its files live in the Yjs document ``project-<id>``."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Every member of this study group edits the project. The table belongs to the catalog;
    # only the key is shared (the ide package never imports the catalog).
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("study_groups.id", ondelete="SET NULL"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProjectMember(Base):
    """An invited user: ``editor`` or ``viewer`` (read-only)."""

    __tablename__ = "project_members"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # editor | viewer
    added_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DocumentUpdate(Base):
    """One Yjs update (v1 encoding) of a document, in arrival order. Compaction replaces a
    document's rows with one row holding their merge; applying rows in any order gives the same
    document, so a row's id is only a cursor, never a version."""

    __tablename__ = "ydoc_updates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    doc: Mapped[str] = mapped_column(String(200), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KernelRun(Base):
    """One run of a file or a piece of code in a project's kernel, with what it printed."""

    __tablename__ = "kernel_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    path: Mapped[str | None] = mapped_column(String(500), default=None)
    code: Mapped[str | None] = mapped_column(Text, default=None)
    # queued | running | ok | error | interrupted | limit
    status: Mapped[str] = mapped_column(String(16), index=True)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    output_bytes: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class KernelLease(Base):
    """The hub process that holds a project's kernel, until ``expires_at`` unless it renews.

    Only the holder starts the project's kernel and runs its queued runs; the other hubs
    forward to it. A lease past ``expires_at`` belongs to a hub that stopped renewing (it
    died): the next hub to need the kernel takes it over. ``state`` and ``run_id`` are the
    holder's kernel state as the other hubs report it.
    """

    __tablename__ = "kernel_leases"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    hub_id: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))  # none | starting | idle | busy | dead
    run_id: Mapped[int | None] = mapped_column(BigId, default=None)
