"""Jupyter servers as the hub reaches them: the kernels REST API (``/api/kernels``) and a
kernel's WebSocket (``/api/kernels/{id}/channels``, the Jupyter messaging protocol as JSON),
with aiohttp as the client.

Two hosts behind one ``KernelHost`` protocol: ``LocalJupyterServer`` spawns a Jupyter server
subprocess on 127.0.0.1 (token auth, a random port) the first time a kernel is needed, with the
sandboxed kernel spec of ``ide.sandbox``; ``RemoteJupyter`` talks to a Jupyter server or
Enterprise Gateway at ``COHORT_KERNEL_GATEWAY_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from ide.sandbox import KERNEL_NAME, SandboxLimits, kernel_spec, write_kernel_spec

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "5.3"


class KernelHostError(Exception):
    """The Jupyter server could not be started or reached, or refused a request."""


class KernelGone(KernelHostError):
    """The kernel does not exist (any more) on the server."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str  # http(s)://host:port[/base]
    token: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def ws_url(self, path: str) -> str:
        return self.base_url.replace("http", "ws", 1) + path


class KernelHost(Protocol):
    """Where kernels run."""

    kernel_name: str
    sandboxed: bool  # kernels run in ide.sandbox (their own pid namespace and uid)

    async def endpoint(self) -> Endpoint:
        """The server's address, starting it first if need be."""
        ...

    def workdir(self, project_id: int) -> str:
        """The ``path`` to start a project's kernel in (its working directory, created)."""
        ...

    async def close(self) -> None: ...


class RemoteJupyter:
    """A Jupyter server or Enterprise Gateway run by someone else."""

    sandboxed = False

    def __init__(self, url: str, token: str | None, kernel_name: str) -> None:
        self._endpoint = Endpoint(url.rstrip("/"), token)
        self.kernel_name = kernel_name

    async def endpoint(self) -> Endpoint:
        return self._endpoint

    def workdir(self, project_id: int) -> str:
        return f"project-{project_id}"

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class LocalServerConfig:
    kernels_dir: Path
    python: str = sys.executable
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    uid_base: int = 200_000
    start_timeout: float = 60.0


class LocalJupyterServer:
    """A Jupyter server subprocess of this hub, started lazily, stopped with the hub."""

    sandboxed = True
    kernel_name = KERNEL_NAME

    def __init__(self, config: LocalServerConfig) -> None:
        self._config = config
        self._lock = asyncio.Lock()
        self._process: asyncio.subprocess.Process | None = None
        self._endpoint: Endpoint | None = None
        self._runtime: str | None = None

    @property
    def work_root(self) -> Path:
        return self._config.kernels_dir / "work"

    def workdir(self, project_id: int) -> str:
        name = f"project-{project_id}"
        (self.work_root / name).mkdir(parents=True, exist_ok=True)
        return name

    async def endpoint(self) -> Endpoint:
        async with self._lock:
            if self._process is not None and self._process.returncode is None:
                assert self._endpoint is not None
                return self._endpoint
            if self._process is not None:
                log.warning("jupyter server exited; starting another")
            await self._start()
            assert self._endpoint is not None
            return self._endpoint

    async def _start(self) -> None:
        cfg = self._config
        if shutil.which("bwrap") is None:
            raise KernelHostError("bubblewrap (bwrap) is not installed: kernels cannot run")
        root = cfg.kernels_dir.resolve()
        share = root / "share"
        self.work_root.mkdir(parents=True, exist_ok=True)
        (root / "config").mkdir(parents=True, exist_ok=True)
        spec = kernel_spec(cfg.limits, python=cfg.python, uid_base=cfg.uid_base)
        write_kernel_spec(share, spec)
        # ZMQ ipc socket paths are limited to 107 bytes: keep them short, out of data_dir.
        self._runtime = tempfile.mkdtemp(prefix="cohort-k")
        os.chmod(self._runtime, 0o755)
        token = secrets.token_urlsafe(32)
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(root),
            "JUPYTER_PATH": str(share),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_DATA_DIR": str(share),
            "JUPYTER_RUNTIME_DIR": self._runtime,
            "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_TOKEN": token,
        }
        args = [
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={self.work_root.resolve()}",
            "--ServerApp.terminals_enabled=False",
            "--ServerApp.log_level=WARN",
            "--KernelSpecManager.ensure_native_kernel=False",
            f"--KernelSpecManager.allowed_kernelspecs={KERNEL_NAME}",
            f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
        ]
        log_file = (root / "jupyter-server.log").open("ab")
        try:
            # The server runs on the hub's interpreter (it loads ide.sandbox's provisioner).
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log_file.close()
        endpoint = Endpoint(f"http://127.0.0.1:{port}", token)
        try:
            await _wait_ready(endpoint, self._process, cfg.start_timeout)
        except BaseException:
            await self._stop()
            raise
        self._endpoint = endpoint
        log.info("jupyter server started", extra={"port": port, "pid": self._process.pid})

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        process, self._process, self._endpoint = self._process, None, None
        if process is not None and process.returncode is None:
            # SIGTERM: the server shuts its kernels down (they also die with it: bwrap's
            # --die-with-parent).
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._runtime = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the hub dies, even by SIGKILL (its kernels
    then die with it: bwrap's --die-with-parent)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(
    endpoint: Endpoint, process: asyncio.subprocess.Process, within: float
) -> None:
    async with aiohttp.ClientSession(headers=endpoint.headers) as http:
        try:
            async with asyncio.timeout(within):
                while True:
                    if process.returncode is not None:
                        raise KernelHostError(
                            f"the jupyter server exited with {process.returncode}"
                        )
                    try:
                        async with http.get(endpoint.base_url + "/api/status") as resp:
                            if resp.status == 200:
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise KernelHostError("the jupyter server did not start in time") from None


class JupyterClient:
    """The kernels API of one host, over one aiohttp session."""

    def __init__(self, host: KernelHost) -> None:
        self.host = host
        self._http: aiohttp.ClientSession | None = None

    async def _session(self) -> tuple[aiohttp.ClientSession, Endpoint]:
        endpoint = await self.host.endpoint()
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._http, endpoint

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        http, endpoint = await self._session()
        try:
            async with http.request(
                method, endpoint.base_url + path, json=body, headers=endpoint.headers
            ) as resp:
                if resp.status == 404:
                    raise KernelGone(f"{method} {path}: no such kernel")
                if resp.status >= 400:
                    raise KernelHostError(f"{method} {path}: {resp.status} {await resp.text()}")
                if resp.status == 204:
                    return None
                data = await resp.json()
                return data if isinstance(data, dict) else None
        except aiohttp.ClientError as exc:
            raise KernelHostError(f"{method} {path}: {exc}") from exc

    async def start_kernel(self, path: str) -> str:
        """Start a kernel of the host's spec in ``path``; returns its id."""
        model = await self._request(
            "POST", "/api/kernels", {"name": self.host.kernel_name, "path": path}
        )
        if model is None or "id" not in model:
            raise KernelHostError("the server did not say which kernel it started")
        return str(model["id"])

    async def kernel(self, kernel_id: str) -> dict[str, Any]:
        """The kernel's model (``execution_state``, ``last_activity``). Raises KernelGone."""
        model = await self._request("GET", f"/api/kernels/{kernel_id}")
        return model or {}

    async def interrupt(self, kernel_id: str) -> None:
        await self._request("POST", f"/api/kernels/{kernel_id}/interrupt")

    async def restart(self, kernel_id: str) -> None:
        await self._request("POST", f"/api/kernels/{kernel_id}/restart")

    async def shutdown(self, kernel_id: str) -> None:
        with contextlib.suppress(KernelGone):
            await self._request("DELETE", f"/api/kernels/{kernel_id}")

    async def connect(self, kernel_id: str) -> KernelChannel:
        http, endpoint = await self._session()
        session_id = uuid.uuid4().hex
        try:
            ws = await http.ws_connect(
                endpoint.ws_url(f"/api/kernels/{kernel_id}/channels?session_id={session_id}"),
                headers=endpoint.headers,
                heartbeat=30.0,
                max_msg_size=64 << 20,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 404:
                raise KernelGone(f"kernel {kernel_id} is gone") from exc
            raise KernelHostError(f"kernel socket: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise KernelHostError(f"kernel socket: {exc}") from exc
        return KernelChannel(ws, session_id)


@dataclass(frozen=True, slots=True)
class KernelMessage:
    channel: str  # iopub, shell, control, stdin
    msg_type: str
    parent_id: str | None
    content: dict[str, Any]


class KernelChannel:
    """A kernel's WebSocket: send requests, read every message the kernel sends."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        self._ws = ws
        self._session = session_id

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        msg_id: str | None = None,
    ) -> str:
        """Send a request; returns its message id (the ``parent_id`` of its replies)."""
        msg_id = msg_id or uuid.uuid4().hex
        await self._ws.send_json(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": msg_type,
                    "username": "cohort",
                    "session": self._session,
                    "date": "",
                    "version": PROTOCOL_VERSION,
                },
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": channel,
                "buffers": [],
            }
        )
        return msg_id

    async def execute(self, code: str, *, silent: bool = False, msg_id: str | None = None) -> str:
        return await self.send(
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": not silent,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            msg_id=msg_id,
        )

    async def messages(self) -> AsyncIterator[KernelMessage]:
        """Every message until the socket closes."""
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                if frame.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
                continue  # binary frames carry buffers (widgets): not for us
            try:
                data = frame.json()
                parent = data.get("parent_header") or {}
                yield KernelMessage(
                    channel=str(data.get("channel", "")),
                    msg_type=str(data["header"]["msg_type"]),
                    parent_id=parent.get("msg_id"),
                    content=data.get("content") or {},
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("dropped a malformed kernel message")

    async def close(self) -> None:
        await self._ws.close()
