"""The gateway's ``watch`` channel family: a party's playback state (docs/watch-parties.md)."""

from __future__ import annotations

from typing import Any

from hub.identity.models import User
from hub.realtime.gateway import BasePolicy, Sender
from rooms.watch import WatchParties


class WatchPolicy(BasePolicy):
    """Ephemeral, with presence: a subscriber gets the current state first; a publish is a
    command (or a reaction); nothing is stored on the channel."""

    durable = False
    presence = True

    def __init__(self, parties: WatchParties) -> None:
        self._parties = parties

    async def can_subscribe(self, user: User, channel: str) -> bool:
        return await self._parties.may_subscribe(user, channel)

    async def publish(self, sender: Sender, channel: str, data: dict[str, Any]) -> int | None:
        await self._parties.command(sender.user, channel, data)
        return None

    async def snapshot(self, user: User, channel: str) -> list[dict[str, Any]]:
        return await self._parties.joined(user, channel)

    async def current(self, channel: str) -> list[dict[str, Any]]:
        return await self._parties.current(channel)
