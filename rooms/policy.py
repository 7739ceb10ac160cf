"""The gateway's ``chat`` and ``dm`` channel families: durable, with presence and typing."""

from __future__ import annotations

from typing import Any

from hub.identity.models import User
from hub.realtime.gateway import BasePolicy, Sender
from rooms.chat import Chat


class ChatPolicy(BasePolicy):
    """Members subscribe; a publish is a chat event (typing is the gateway's own)."""

    durable = True
    presence = True

    def __init__(self, chat: Chat) -> None:
        self._chat = chat

    async def can_subscribe(self, user: User, channel: str) -> bool:
        return await self._chat.access(user.id, channel) is not None

    async def publish(self, sender: Sender, channel: str, data: dict[str, Any]) -> int | None:
        return await self._chat.publish(sender.user, channel, data)
