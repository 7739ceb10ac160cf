"""Each project's shared Python kernel, and the runs in it (protocol: docs/documents.md).

A run (a file of the project, or a piece of code) is stored as ``queued`` and executed by the
project's worker, one at a time: the project's files are written from its Yjs document into the
kernel's working directory (by the kernel itself, so nothing outside the sandbox is written),
the kernel's CPU allowance for the run is set, the code runs, and every output is kept with the
run and sent to the members on the gateway channel ``project:<id>``. A kernel that dies (a
limit) is replaced before the next run; an idle one is shut down after a while.

One kernel per project across hub processes: a lease (``KernelLease``, renewed by its holder)
names the hub that holds the project's kernel and runs its queued runs. Another hub that gets a
run, an interrupt or a restart tells the holder over the broker (channel ``ide:kernels``); a
lease its holder stopped renewing (the hub died) is taken over by the next hub that needs it,
which ends the runs the dead hub left ``running`` and runs the ``queued`` ones.
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
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from pycrdt import Map, Text
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from hub.broker import Broker, Subscription
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
from ide.models import KernelLease, KernelRun
from ide.projects import Projects, doc_name
from ide.updates import load

log = logging.getLogger(__name__)

MAX_QUEUED = 20  # runs waiting per project
COMMANDS_CHANNEL = "ide:kernels"  # broker channel between hubs about kernels
HOLDER_STOPPED = "\n[the hub running this kernel stopped; run it again]\n"
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
    lease_seconds: float = 15.0  # a kernel lease not renewed for this long is taken over


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


class KernelCommand(enum.StrEnum):
    """What one hub asks of the hub holding a project's kernel."""

    NUDGE = "nudge"  # a run was queued
    INTERRUPT = "interrupt"
    RESTART = "restart"
    RELEASED = "released"  # (to every hub) the lease is free and runs are waiting


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
    # The kernel began executing it (IOPub ``execute_input``): from then on it heeds SIGINT.
    began: asyncio.Event = field(default_factory=asyncio.Event)


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
    held: bool = False  # this hub holds the project's kernel lease
    claiming: asyncio.Lock = field(default_factory=asyncio.Lock)  # one lease claim at a time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # kernel start/stop


class Kernels:
    """The kernels of one hub process; an async context manager owning their tasks.

    ``broker``: how this hub reaches the others (None: it is the only one, and any lease not
    its own was left by an earlier run of it).
    """

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        projects: Projects,
        documents: DocumentServer,
        publisher: Publisher,
        host: KernelHost,
        broker: Broker | None = None,
        tuning: KernelTuning | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._projects = projects
        self._documents = documents
        self._publisher = publisher
        self._broker = broker
        self.host = host
        self.tuning = tuning or KernelTuning()
        self.hub_id = uuid.uuid4().hex
        self._client = JupyterClient(host)
        self._kernels: dict[int, _ProjectKernel] = {}
        self._culler: asyncio.Task[None] | None = None
        self._leaser: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self._started = False
        self._closing = False

    # Lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Kernels:
        if self._started:
            raise RuntimeError("kernels already started")
        self._started = True
        if self._broker is not None:
            try:
                self._sub = await self._broker.subscribe(COMMANDS_CHANNEL)
            except Exception:
                # Redis is down: the hub starts anyway (and says it is not ready); the listener
                # subscribes once it can.
                log.warning("kernel commands not subscribed at start", exc_info=True)
                self._sub = await self._broker.subscribe()
            self._broker.on_reconnect.append(self._after_reconnect)
            self._listener = asyncio.create_task(self._listen(), name="kernel-commands")
        self._culler = asyncio.create_task(self._cull_loop(), name="kernel-culler")
        # Its first round takes over what a stopped hub left (on a single hub: the last run).
        self._leaser = asyncio.create_task(self._lease_loop(), name="kernel-leases")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every worker (a run in progress ends as ``error``), every kernel, and a local
        Jupyter server, and give up this hub's leases. Runs still queued stay queued for
        another hub when there are others (told through the broker), else they end."""
        self._closing = True
        if self._broker is not None and self._after_reconnect in self._broker.on_reconnect:
            self._broker.on_reconnect.remove(self._after_reconnect)
        running = {pid: pk.current for pid, pk in self._kernels.items() if pk.current is not None}
        held = [pid for pid, pk in self._kernels.items() if pk.held]
        tasks = [t for t in (self._culler, self._leaser, self._listener) if t is not None]
        tasks += list(self._commands)
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
        try:
            await self._give_up_leases(held)
        except Exception:
            # They expire: other hubs (or this one's next start) take them over then.
            log.exception("kernel leases not given up")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.close()
        self._kernels.clear()
        await self._client.close()
        await self.host.close()

    async def _give_up_leases(self, held: list[int]) -> None:
        if not held:
            return
        now = self._clock.now()
        async with self._db.transaction() as s:
            if self._broker is None:
                # No other hub to run them: the runs waiting here end now.
                await s.execute(
                    update(KernelRun)
                    .where(
                        KernelRun.project_id.in_(held),
                        KernelRun.status == RunStatus.QUEUED.value,
                    )
                    .values(
                        status=RunStatus.ERROR.value,
                        outputs=[_notice("[the hub stopped before this run started]\n")],
                        finished_at=now,
                    )
                )
                waiting: list[int] = []
            else:
                waiting = list(
                    (
                        await s.scalars(
                            select(KernelRun.project_id)
                            .where(
                                KernelRun.project_id.in_(held),
                                KernelRun.status == RunStatus.QUEUED.value,
                            )
                            .distinct()
                        )
                    ).all()
                )
            await s.execute(
                delete(KernelLease).where(
                    KernelLease.project_id.in_(held), KernelLease.hub_id == self.hub_id
                )
            )
        for project_id in waiting:
            await self._tell(None, KernelCommand.RELEASED, project_id)

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
        if await self._queued_count(project_id) >= MAX_QUEUED:
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
        await self._publish(project_id, {"type": "run", "run": run_data(view, outputs=False)})
        try:
            await self._dispatch(project_id, run.id)
        except Exception:
            # Stored: the holder's or this hub's next lease round picks it up.
            log.exception("run not dispatched", extra={"project_id": project_id, "run": run.id})
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
        return await self._state_anywhere(project_id)

    async def current(self, project_id: int) -> list[dict[str, Any]]:
        """The ``project:<id>`` channel's state as it stands: the kernel's (sent again to a
        hub's members after its broker connection came back; runs that ended meanwhile are
        read by the clients, which poll unfinished ones)."""
        return [{"type": "kernel", "kernel": await self._state_anywhere(project_id)}]

    async def interrupt(self, user: User, project_id: int) -> dict[str, Any]:
        """Interrupt the run in progress (it ends ``interrupted``); nothing when idle."""
        await self._writer(user, project_id)
        pk = self._kernels.get(project_id)
        if pk is not None and pk.held:
            await self._interrupt_here(pk)
        else:
            await self._forward(project_id, KernelCommand.INTERRUPT)
        return await self._state_anywhere(project_id)

    async def restart(self, user: User, project_id: int) -> dict[str, Any]:
        """Restart the kernel (its variables are lost; a run in progress ends
        ``interrupted``; queued runs run after it)."""
        await self._writer(user, project_id)
        pk = self._kernels.get(project_id)
        if pk is not None and pk.held:
            await self._restart_here(pk)
        else:
            await self._forward(project_id, KernelCommand.RESTART)
        return await self._state_anywhere(project_id)

    async def holder(self, project_id: int) -> str | None:
        """The hub holding the project's kernel lease (expired or not), if any."""
        async with self._db.sessions() as s:
            lease = await s.get(KernelLease, project_id)
            return lease.hub_id if lease is not None else None

    async def _interrupt_here(self, pk: _ProjectKernel) -> None:
        if pk.current is not None and pk.kernel_id is not None:
            pk.current.interrupt_requested = True
            await self._signal_interrupt(pk, pk.kernel_id)

    async def _signal_interrupt(self, pk: _ProjectKernel, kernel_id: str) -> None:
        try:
            await self._client.interrupt(kernel_id)
        except KernelHostError:
            log.warning("interrupt failed", extra={"project_id": pk.project_id}, exc_info=True)

    async def _restart_here(self, pk: _ProjectKernel) -> None:
        if pk.kernel_id is None:
            return
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
        """Shut down every kernel idle for ``idle_seconds`` (giving up its lease); returns
        their projects."""
        now = self._clock.monotonic()
        culled = []
        for pk in list(self._kernels.values()):
            if (
                pk.held
                and pk.current is None
                and not pk.queue
                and now - pk.idle_since >= self.tuning.idle_seconds
            ):
                async with pk.lock:
                    if pk.current is not None or pk.queue:
                        continue
                    # Runs another hub queued that the worker has not seen yet keep it.
                    if await self._queued_count(pk.project_id):
                        pk.wake.set()
                        continue
                    had_kernel = pk.kernel_id is not None
                    await self._drop_kernel(pk)
                    await self._set_state(pk, KernelState.NONE)
                    await self._release(pk)
                if had_kernel:
                    culled.append(pk.project_id)
                    log.info("idle kernel shut down", extra={"project_id": pk.project_id})
        return culled

    async def adopt(self) -> list[int]:
        """Take over the kernel of every project with runs waiting or left running whose lease
        nobody holds (none, or expired: its hub stopped); returns those projects."""
        async with self._db.sessions() as s:
            pending = (
                await s.scalars(
                    select(KernelRun.project_id)
                    .where(KernelRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
                    .distinct()
                )
            ).all()
            leases = {
                lease.project_id: lease
                for lease in (
                    await s.scalars(select(KernelLease).where(KernelLease.project_id.in_(pending)))
                ).all()
            }
        adopted = []
        for project_id in pending:
            pk = self._kernels.get(project_id)
            if (pk is not None and pk.held) or self._live_elsewhere(leases.get(project_id)):
                continue
            if await self._claim(project_id) is None:
                adopted.append(project_id)
        return adopted

    async def renew(self) -> None:
        """Extend this hub's leases; a lease another hub took over meanwhile (this hub was
        thought dead) is given up, with its kernel."""
        held = {pid: pk for pid, pk in self._kernels.items() if pk.held}
        if not held:
            return
        async with self._db.transaction() as s:
            await s.execute(
                update(KernelLease)
                .where(KernelLease.project_id.in_(held), KernelLease.hub_id == self.hub_id)
                .values(expires_at=self._lease_end())
            )
            still = set(
                (
                    await s.scalars(
                        select(KernelLease.project_id).where(
                            KernelLease.project_id.in_(held), KernelLease.hub_id == self.hub_id
                        )
                    )
                ).all()
            )
        for project_id, pk in held.items():
            if project_id in still:
                pk.wake.set()  # runs whose nudge was lost (the broker is at most once)
            elif pk.held:
                await self._lose(pk)

    # Leases ----------------------------------------------------------------------------------

    def _lease_end(self) -> datetime:
        return self._clock.now() + timedelta(seconds=self.tuning.lease_seconds)

    async def _claim(self, project_id: int) -> str | None:
        """Take the project's lease unless a live hub holds it; returns that hub, or None once
        this hub holds it. Taking it over ends the runs its last holder left running."""
        pk = self._project_kernel(project_id)
        async with pk.claiming:
            if pk.held:
                return None
            try:
                holder = await self._claim_once(project_id)
            except IntegrityError:
                # Another hub created the lease at the same moment: it holds it.
                holder = await self.holder(project_id)
                if holder is None or holder == self.hub_id:
                    raise
                return holder
            if holder is None:
                pk.held = True
                pk.state = KernelState.NONE
                pk.idle_since = self._clock.monotonic()
                pk.wake.set()
            return holder

    async def _claim_once(self, project_id: int) -> str | None:
        now = self._clock.now()
        stale: list[tuple[KernelRun, User | None]] = []
        async with self._db.transaction() as s:
            lease = await s.get(KernelLease, project_id, with_for_update=True)
            previous = lease.hub_id if lease is not None else None
            if lease is None:
                s.add(
                    KernelLease(
                        project_id=project_id,
                        hub_id=self.hub_id,
                        expires_at=self._lease_end(),
                        state=KernelState.NONE.value,
                        run_id=None,
                    )
                )
            elif lease.hub_id == self.hub_id or lease.expires_at <= now or self._broker is None:
                lease.hub_id = self.hub_id
                lease.expires_at = self._lease_end()
                lease.state = KernelState.NONE.value
                lease.run_id = None
            else:
                return lease.hub_id
            # Only a lease holder runs runs, and this hub runs none of this project now (it
            # does not hold the lease): any still ``running`` lost its hub.
            for run in (
                await s.scalars(
                    select(KernelRun).where(
                        KernelRun.project_id == project_id,
                        KernelRun.status == RunStatus.RUNNING.value,
                    )
                )
            ).all():
                run.status = RunStatus.ERROR.value
                run.outputs = [*run.outputs, _notice(HOLDER_STOPPED)]
                run.finished_at = now
                by = await s.get(User, run.user_id) if run.user_id is not None else None
                stale.append((run, by))
        if previous is not None and previous != self.hub_id:
            log.info(
                "kernel lease taken over",
                extra={"project_id": project_id, "from": previous, "stale_runs": len(stale)},
            )
        for run, by in stale:
            await self._publish(
                project_id, {"type": "run", "run": run_data(RunView(run, by), outputs=False)}
            )
        return None

    async def _release(self, pk: _ProjectKernel) -> None:
        pk.held = False
        async with self._db.transaction() as s:
            await s.execute(
                delete(KernelLease).where(
                    KernelLease.project_id == pk.project_id, KernelLease.hub_id == self.hub_id
                )
            )

    async def _lose(self, pk: _ProjectKernel) -> None:
        """Another hub holds the lease now: this hub's kernel of the project goes (a run in
        progress was ended by the new holder)."""
        log.warning("kernel lease lost", extra={"project_id": pk.project_id})
        pk.held = False
        async with pk.lock:
            await self._drop_kernel(pk)
            pk.state = KernelState.NONE

    async def _dispatch(self, project_id: int, run_id: int) -> None:
        """Get a queued run going: here when this hub holds (or can take) the lease, else by
        telling the holder."""
        pk = self._kernels.get(project_id)
        if pk is not None and pk.held:
            pk.queue.append(run_id)
            pk.wake.set()
            return
        holder = await self._claim(project_id)
        if holder is not None:
            await self._tell(holder, KernelCommand.NUDGE, project_id)

    async def _forward(self, project_id: int, command: KernelCommand) -> None:
        """An interrupt or restart of a kernel this hub does not hold: to its holder, or, when
        its hub stopped, take the lease over (that ends the run it left)."""
        async with self._db.sessions() as s:
            lease = await s.get(KernelLease, project_id)
        if lease is not None and self._live_elsewhere(lease):
            await self._tell(lease.hub_id, command, project_id)
        else:
            await self._adopt_one(project_id)

    def _live_elsewhere(self, lease: KernelLease | None) -> bool:
        """The lease is another hub's, and that hub is alive (it renews it)."""
        return (
            lease is not None
            and self._broker is not None
            and lease.hub_id != self.hub_id
            and lease.expires_at > self._clock.now()
        )

    async def _adopt_one(self, project_id: int) -> bool:
        """Take the project's lease if runs are waiting or were left running and nobody live
        holds it."""
        if not await self._pending(project_id):
            return False
        return await self._claim(project_id) is None

    async def _pending(self, project_id: int) -> bool:
        async with self._db.sessions() as s:
            found = await s.scalar(
                select(KernelRun.id)
                .where(
                    KernelRun.project_id == project_id,
                    KernelRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
                )
                .limit(1)
            )
        return found is not None

    async def _queued_count(self, project_id: int) -> int:
        async with self._db.sessions() as s:
            count = await s.scalar(
                select(func.count())
                .select_from(KernelRun)
                .where(
                    KernelRun.project_id == project_id,
                    KernelRun.status == RunStatus.QUEUED.value,
                )
            )
        return int(count or 0)

    async def _state_anywhere(self, project_id: int) -> dict[str, Any]:
        """The kernel's state as this hub holds it, or as its holder last reported it."""
        queued = await self._queued_count(project_id)
        pk = self._kernels.get(project_id)
        if pk is not None and pk.held:
            return self._kernel_data(project_id) | {"queued": queued}
        async with self._db.sessions() as s:
            lease = await s.get(KernelLease, project_id)
        if lease is None or not self._live_elsewhere(lease):
            return {"state": KernelState.NONE.value, "run": None, "queued": queued}
        return {"state": lease.state, "run": lease.run_id, "queued": queued}

    # Between hubs ----------------------------------------------------------------------------

    async def _tell(self, hub_id: str | None, command: KernelCommand, project_id: int) -> None:
        """Send ``command`` to hub ``hub_id`` (None: every hub) over the broker."""
        if self._broker is None:
            return
        message = {"op": command.value, "project": project_id, "from": self.hub_id, "to": hub_id}
        try:
            await self._broker.publish(COMMANDS_CHANNEL, orjson.dumps(message))
        except Exception:
            # A lost nudge is repaired by the holder's next lease round; a lost interrupt is not.
            log.warning(
                "kernel command not sent",
                extra={"project_id": project_id, "command": command.value},
            )

    async def _listen(self) -> None:
        assert self._sub is not None
        backoff = 0.2
        while COMMANDS_CHANNEL not in self._sub.channels:
            try:
                await self._sub.add(COMMANDS_CHANNEL)
            except Exception:
                log.warning("kernel commands not subscribed yet; retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        async for message in self._sub:
            try:
                data = orjson.loads(message.data)
                command = KernelCommand(data["op"])
                project_id = int(data["project"])
                sender, target = str(data["from"]), data.get("to")
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                log.warning("dropped a malformed kernel command")
                continue
            if sender == self.hub_id or target not in (None, self.hub_id):
                continue
            task = asyncio.create_task(
                self._obey(command, project_id), name=f"kernel-{command.value}-{project_id}"
            )
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)

    async def _obey(self, command: KernelCommand, project_id: int) -> None:
        try:
            pk = self._kernels.get(project_id)
            if pk is None or not pk.held:
                # Not (or no longer) the holder: take over if the kernel is nobody's.
                await self._adopt_one(project_id)
            elif command is KernelCommand.INTERRUPT:
                await self._interrupt_here(pk)
            elif command is KernelCommand.RESTART:
                await self._restart_here(pk)
            else:
                pk.wake.set()
        except Exception:
            log.exception("kernel command failed", extra={"project_id": project_id})

    async def _after_reconnect(self) -> None:
        # Commands sent while the broker was away are gone: look at the database again.
        await self.renew()
        await self.adopt()

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self.renew()
                await self.adopt()
            except Exception:
                if _cancelled():
                    # close() cut the round short: SQLAlchemy may report the cancelled
                    # statement as an error of its own (PendingRollbackError), which must not
                    # keep the loop, and with it close(), going.
                    raise asyncio.CancelledError from None
                log.exception("kernel lease round failed")
            await asyncio.sleep(self.tuning.lease_seconds / 3)

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
        data = self._kernel_data_of(pk)
        await self._publish(pk.project_id, {"type": "kernel", "kernel": data})
        if pk.held:
            # What the other hubs answer for GET …/kernel.
            try:
                async with self._db.transaction() as s:
                    await s.execute(
                        update(KernelLease)
                        .where(
                            KernelLease.project_id == pk.project_id,
                            KernelLease.hub_id == self.hub_id,
                        )
                        .values(state=data["state"], run_id=data["run"])
                    )
            except Exception:
                log.warning("kernel state not stored", extra={"project_id": pk.project_id})

    def _kernel_data_of(self, pk: _ProjectKernel) -> dict[str, Any]:
        return self._kernel_data(pk.project_id) | {"state": pk.state.value}

    async def _next_run(self, pk: _ProjectKernel) -> int | None:
        """The project's oldest queued run, while this hub holds its lease."""
        if not pk.held:
            return None
        async with self._db.sessions() as s:
            waiting = list(
                (
                    await s.scalars(
                        select(KernelRun.id)
                        .where(
                            KernelRun.project_id == pk.project_id,
                            KernelRun.status == RunStatus.QUEUED.value,
                        )
                        .order_by(KernelRun.id)
                        .limit(MAX_QUEUED + 1)
                    )
                ).all()
            )
        pk.queue = deque(waiting[1:])
        return waiting[0] if waiting else None

    async def _work(self, pk: _ProjectKernel) -> None:
        while True:
            pk.wake.clear()
            try:
                run_id = await self._next_run(pk)
            except Exception:
                log.warning("queued runs not read", extra={"project_id": pk.project_id})
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.tuning.lease_seconds / 3):
                        await pk.wake.wait()
                continue
            if run_id is None:
                await pk.wake.wait()
                continue
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
            # queued → running once: a hub that lost its lease without knowing yet cannot run
            # a run its successor took.
            taken = await s.execute(
                update(KernelRun)
                .where(KernelRun.id == run_id, KernelRun.status == RunStatus.QUEUED.value)
                .values(status=RunStatus.RUNNING.value, started_at=self._clock.now())
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return
            run = await s.get(KernelRun, run_id)
            if run is None:
                return
            by = await s.get(User, run.user_id) if run.user_id is not None else None
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
            if live.interrupt_requested:  # while its files were written
                return RunStatus.INTERRUPTED, None
            await self._set_state(pk, KernelState.BUSY)
            request = self._new_request(lambda kind, c: self._output(pk, live, kind, c))
            msg_id = await self._send(pk, request, code)
            try:
                async with asyncio.timeout(self.tuning.run_seconds):
                    reply = await self._wait_interruptible(pk, live, request)
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
            stored = await s.get(KernelRun, run.id, with_for_update=True)
            # The first ending stands: a hub that took the lease over may have ended it.
            ended_here = stored is not None and stored.status == RunStatus.RUNNING.value
            if stored is not None and ended_here:
                stored.status = run.status
                stored.outputs = list(run.outputs)
                stored.output_bytes = run.output_bytes
                stored.truncated = run.truncated
                stored.started_at = run.started_at
                stored.finished_at = run.finished_at
        pk.current = None
        if ended_here:
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

    async def _wait_interruptible(
        self, pk: _ProjectKernel, live: _LiveRun, request: _Request
    ) -> dict[str, Any]:
        """The run's reply. A kernel ignores SIGINT until it begins executing the code, so
        an interrupt asked for before then (sent while the request was on its way) is lost:
        it is sent again once the kernel says it began."""
        reply = asyncio.ensure_future(self._wait(request))
        began = asyncio.ensure_future(request.began.wait())
        try:
            await asyncio.wait({reply, began}, return_when=asyncio.FIRST_COMPLETED)
            if not reply.done() and live.interrupt_requested and pk.kernel_id is not None:
                await self._signal_interrupt(pk, pk.kernel_id)
            return await reply
        finally:
            reply.cancel()
            began.cancel()

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
                    if msg.msg_type == "execute_input":
                        request.began.set()
                    elif msg.msg_type == "error":
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
                if _cancelled():
                    raise asyncio.CancelledError from None
                log.exception("kernel culling failed")


def _cancelled() -> bool:
    """Whether the running task was asked to stop (an error it then met may be the cut)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
