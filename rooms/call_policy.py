"""The gateway's ``call`` channel family: ``call:<id>`` (roster, signalling in) and each peer's
inbox ``call:<id>:<peer>`` (signalling addressed to it). docs/watch-parties.md, "Call"."""

from __future__ import annotations

from typing import Any

from hub.identity.models import User
from hub.realtime.gateway import BasePolicy, Sender
from rooms.call import Calls


class CallPolicy(BasePolicy):
    """Ephemeral, with presence; a subscriber gets the roster first."""

    durable = False
    presence = True

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    async def can_subscribe(self, user: User, channel: str) -> bool:
        return await self._calls.may_subscribe(user, channel)

    async def publish(self, sender: Sender, channel: str, data: dict[str, Any]) -> int | None:
        await self._calls.publish(sender.user, channel, data)
        return None

    async def snapshot(self, user: User, channel: str) -> list[dict[str, Any]]:
        return await self._calls.snapshot(user, channel)

    async def current(self, channel: str) -> list[dict[str, Any]]:
        return await self._calls.current(channel)
