"""The chat services, as the HTTP edge finds them on the app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from rooms.chat import Chat
from rooms.history import ChatHistory


@dataclass(frozen=True, slots=True)
class RoomsServices:
    chat: Chat
    history: ChatHistory


ROOMS = web.AppKey("rooms", RoomsServices)
