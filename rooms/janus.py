"""Janus (VideoRoom plugin) as the SFU for calls above the mesh size, over its HTTP REST API.

Each operation opens a Janus session, attaches ``janus.plugin.videoroom``, sends one
synchronous request and destroys the session: the hub holds no long-lived Janus state (Janus
ends idle sessions after 60 s anyway). Rooms are created with a secret only the hub knows and an
``allowed`` token list: a browser can join only with the token the hub handed it.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import aiohttp

from hub.errors import Unavailable

PLUGIN = "janus.plugin.videoroom"


class JanusError(Unavailable):
    """Janus refused or could not be reached."""


class Janus:
    def __init__(
        self,
        url: str,
        *,
        public_url: str | None = None,
        admin_key: str | None = None,
        api_secret: str | None = None,
        publishers: int = 16,
        timeout: float = 10.0,
    ) -> None:
        self._api = url.rstrip("/")
        self.url = public_url or self._api
        self._admin_key = admin_key
        self._api_secret = api_secret
        self._publishers = publishers
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _post(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
        body = {**body, "transaction": secrets.token_hex(8)}
        if self._api_secret:
            body["apisecret"] = self._api_secret
        try:
            async with http.post(self._api + path, json=body) as resp:
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JanusError(f"The media server is unreachable ({type(exc).__name__}).") from exc
        if not isinstance(answer, dict) or answer.get("janus") != "success":
            reason = (answer or {}).get("error", {}).get("reason", "unexpected answer")
            raise JanusError(f"The media server refused: {reason}")
        return answer

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """One synchronous VideoRoom request; its ``plugindata.data``.

        Raises:
            JanusError: Janus unreachable, or the plugin answered with an error.
        """
        async with aiohttp.ClientSession(timeout=self._timeout) as http:
            session = (await self._post(http, "", {"janus": "create"}))["data"]["id"]
            try:
                handle = (
                    await self._post(http, f"/{session}", {"janus": "attach", "plugin": PLUGIN})
                )["data"]["id"]
                answer = await self._post(
                    http, f"/{session}/{handle}", {"janus": "message", "body": body}
                )
            finally:
                with contextlib.suppress(JanusError):
                    await self._post(http, f"/{session}", {"janus": "destroy"})
        data: dict[str, Any] = answer.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"The media server refused: {data['error']}")
        return data

    async def create_room(self, secret: str, tokens: list[str]) -> int:
        body: dict[str, Any] = {
            "request": "create",
            "secret": secret,
            "allowed": tokens,
            "publishers": self._publishers,
            "videocodec": "vp8",
            "audiocodec": "opus",
            "permanent": False,
            "is_private": True,
        }
        if self._admin_key:
            body["admin_key"] = self._admin_key
        return int((await self.request(body))["room"])

    async def allow(self, room: int, secret: str, tokens: list[str]) -> None:
        await self.request(
            {
                "request": "allowed",
                "room": room,
                "secret": secret,
                "action": "add",
                "allowed": tokens,
            }
        )

    async def destroy_room(self, room: int, secret: str) -> None:
        await self.request({"request": "destroy", "room": room, "secret": secret})
