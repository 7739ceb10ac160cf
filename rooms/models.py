"""Chat tables: the current state of each chat message (its events live on the channel) and
each member's read marker per channel; watch parties and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigId, UTCDateTime


class ChatMessage(Base):
    """A chat message as it reads now: edits, deletions and reactions applied. The channel's
    durable messages (``channel_messages``) are the events that led here."""

    __tablename__ = "chat_messages"
    # A sender's recent messages in a channel: their budget, counted where messages are stored.
    __table_args__ = (
        Index("ix_chat_messages_channel_author_created", "channel", "author_id", "created_at"),
    )

    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    text: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[int | None] = mapped_column(BigInteger, default=None)
    mentions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # emoji → user ids
    reactions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReadMarker(Base):
    __tablename__ = "chat_read_markers"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WatchParty(Base):
    """A watch party and its server-authoritative playback state (docs/watch-parties.md).

    ``version`` grows with every change of what subscribers see; writers compare-and-set on it,
    so two hubs never both apply a change to the same state."""

    __tablename__ = "watch_parties"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("course_lessons.id", ondelete="CASCADE"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    controller_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    control: Mapped[str] = mapped_column(String(8))  # host | everyone
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("study_groups.id", ondelete="SET NULL"), default=None, index=True
    )
    invite_code: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(8), index=True)  # live | ended
    # Playback: `position` (seconds) at server time `state_at` (Unix ms); it advances at `rate`
    # while `playing`. `resume` is the intent to play, held while the room waits for members.
    playing: Mapped[bool] = mapped_column(Boolean, default=False)
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[float] = mapped_column(Float, default=0.0)
    rate: Mapped[float] = mapped_column(Float, default=1.0)
    state_at: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    # Version of the last accepted command: commands based on an older one are stale.
    command_version: Mapped[int] = mapped_column(BigInteger, default=1)
    # Members the room waits for now (user ids), and whether the host started anyway.
    waiting_for: Mapped[list[Any]] = mapped_column(JSON, default=list)
    waiting_since: Mapped[int | None] = mapped_column(BigInteger, default=None)
    skip_wait: Mapped[bool] = mapped_column(Boolean, default=False)
    # Someone was connected at this time; nobody for the idle delay ends the party.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    # UPDATE … WHERE version = <as read>: a concurrent writer's change fails with StaleDataError.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class WatchMember(Base):
    """Someone who joined a party (the host from the start), with their player's readiness."""

    __tablename__ = "watch_party_members"

    party_id: Mapped[int] = mapped_column(
        ForeignKey("watch_parties.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    no_wait: Mapped[bool] = mapped_column(Boolean, default=False)
    # Unix ms of the times this member held the room (bounded: docs/watch-parties.md).
    holds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
