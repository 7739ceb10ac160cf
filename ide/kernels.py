"""Each project's shared Python kernel, and the runs in it (protocol: docs/documents.md).

A run (a file of the project, or a piece of code) is stored as ``queued`` and executed by the
project's worker, one at a time: the project's files are written from its Yjs document into the
kernel's working directory (by the kernel itself, so nothing outside the sandbox is written),
the kernel's CPU allowance for the run is set, the code runs, and every output is kept with the
run and sent to the members on the gateway channel ``project:<id>``. A kernel that dies (a
limit) is replaced before the next run; an idle one is shut down after a while.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import logging
import re
import shlex
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from pycrdt import Map, Text
from sqlalchemy import select, update

from hub.clock import Clock
from hub.db import Database
from hub.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from hub.identity.models import User
from ide.documents import DocumentServer
from ide.jupyter import JupyterClient, KernelChannel, KernelGone, KernelHost, KernelHostError
from ide.models import KernelRun
from ide.projects import Projects, doc_name
from ide.updates import load

log = logging.getLogger(__name__)

MAX_QUEUED = 20  # runs waiting per project
IDLE_AFTER_REPLY = 5.0  # seconds to wait for a request's last outputs after its reply
MIME_KEPT = ("text/plain", "text/html", "image/png")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
FILE_PATH = re.compile(r"^(?!/)(?!.*(^|/)\.\.?(/|$))[^\x00]{1,500}$")


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    LIMIT = "limit"


class KernelState(enum.StrEnum):
    NONE = "none"
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class KernelTuning:
    cpu_seconds: int = 5  # CPU allowance of one run
    output_bytes: int = 1 << 20  # outputs kept per run
    run_seconds: float = 60.0  # wall time of one run
    idle_seconds: float = 600.0  # an idle kernel is shut down after this long
    cull_every: float = 30.0
    start_timeout: float = 60.0
    reply_timeout: float = 30.0  # the hub's own requests (writing files, cleaning up)
    interrupt_grace: float = 5.0  # after an interrupt, before a restart


class Publisher(Protocol):
    """The gateway, as far as kernels use it."""

    async def publish_ephemeral(self, channel: str, data: dict[str, Any]) -> None: ...


def channel_of(project_id: int) -> str:
    return f"project:{project_id}"


# Run by the kernel before each run, in a namespace of its own (the user's stays clean).
PROLOGUE = """
import base64, json, os, resource
root = os.environ.setdefault("COHORT_WORKDIR", os.getcwd())
os.chdir(root)
real_root = os.path.realpath(root)
for path, text in json.loads(base64.b64decode(FILES)).items():
    full = os.path.realpath(os.path.join(root, path))
    if not full.startswith(real_root + os.sep):
        raise PermissionError(path + ": outside the working directory")
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as fh:
        fh.write(text)
used = resource.getrusage(resource.RUSAGE_SELF)
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
want = int(used.ru_utime + used.ru_stime) + CPU
if hard != resource.RLIM_INFINITY:
    want = min(want, hard)
resource.setrlimit(resource.RLIMIT_CPU, (want, hard))
"""

# Sandboxed kernels only (their own pid namespace): no process a run started outlives it (a
# fork bomb's leftovers, a forgotten background job). kill(-1) spares the caller and init.
EPILOGUE = """
import os, signal, time
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
deadline = time.monotonic() + 2
while True:  # reap the kernel's own children (bwrap's init reaps the rest)
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
"""


class KernelDied(Exception):
    """The kernel process ended (a limit, a crash) or was restarted during a request."""


@dataclass(frozen=True, slots=True)
class RunView:
    run: KernelRun
    by: User | None


def person(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "display_name": user.display_name, "avatar_color": user.avatar_color}


def run_data(view: RunView, *, outputs: bool = True) -> dict[str, Any]:
    """A run as JSON data (the API's ``Run``, and the ``run`` of a channel frame)."""
    run = view.run
    data: dict[str, Any] = {
        "id": run.id,
        "project_id": run.project_id,
        "status": run.status,
        "path": run.path,
        "code": run.code,
        "by": person(view.by),
        "truncated": run.truncated,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }
    if outputs:
        data["outputs"] = list(run.outputs)
    return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_output(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """A kept output (nbformat's shape) from an IOPub message, or None for anything else."""
    if msg_type == "stream":
        return {
            "output_type": "stream",
            "name": "stderr" if content.get("name") == "stderr" else "stdout",
            "text": str(content.get("text", "")),
        }
    if msg_type in ("execute_result", "display_data"):
        raw = content.get("data") or {}
        data = {k: str(raw[k]) for k in MIME_KEPT if k in raw}
        if not data:
            return None
        output: dict[str, Any] = {"output_type": msg_type, "data": data}
        if msg_type == "execute_result":
            output["execution_count"] = content.get("execution_count")
        return output
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": str(content.get("ename", "")),
            "evalue": str(content.get("evalue", "")),
            "traceback": [ANSI.sub("", str(line)) for line in content.get("traceback") or []],
        }
    return None


def _notice(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stderr", "text": text}


@dataclass(eq=False)
class _Request:
    """One execute request in flight: done when both its reply and its IOPub idle arrived."""

    on_output: Callable[[str, dict[str, Any]], Awaitable[None]] | None
    reply: asyncio.Future[dict[str, Any]]
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(eq=False)
class _LiveRun:
    view: RunView
    interrupt_requested: bool = False
    restart_requested: bool = False

    @property
    def run(self) -> KernelRun:
        return self.view.run


@dataclass(eq=False)
class _ProjectKernel:
    project_id: int
    state: KernelState = KernelState.NONE
    kernel_id: str | None = None
    channel: KernelChannel | None = None
    reader: asyncio.Task[None] | None = None
    worker: asyncio.Task[None] | None = None
    queue: deque[int] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    requests: dict[str, _Request] = field(default_factory=dict)
    current: _LiveRun | None = None
    idle_since: float = 0.0
    died: bool = False  # the server restarts it with new sockets: replace it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # kernel start/stop


class Kernels:
    """The kernels of one hub process; an async context manager owning their tasks."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        projects: Projects,
        documents: DocumentServer,
        publisher: Publisher,
        host: KernelHost,
        tuning: KernelTuning | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._projects = projects
        self._documents = documents
        self._publisher = publisher
        self.host = host
        self.tuning = tuning or KernelTuning()
        self._client = JupyterClient(host)
        self._kernels: dict[int, _ProjectKernel] = {}
        self._culler: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False

    # Lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Kernels:
        if self._started:
            raise RuntimeError("kernels already started")
        self._started = True
        self._culler = asyncio.create_task(self._cull_loop(), name="kernel-culler")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every worker (a run in progress ends as ``error``), every kernel, and a local
        Jupyter server."""
        self._closing = True
        running = {pid: pk.current for pid, pk in self._kernels.items() if pk.current is not None}
        tasks = [t for t in [self._culler] if t is not None]
        for pk in self._kernels.values():
            tasks += [t for t in (pk.worker, pk.reader) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pk in list(self._kernels.values()):
            live = running.get(pk.project_id)
            if live is not None:
                with contextlib.suppress(Exception):
                    await self._finish(pk, live, RunStatus.ERROR, _notice("\n[the hub stopped]\n"))
            if pk.kernel_id is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(10):
                        await self._client.shutdown(pk.kernel_id)
            if pk.channel is not None:
                with contextlib.suppress(Exception):
                    await pk.channel.close()
        waiting = [run_id for pk in self._kernels.values() for run_id in pk.queue]
        if waiting:
            with contextlib.suppress(Exception):
                async with self._db.transaction() as s:
                    await s.execute(
                        update(KernelRun)
                        .where(KernelRun.id.in_(waiting))
                        .values(
                            status=RunStatus.ERROR.value,
                            outputs=[_notice("[the hub stopped before this run started]\n")],
                            finished_at=self._clock.now(),
                        )
                    )
        self._kernels.clear()
        await self._client.close()
        await self.host.close()

    # Requests (the HTTP edge calls these) ----------------------------------------------------

    async def submit(
        self, user: User, project_id: int, *, path: str | None, code: str | None
    ) -> RunView:
        """Queue a run of ``path`` (a file of the project) or of ``code``.

        Raises:
            NotFound: no such project, or no such file. Forbidden: not a member, or a viewer.
            ValidationFailed: both or neither of path and code, or a malformed path.
            Conflict: too many runs waiting in this project.
        """
        if (path is None) == (code is None):
            raise ValidationFailed(
                [FieldError("body", "give either path or code", "one_of")],
            )
        if path is not None and not FILE_PATH.match(path):
            raise ValidationFailed([FieldError("path", "not a file path of the project")])
        await self._writer(user, project_id)
        if self._closing:
            raise Unavailable("The hub is shutting down; run again in a moment.")
        if path is not None and path not in await self.files(project_id):
            raise NotFound(f"The project has no file {path!r}.")
        pk = self._kernels.get(project_id)
        if pk is not None and len(pk.queue) >= MAX_QUEUED:
            raise Conflict("Too many runs are waiting in this project; try again shortly.")
        async with self._db.transaction() as s:
            run = KernelRun(
                project_id=project_id,
                user_id=user.id,
                path=path,
                code=code,
                status=RunStatus.QUEUED.value,
                outputs=[],
                output_bytes=0,
                truncated=False,
                created_at=self._clock.now(),
            )
            s.add(run)
        view = RunView(run, user)
        pk = self._project_kernel(project_id)
        pk.queue.append(run.id)
        pk.wake.set()
        await self._publish(project_id, {"type": "run", "run": run_data(view, outputs=False)})
        return view

    async def get_run(self, user: User, project_id: int, run_id: int) -> RunView:
        """Raises: NotFound (no such project or run), Forbidden (not a member)."""
        await self._projects.get(user, project_id)
        pk = self._kernels.get(project_id)
        if pk is not None and pk.current is not None and pk.current.run.id == run_id:
            return pk.current.view
        async with self._db.sessions() as s:
            run = await s.get(KernelRun, run_id)
            if run is None or run.project_id != project_id:
                raise NotFound("No run with this id in this project.")
            by = await s.get(User, run.user_id) if run.user_id is not None else None
        return RunView(run, by)

    async def recent_runs(self, user: User, project_id: int, limit: int) -> list[RunView]:
        """The project's latest runs, newest first."""
        await self._projects.get(user, project_id)
        async with self._db.sessions() as s:
            rows = (
                await s.execute(
                    select(KernelRun, User)
                    .outerjoin(User, User.id == KernelRun.user_id)
                    .where(KernelRun.project_id == project_id)
                    .order_by(KernelRun.id.desc())
                    .limit(limit)
                )
            ).all()
        pk = self._kernels.get(project_id)
        live = pk.current if pk is not None else None
        return [
            live.view if live is not None and live.run.id == run.id else RunView(run, by)
            for run, by in rows
        ]

    async def state(self, user: User, project_id: int) -> dict[str, Any]:
        """The kernel's state: ``none``, ``starting``, ``idle``, ``busy`` or ``dead``."""
        await self._projects.get(user, project_id)
        return self._kernel_data(project_id)

    async def interrupt(self, user: User, project_id: int) -> dict[str, Any]:
        """Interrupt the run in progress (it ends ``interrupted``); nothing when idle."""
        await self._writer(user, project_id)
        pk = self._kernels.get(project_id)
        if pk is not None and pk.current is not None and pk.kernel_id is not None:
            pk.current.interrupt_requested = True
            try:
                await self._client.interrupt(pk.kernel_id)
            except KernelHostError:
                log.warning("interrupt failed", extra={"project_id": project_id}, exc_info=True)
        return self._kernel_data(project_id)

    async def restart(self, user: User, project_id: int) -> dict[str, Any]:
        """Restart the kernel (its variables are lost; a run in progress ends
        ``interrupted``; queued runs run after it)."""
        await self._writer(user, project_id)
        pk = self._kernels.get(project_id)
        if pk is None or pk.kernel_id is None:
            return self._kernel_data(project_id)
        if pk.current is not None:
            pk.current.restart_requested = True
        async with pk.lock:
            await self._set_state(pk, KernelState.STARTING)
            kernel_id = pk.kernel_id
            try:
                if kernel_id is None:
                    raise KernelGone("no kernel")
                await self._client.restart(kernel_id)
                self._fail_requests(pk, KernelDied("the kernel was restarted"))
                await self._handshake(pk)
            except KernelHostError:
                log.warning("restart failed; replacing the kernel", exc_info=True)
                await self._drop_kernel(pk)
            if pk.kernel_id is not None:
                await self._set_state(pk, KernelState.BUSY if pk.current else KernelState.IDLE)
        pk.idle_since = self._clock.monotonic()
        return self._kernel_data(project_id)

    async def files(self, project_id: int) -> dict[str, str]:
        """The project's files as its document holds them now (``path`` → text)."""
        name = doc_name(project_id)
        room = self._documents.rooms.get(name)
        if room is not None:
            doc = room.doc
        else:
            state, _ = load(await self._documents.store.load(name))
            doc = state.doc
        files = doc.get("files", type=Map)
        return {str(path): str(text) for path, text in files.items() if isinstance(text, Text)}

    async def cull(self) -> list[int]:
        """Shut down every kernel idle for ``idle_seconds``; returns their projects."""
        now = self._clock.monotonic()
        culled = []
        for pk in list(self._kernels.values()):
            if (
                pk.kernel_id is not None
                and pk.current is None
                and not pk.queue
                and now - pk.idle_since >= self.tuning.idle_seconds
            ):
                async with pk.lock:
                    if pk.current is not None or pk.queue:
                        continue
                    await self._drop_kernel(pk)
                    await self._set_state(pk, KernelState.NONE)
                culled.append(pk.project_id)
                log.info("idle kernel shut down", extra={"project_id": pk.project_id})
        return culled

    # Internals ------------------------------------------------------------------------------

    async def _writer(self, user: User, project_id: int) -> None:
        view = await self._projects.get(user, project_id)
        if not view.role.can_write:
            raise Forbidden("Viewers cannot run code in this project.")

    def _kernel_data(self, project_id: int) -> dict[str, Any]:
        pk = self._kernels.get(project_id)
        if pk is None:
            return {"state": KernelState.NONE.value, "run": None, "queued": 0}
        return {
            "state": pk.state.value,
            "run": pk.current.run.id if pk.current is not None else None,
            "queued": len(pk.queue),
        }

    def _project_kernel(self, project_id: int) -> _ProjectKernel:
        pk = self._kernels.get(project_id)
        if pk is None:
            pk = self._kernels[project_id] = _ProjectKernel(
                project_id, idle_since=self._clock.monotonic()
            )
        if pk.worker is None or pk.worker.done():
            pk.worker = asyncio.create_task(self._work(pk), name=f"kernel-runs-{project_id}")
        return pk

    async def _publish(self, project_id: int, data: dict[str, Any]) -> None:
        try:
            await self._publisher.publish_ephemeral(channel_of(project_id), data)
        except Exception:
            log.warning("kernel frame not published", extra={"project_id": project_id})

    async def _set_state(self, pk: _ProjectKernel, state: KernelState) -> None:
        if pk.state is state:
            return
        pk.state = state
        await self._publish(pk.project_id, {"type": "kernel", "kernel": self._kernel_data_of(pk)})

    def _kernel_data_of(self, pk: _ProjectKernel) -> dict[str, Any]:
        return self._kernel_data(pk.project_id) | {"state": pk.state.value}

    async def _work(self, pk: _ProjectKernel) -> None:
        while True:
            while not pk.queue:
                pk.wake.clear()
                await pk.wake.wait()
            run_id = pk.queue.popleft()
            try:
                await self._run(pk, run_id)
            except (Exception, asyncio.CancelledError) as exc:
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                    raise
                # A stray cancellation (a library's) must not end the project's worker.
                log.exception("run failed", extra={"project_id": pk.project_id, "run": run_id})
                if pk.current is not None:
                    with contextlib.suppress(Exception):
                        await self._finish(
                            pk, pk.current, RunStatus.ERROR, _notice("\n[internal error]\n")
                        )
            finally:
                pk.current = None
                pk.idle_since = self._clock.monotonic()

    async def _run(self, pk: _ProjectKernel, run_id: int) -> None:
        async with self._db.transaction() as s:
            run = await s.get(KernelRun, run_id)
            if run is None:
                return
            by = await s.get(User, run.user_id) if run.user_id is not None else None
            run.status = RunStatus.RUNNING.value
            run.started_at = self._clock.now()
        live = pk.current = _LiveRun(RunView(run, by))
        await self._publish(
            pk.project_id, {"type": "run", "run": run_data(live.view, outputs=False)}
        )
        files = await self.files(pk.project_id)
        if run.path is not None and run.path not in files:
            await self._finish(
                pk, live, RunStatus.ERROR, _notice(f"The project has no file {run.path!r}.\n")
            )
            return
        try:
            await self._ensure_kernel(pk)
        except KernelHostError as exc:
            log.error("no kernel", extra={"project_id": pk.project_id, "error": str(exc)})
            await self._set_state(pk, KernelState.DEAD)
            await self._finish(
                pk, live, RunStatus.ERROR, _notice("The kernel could not be started.\n")
            )
            return
        status, notice = await self._execute_run(pk, live, files)
        if self.host.sandboxed and pk.channel is not None and pk.state is not KernelState.DEAD:
            with contextlib.suppress(KernelDied, KernelHostError, TimeoutError):
                await self._request(pk, EPILOGUE, silent=True, within=self.tuning.reply_timeout)
        await self._finish(pk, live, status, notice)
        if pk.kernel_id is not None and pk.state is not KernelState.DEAD:
            await self._set_state(pk, KernelState.IDLE)

    async def _execute_run(
        self, pk: _ProjectKernel, live: _LiveRun, files: dict[str, str]
    ) -> tuple[RunStatus, dict[str, Any] | None]:
        run = live.run
        payload = base64.b64encode(json.dumps(files).encode()).decode()
        prologue = f"exec({PROLOGUE!r}, {{'FILES': {payload!r}, 'CPU': {self.tuning.cpu_seconds}}})"
        # "./": a file named like an option of %run stays a file.
        code = run.code if run.code is not None else f"%run {shlex.quote('./' + (run.path or ''))}"
        try:
            reply = await self._request(pk, prologue, silent=True, within=self.tuning.reply_timeout)
            if reply.get("status") != "ok":
                if live.interrupt_requested:
                    return RunStatus.INTERRUPTED, None
                why = f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}"
                return RunStatus.ERROR, _notice(f"The project's files were not written ({why}).\n")
            await self._set_state(pk, KernelState.BUSY)
            request = self._new_request(lambda kind, c: self._output(pk, live, kind, c))
            msg_id = await self._send(pk, request, code)
            try:
                async with asyncio.timeout(self.tuning.run_seconds):
                    reply = await self._wait(request)
            except TimeoutError:
                return await self._stop_overrun(pk, request, msg_id)
        except KernelDied:
            if live.restart_requested and not pk.died:
                return RunStatus.INTERRUPTED, _notice("\n[the kernel was restarted]\n")
            await self._after_death(pk)
            return RunStatus.LIMIT, _notice(
                "\n[the kernel stopped: a limit was reached (CPU time, memory or processes); "
                "the next run starts a new one]\n"
            )
        except (KernelHostError, TimeoutError) as exc:
            log.warning("kernel request failed", extra={"error": str(exc)})
            await self._drop_kernel(pk)
            await self._set_state(pk, KernelState.DEAD)
            return RunStatus.ERROR, _notice("\n[the kernel stopped answering]\n")
        return self._status_of(live, reply, request), None

    @staticmethod
    def _status_of(live: _LiveRun, reply: dict[str, Any], request: _Request) -> RunStatus:
        errors = [str(e.get("ename")) for e in request.errors]
        if reply.get("status") == "error":
            errors.append(str(reply.get("ename")))
        elif reply.get("status") == "aborted":
            errors.append("aborted")
        if not errors:
            return RunStatus.OK
        if "KeyboardInterrupt" in errors or live.interrupt_requested:
            return RunStatus.INTERRUPTED
        if "MemoryError" in errors:
            return RunStatus.LIMIT
        return RunStatus.ERROR

    async def _stop_overrun(
        self, pk: _ProjectKernel, request: _Request, msg_id: str
    ) -> tuple[RunStatus, dict[str, Any] | None]:
        """A run past its wall time: interrupt it, and restart the kernel if that fails."""
        notice = _notice(f"\n[stopped: the run took longer than {self.tuning.run_seconds:g} s]\n")
        try:
            if pk.kernel_id is not None:
                await self._client.interrupt(pk.kernel_id)
            async with asyncio.timeout(self.tuning.interrupt_grace):
                await self._wait(request)
            return RunStatus.LIMIT, notice
        except (TimeoutError, KernelDied, KernelHostError):
            pk.requests.pop(msg_id, None)
        await self._drop_kernel(pk)
        await self._set_state(pk, KernelState.NONE)
        return RunStatus.LIMIT, notice

    async def _output(
        self, pk: _ProjectKernel, live: _LiveRun, msg_type: str, content: dict[str, Any]
    ) -> None:
        output = to_output(msg_type, content)
        run = live.run
        if output is None or run.truncated:
            return
        size = len(orjson.dumps(output))
        if run.output_bytes + size > self.tuning.output_bytes:
            run.truncated = True
            output = _notice(
                f"\n[output truncated: a run keeps at most {self.tuning.output_bytes} bytes]\n"
            )
            size = len(orjson.dumps(output))
        run.outputs = [*run.outputs, output]
        run.output_bytes += size
        await self._publish(
            pk.project_id,
            {"type": "output", "run": run.id, "index": len(run.outputs) - 1, "output": output},
        )

    async def _finish(
        self,
        pk: _ProjectKernel,
        live: _LiveRun,
        status: RunStatus,
        notice: dict[str, Any] | None,
    ) -> None:
        run = live.run
        if notice is not None:
            run.outputs = [*run.outputs, notice]
            await self._publish(
                pk.project_id,
                {"type": "output", "run": run.id, "index": len(run.outputs) - 1, "output": notice},
            )
        run.status = status.value
        run.finished_at = self._clock.now()
        async with self._db.transaction() as s:
            stored = await s.get(KernelRun, run.id)
            if stored is not None:
                stored.status = run.status
                stored.outputs = list(run.outputs)
                stored.output_bytes = run.output_bytes
                stored.truncated = run.truncated
                stored.started_at = run.started_at
                stored.finished_at = run.finished_at
        pk.current = None
        await self._publish(
            pk.project_id, {"type": "run", "run": run_data(live.view, outputs=False)}
        )

    # Kernel plumbing --------------------------------------------------------------------------

    async def _ensure_kernel(self, pk: _ProjectKernel) -> None:
        async with pk.lock:
            if (
                pk.channel is not None
                and not pk.channel.closed
                and pk.kernel_id is not None
                and not pk.died
            ):
                return
            await self._drop_kernel(pk)
            await self._set_state(pk, KernelState.STARTING)
            try:
                kernel_id = await self._client.start_kernel(self.host.workdir(pk.project_id))
                pk.kernel_id = kernel_id
                pk.channel = await self._client.connect(kernel_id)
                pk.reader = asyncio.create_task(
                    self._read(pk, pk.channel), name=f"kernel-reader-{pk.project_id}"
                )
                await self._handshake(pk)
            except BaseException:
                await self._drop_kernel(pk)
                raise
            log.info("kernel started", extra={"project_id": pk.project_id, "kernel": kernel_id})
            await self._set_state(pk, KernelState.IDLE)

    async def _handshake(self, pk: _ProjectKernel) -> None:
        """Wait until the kernel answers on both shell and IOPub (a new kernel takes a second
        or so; IOPub messages sent before the subscription is up are lost)."""
        try:
            async with asyncio.timeout(self.tuning.start_timeout):
                while True:
                    request = self._new_request(None)
                    assert pk.channel is not None
                    msg_id = uuid.uuid4().hex
                    pk.requests[msg_id] = request
                    await pk.channel.send("kernel_info_request", {}, msg_id=msg_id)
                    try:
                        async with asyncio.timeout(1.0):
                            await request.reply
                            await request.idle.wait()
                        return
                    except TimeoutError:
                        pk.requests.pop(msg_id, None)
        except (TimeoutError, KernelDied) as exc:
            raise KernelHostError("the kernel did not start") from exc

    async def _after_death(self, pk: _ProjectKernel) -> None:
        """The kernel process died (the server restarts it with new sockets): replace it."""
        async with pk.lock:
            await self._drop_kernel(pk)
            await self._set_state(pk, KernelState.DEAD)

    async def _drop_kernel(self, pk: _ProjectKernel) -> None:
        """Forget the kernel (shutting it down on the server)."""
        kernel_id, channel, reader = pk.kernel_id, pk.channel, pk.reader
        pk.kernel_id = pk.channel = pk.reader = None
        pk.died = False
        self._fail_requests(pk, KernelDied("the kernel is gone"))
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()
        if kernel_id is not None:
            # The server refuses (500) while it is restarting a kernel that died: retry.
            for attempt in range(10):
                try:
                    await self._client.shutdown(kernel_id)
                    break
                except KernelHostError:
                    if attempt == 9:
                        log.warning("kernel not shut down", extra={"kernel": kernel_id})
                    else:
                        await asyncio.sleep(0.5)

    def _fail_requests(self, pk: _ProjectKernel, error: Exception) -> None:
        requests, pk.requests = pk.requests, {}
        for request in requests.values():
            if not request.reply.done():
                request.reply.set_exception(error)
            request.idle.set()

    def _new_request(
        self, on_output: Callable[[str, dict[str, Any]], Awaitable[None]] | None
    ) -> _Request:
        return _Request(on_output, asyncio.get_running_loop().create_future())

    async def _send(self, pk: _ProjectKernel, request: _Request, code: str) -> str:
        if pk.channel is None or pk.died:
            raise KernelDied("no kernel")
        msg_id = uuid.uuid4().hex
        # Registered first: the reader may see the first answers before send returns.
        pk.requests[msg_id] = request
        try:
            await pk.channel.execute(code, silent=request.on_output is None, msg_id=msg_id)
        except Exception as exc:
            pk.requests.pop(msg_id, None)
            raise KernelDied("the kernel socket failed") from exc
        return msg_id

    async def _wait(self, request: _Request) -> dict[str, Any]:
        # Shielded: a timeout around this wait must not cancel the reply (the run may still
        # be waited for after an interrupt).
        reply = await asyncio.shield(request.reply)
        # Outputs come before IOPub's idle; a lost idle (a socket that reconnected) must not
        # hold the run forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_AFTER_REPLY):
                await request.idle.wait()
        return reply

    async def _request(
        self, pk: _ProjectKernel, code: str, *, silent: bool, within: float
    ) -> dict[str, Any]:
        request = self._new_request(None)
        msg_id = await self._send(pk, request, code)
        try:
            async with asyncio.timeout(within):
                return await self._wait(request)
        finally:
            pk.requests.pop(msg_id, None)

    async def _read(self, pk: _ProjectKernel, channel: KernelChannel) -> None:
        """Route the kernel's messages to the requests waiting for them."""
        try:
            async for msg in channel.messages():
                if msg.msg_type == "status":
                    state = msg.content.get("execution_state")
                    if state in ("restarting", "dead"):
                        pk.died = True
                        self._fail_requests(pk, KernelDied(f"kernel {state}"))
                        await self._set_state(pk, KernelState.DEAD)
                        continue
                    request = pk.requests.get(msg.parent_id or "")
                    if request is not None and state == "idle":
                        request.idle.set()
                        if request.reply.done():
                            pk.requests.pop(msg.parent_id or "", None)
                    continue
                request = pk.requests.get(msg.parent_id or "")
                if request is None:
                    continue
                if msg.channel == "shell" and msg.msg_type.endswith("_reply"):
                    if not request.reply.done():
                        request.reply.set_result(msg.content)
                    if request.idle.is_set():
                        pk.requests.pop(msg.parent_id or "", None)
                elif msg.channel == "iopub":
                    if msg.msg_type == "error":
                        request.errors.append(msg.content)
                    if request.on_output is not None:
                        await request.on_output(msg.msg_type, msg.content)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("kernel socket failed", extra={"project_id": pk.project_id}, exc_info=True)
        if pk.channel is channel:
            self._fail_requests(pk, KernelDied("the kernel socket closed"))

    async def _cull_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.cull_every)
            try:
                await self.cull()
            except Exception:
                log.exception("kernel culling failed")
