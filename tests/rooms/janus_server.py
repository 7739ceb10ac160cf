"""A private Janus (VideoRoom plugin, HTTP transport only) for the SFU tests and bench/call.py,
and a small REST client an aiortc peer uses to publish into or subscribe to a room."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

LIBDIRS = (
    Path("/usr/lib/x86_64-linux-gnu/janus"),
    Path("/usr/lib/janus"),
    Path("/usr/lib64/janus"),
)


@dataclass(frozen=True, slots=True)
class JanusServer:
    url: str
    admin_key: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _others(folder: Path, keep: str) -> str:
    return ",".join(sorted(p.name for p in folder.glob("libjanus_*.so") if p.name != keep))


@contextmanager
def run_janus(directory: Path) -> Iterator[JanusServer]:
    """Start ``janus`` with a generated config (VideoRoom + HTTP on a free port); stop it after.

    Raises:
        RuntimeError: no ``janus`` binary (install the Debian package: scripts/system-deps),
        or it did not answer within 15 s.
    """
    binary = shutil.which("janus")
    if binary is None:
        raise RuntimeError(
            "janus is not installed: run scripts/system-deps (apt-get install janus)"
        )
    libdir = next((d for d in LIBDIRS if (d / "plugins" / "libjanus_videoroom.so").exists()), None)
    if libdir is None:
        raise RuntimeError("janus is installed but its VideoRoom plugin was not found")
    port = _free_port()
    admin_key = secrets.token_hex(12)
    configs = directory / "janus-configs"
    configs.mkdir(parents=True, exist_ok=True)
    (configs / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{configs}"
    plugins_folder = "{libdir / "plugins"}"
    transports_folder = "{libdir / "transports"}"
    events_folder = "{libdir / "events"}"
    loggers_folder = "{libdir / "loggers"}"
    log_to_stdout = true
    debug_level = 3
    session_timeout = 60
}}
media: {{ rtp_port_range = "20000-40000" }}
nat: {{ nice_debug = false }}
plugins: {{ disable = "{_others(libdir / "plugins", "libjanus_videoroom.so")}" }}
transports: {{ disable = "{_others(libdir / "transports", "libjanus_http.so")}" }}
events: {{ broadcast = false disable = "{_others(libdir / "events", "")}" }}
loggers: {{ disable = "{_others(libdir / "loggers", "")}" }}
"""
    )
    (configs / "janus.plugin.videoroom.jcfg").write_text(
        f'general: {{ admin_key = "{admin_key}" lock_rtp_forward = true }}\n'
    )
    (configs / "janus.transport.http.jcfg").write_text(
        "general: {\n"
        f'    json = "plain"\n    base_path = "/janus"\n    http = true\n    port = {port}\n'
        '    ip = "127.0.0.1"\n    https = false\n}\nadmin: { admin_http = false }\n'
    )
    log = (directory / "janus.log").open("wb")
    process = subprocess.Popen(
        [binary, "-F", str(configs), "-C", str(configs / "janus.jcfg")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"janus exited ({process.returncode}); see {directory / 'janus.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("janus did not start listening within 15 s") from None
                time.sleep(0.05)
        yield JanusServer(f"http://127.0.0.1:{port}/janus", admin_key)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class JanusPeer:
    """One VideoRoom handle driven by aiortc over the REST API (events by long poll)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.session = 0
        self.handle = 0
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(
            self.url + path, json={**body, "transaction": secrets.token_hex(6)}
        ) as resp:
            answer: dict[str, Any] = await resp.json(content_type=None)
        if answer.get("janus") not in ("success", "ack"):
            raise RuntimeError(f"janus: {answer}")
        return answer

    async def attach(self) -> None:
        self.session = (await self._post("", {"janus": "create"}))["data"]["id"]
        answer = await self._post(
            f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        self.handle = answer["data"]["id"]

    async def message(
        self, body: dict[str, Any], jsep: dict[str, Any] | None = None, wait: float = 15.0
    ) -> dict[str, Any]:
        """Send a request; the plugin's event answering it (``plugindata.data`` and ``jsep``)."""
        frame: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            frame["jsep"] = jsep
        answer = await self._post(f"/{self.session}/{self.handle}", frame)
        if answer["janus"] == "success":
            return answer
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            async with self.http.get(f"{self.url}/{self.session}?maxev=1") as resp:
                event = await resp.json(content_type=None)
            if event.get("janus") == "event" and event.get("sender") == self.handle:
                return event  # type: ignore[no-any-return]
        raise TimeoutError("no event from janus")

    async def publish(self, room: int, token: str, track: Any) -> int:
        """Join as a publisher and send ``track``; the publisher (feed) id."""
        joined = await self.message(
            {"request": "join", "ptype": "publisher", "room": room, "token": token}
        )
        data = joined["plugindata"]["data"]
        if data.get("videoroom") != "joined":
            raise RuntimeError(f"janus refused the publisher: {data}")
        self.pc.addTransceiver(track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.message(
            {"request": "publish", "audio": False, "video": True},
            {"type": "offer", "sdp": self.pc.localDescription.sdp},
        )
        if "jsep" not in answer:
            raise RuntimeError(f"janus did not answer the offer: {answer}")
        await self.pc.setRemoteDescription(
            RTCSessionDescription(answer["jsep"]["sdp"], answer["jsep"]["type"])
        )
        return int(data["id"])

    async def subscribe(self, room: int, token: str, feed: int) -> dict[str, Any]:
        """Join as a subscriber to ``feed``; the plugin data (the remote track: ``on('track')``)."""
        # A feed exists for subscribers once its publisher's connection is up.
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            attached = await self.message(
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": room,
                    "token": token,
                    "streams": [{"feed": feed}],
                }
            )
            data: dict[str, Any] = attached["plugindata"]["data"]
            if "jsep" in attached:
                break
            if data.get("error_code") != 428 or asyncio.get_running_loop().time() > deadline:
                return data  # refused
            await asyncio.sleep(0.1)
        await self.pc.setRemoteDescription(
            RTCSessionDescription(attached["jsep"]["sdp"], attached["jsep"]["type"])
        )
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.message(
            {"request": "start", "room": room},
            {"type": "answer", "sdp": self.pc.localDescription.sdp},
        )
        return data

    async def close(self) -> None:
        await self.pc.close()
        if self.session:
            with contextlib.suppress(RuntimeError, aiohttp.ClientError):
                await self._post(f"/{self.session}", {"janus": "destroy"})
