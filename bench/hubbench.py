"""Shared harness of the HTTP benchmarks (``purchases.py``, ``catalog.py``): a throwaway
PostgreSQL database, a real ``cohort serve`` process on a free port, a load generator with
warm-up, CPU accounting of the hub, this client process and PostgreSQL, and optional sampling
of the hub with py-spy.

Not a benchmark itself; the scripts next to it import it (``bench/`` is on ``sys.path`` when a
script runs as ``.venv/bin/python bench/<name>.py``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CACHE_DIR = ROOT / "var" / "bench"
ADMIN_DSN = os.environ.get("COHORT_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# bench/catalog.py is named like the package it measures: with bench/ on the import path,
# `import catalog` would find the script. The scripts import this module first, then no more
# from bench/.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


class BenchError(Exception):
    """A step failed; the message says which and why."""


def note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# Environment ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": model,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "sqlalchemy": version("sqlalchemy"),
        "asyncpg": version("asyncpg"),
    }


async def postgres_info() -> dict[str, Any]:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        server = await conn.fetchval("SHOW server_version")
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            [
                "shared_buffers",
                "synchronous_commit",
                "fsync",
                "max_connections",
                "work_mem",
                "jit",
            ],
        )
    finally:
        await conn.close()
    settings = {r["name"]: r["setting"] + (r["unit"] or "") for r in rows}
    return {"version": server, "settings": settings, "host": "127.0.0.1 (same machine)"}


def hub_code(code: str | None) -> Path | None:
    """The source tree given with ``--code``, checked to hold the hub's packages."""
    if code is None:
        return None
    path = Path(code).resolve()
    if not (path / "hub" / "cli.py").is_file():
        raise BenchError(f"--code {code}: no hub/cli.py there")
    return path


PACKAGES = ("hub", "rooms", "ide", "media", "catalog", "payments")


def copy_packages(source: Path, dest: Path) -> None:
    """Copy the hub's Python packages from one source tree into ``dest`` (for ``--code``)."""
    for package in PACKAGES:
        if (source / package).is_dir():
            shutil.copytree(
                source / package,
                dest / package,
                ignore=shutil.ignore_patterns("__pycache__"),
                dirs_exist_ok=True,
            )


def cohort_revision() -> dict[str, Any]:
    """The commit measured and whether the working tree differs from it (read-only git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                cwd=ROOT,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--", "hub", "catalog", "payments")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "python_modified": None if status is None else bool(status),
    }


# Database and hub process --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"cohort_bench_{os.getpid()}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host = ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{host}/{name}"
    finally:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HubEnv:
    """The settings every command of one benchmark run shares (the hub, ``cohort migrate``,
    ``cohort ledger verify`` and in-process seeding)."""

    database_url: str
    data_dir: Path
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    extra: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
        env.update(
            COHORT_DATABASE_URL=self.database_url,
            COHORT_DATA_DIR=str(self.data_dir),
            COHORT_SECRET_KEY=self.secret_key,
            **self.extra,
        )
        return env

    def settings_overrides(self) -> dict[str, Any]:
        """The same settings as keyword overrides of ``hub.settings.load_settings``."""
        overrides: dict[str, Any] = {
            "database_url": self.database_url,
            "data_dir": self.data_dir,
            "secret_key": self.secret_key,
        }
        for key, value in self.extra.items():
            overrides[key.removeprefix("COHORT_").lower()] = value
        return overrides


def cohort(
    env: HubEnv, *args: str, timeout: float = 300, code: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one ``cohort`` command against the benchmark database (from ``code``'s packages
    when given, as the hub of ``--code`` runs)."""
    environ = env.environ()
    if code is not None:
        environ["PYTHONPATH"] = str(code)
    return subprocess.run(
        [str(BIN / "cohort"), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


class HubProcess:
    """``cohort serve`` in a process of its own; its log goes to a file. With ``code``, the hub
    runs the packages of that source tree instead (``--code``: before/after comparisons under
    the same conditions; the installed dependencies are the same)."""

    def __init__(self, env: HubEnv, code: Path | None = None) -> None:
        self.env = env
        self.code = code
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = env.data_dir / "hub.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        env = self.env.environ()
        if self.code is not None:
            env["PYTHONPATH"] = str(self.code)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "cohort"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    async def wait_ready(self, within: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"the hub exited at start:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.base_url}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise BenchError(f"the hub was not ready within {within} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def error_lines(self) -> int:
        """Log lines at level error or worse (the hub logs JSON lines)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(
            1 for line in text.splitlines() if '"level":"error"' in line or "Traceback" in line
        )


@contextlib.asynccontextmanager
async def running_hub(env: HubEnv, code: Path | None = None) -> AsyncIterator[HubProcess]:
    hub = HubProcess(env, code)
    try:
        hub.spawn()
        await hub.wait_ready()
        yield hub
    finally:
        hub.stop()


@contextlib.contextmanager
def data_dir() -> Iterator[Path]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="hub-", dir=CACHE_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# CPU accounting --------------------------------------------------------------------------------


def _proc_cpu(pid: int, *, system_only: bool = False) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if system_only:
        return int(fields[12]) / CLOCK_TICKS
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _postgres_cpu() -> dict[int, float]:
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("postgres", "postmaster"):
            cpu = _proc_cpu(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def client_cpu() -> float:
    """CPU seconds this (client) process has used."""
    return _self_cpu()


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds spent by the hub, this (client) process, PostgreSQL and the rest of the
    machine over one window."""

    hub_pid: int
    _start: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {
            "hub": _proc_cpu(self.hub_pid) or 0.0,
            "hub_sys": _proc_cpu(self.hub_pid, system_only=True) or 0.0,
            "client": _self_cpu(),
            "postgres": _postgres_cpu(),
            "machine": _machine_cpu(),
            "wall": time.monotonic(),
        }

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._start["wall"]
        hub = (_proc_cpu(self.hub_pid) or 0.0) - self._start["hub"]
        hub_sys = (_proc_cpu(self.hub_pid, system_only=True) or 0.0) - self._start["hub_sys"]
        client = _self_cpu() - self._start["client"]
        before = self._start["postgres"]
        postgres = sum(cpu - before.get(pid, 0.0) for pid, cpu in _postgres_cpu().items())
        busy0, total0 = self._start["machine"]
        busy1, total1 = _machine_cpu()
        busy = busy1 - busy0
        return {
            "window_s": round(wall, 2),
            "hub_s": round(hub, 2),
            "hub_kernel_s": round(hub_sys, 2),
            "client_s": round(client, 2),
            "postgres_s": round(postgres, 2),
            "other_s": round(max(0.0, busy - hub - client - postgres), 2),
            "machine_busy_pct": round(100 * busy / max(total1 - total0, 1e-9), 1),
            "hub_cores": round(hub / wall, 2),
        }


async def wait_for_quiet(
    within: float, exclude: list[int], threshold: float = 0.15, quiet_seconds: int = 3
) -> float:
    """Wait up to ``within`` s until the rest of the machine (everything but this process and
    ``exclude``) uses under ``threshold`` cores for ``quiet_seconds`` in a row. Returns the cores
    it used in the last second measured (the machine is shared: other work skews figures)."""
    deadline = time.monotonic() + within
    quiet = 0
    while True:
        busy0, _ = _machine_cpu()
        mine0 = _self_cpu() + sum(_proc_cpu(p) or 0.0 for p in exclude)
        await asyncio.sleep(1)
        busy1, _ = _machine_cpu()
        mine1 = _self_cpu() + sum(_proc_cpu(p) or 0.0 for p in exclude)
        background = max(0.0, (busy1 - busy0) - (mine1 - mine0))
        quiet = quiet + 1 if background < threshold else 0
        if quiet >= quiet_seconds or time.monotonic() >= deadline:
            if quiet < quiet_seconds:
                note(f"the machine is not quiet ({background:.2f} cores busy elsewhere); going on")
            return round(background, 2)


# Load generation -------------------------------------------------------------------------------

# One request: given a session, return the HTTP status (or raise).
Call = Callable[[aiohttp.ClientSession], Awaitable[int]]
# Makes the next request of one client; None when that client has run out of work.
CallFactory = Callable[[int], Call | None]


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    exhausted: int = 0

    def add(self, latency: float, status: str) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def summarize(samples: Samples, window: float) -> dict[str, Any]:
    values = sorted(samples.latencies)
    ms = 1000.0
    return {
        "requests": len(values),
        "per_second": round(len(values) / window, 1) if window else None,
        "p50_ms": round(percentile(values, 0.50) * ms, 2),
        "p90_ms": round(percentile(values, 0.90) * ms, 2),
        "p99_ms": round(percentile(values, 0.99) * ms, 2),
        "max_ms": round(values[-1] * ms, 2) if values else None,
        "mean_ms": round(sum(values) / len(values) * ms, 2) if values else None,
        "statuses": dict(sorted(samples.statuses.items())),
        "clients_out_of_work": samples.exhausted,
    }


async def _timed(call: Call, session: aiohttp.ClientSession) -> str:
    try:
        return str(await call(session))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"error:{type(exc).__name__}"


async def closed_loop(
    session: aiohttp.ClientSession, clients: int, seconds: float, next_call: CallFactory
) -> tuple[Samples, float]:
    """``clients`` workers, each sending its next request as soon as the previous one is
    answered, for ``seconds``. Returns the samples and the measured window."""
    samples = Samples()
    started = time.perf_counter()
    end = started + seconds

    async def worker(index: int) -> None:
        while time.perf_counter() < end:
            call = next_call(index)
            if call is None:
                samples.exhausted += 1
                return
            t0 = time.perf_counter()
            status = await _timed(call, session)
            samples.add(time.perf_counter() - t0, status)

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return samples, time.perf_counter() - started


async def open_loop(
    session: aiohttp.ClientSession,
    rate: float,
    max_in_flight: int,
    seconds: float,
    next_call: CallFactory,
) -> tuple[Samples, float]:
    """Requests arrive at a fixed ``rate`` whatever the answers do (no coordinated omission):
    latency counts from the moment a request was due, including any wait for one of the
    ``max_in_flight`` connections."""
    samples = Samples()
    gate = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    count = int(rate * seconds)

    async def one(due: float, call: Call) -> None:
        async with gate:
            status = await _timed(call, session)
        samples.add(time.perf_counter() - due, status)

    for n in range(count):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        call = next_call(n % max_in_flight)
        if call is None:
            samples.exhausted += 1
            break
        task = asyncio.create_task(one(due, call))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return samples, time.perf_counter() - started


def connector(clients: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=clients, limit_per_host=clients, force_close=False)


# Profiling -------------------------------------------------------------------------------------


class Profiler:
    """py-spy sampling of the hub (``--profile``): collapsed stacks to a file, a summary of the
    hottest functions to stderr. Sampling costs the hub CPU: profiled runs are marked so."""

    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 250) -> None:
        self.out = out
        self.command = [
            str(BIN / "py-spy"),
            *("record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))),
            *("--rate", str(rate), "--format", "raw", "--nonblocking", "--output", str(out)),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not (BIN / "py-spy").exists():
            raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def finish(self, top: int = 40) -> None:
        if self.process is None:
            return
        self.process.wait(timeout=120)
        summarize_profile(self.out, top)


def summarize_profile(path: Path, top: int = 40) -> None:
    """Self and inclusive sample shares per function of py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # a frame name with a newline in it (generated code) split the line
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    note(f"profile: {total} samples in {path}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        note(f"top {top} by {title} time:")
        for frame, count in counter.most_common(top):
            note(f"  {100 * count / max(total, 1):5.1f}%  {frame}")
