"""Durable channel storage: each channel's head (last sequence number) and its messages, and the
versions of what hubs keep in memory about who may publish where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime


class ChannelHead(Base):
    """The last sequence number given out on a channel. Taking the next one locks this row
    until the message's transaction commits, so sequence order is commit order."""

    __tablename__ = "channel_heads"

    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class ChannelMessage(Base):
    __tablename__ = "channel_messages"

    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # What subscribers receive as the message frame's `data`.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RealtimeVersion(Base):
    """A counter that hubs' cached state is valid for (``standing``: members' access to
    channels). Whoever changes that state moves it after committing the change; the
    transaction storing a message checks it against the version its sender was admitted on."""

    __tablename__ = "realtime_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
