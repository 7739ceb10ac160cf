"""The kernel sandbox: a kernel spec whose kernels run under bubblewrap, and the jupyter_client
kernel provisioner that builds their command.

The provisioner runs inside the Jupyter server process (registered as the ``cohort-sandbox``
entry point of ``jupyter_client.kernel_provisioners``). Each kernel process becomes::

    bwrap <namespaces, read-only system paths, private /project and /tmp> --
      prlimit <CPU, address space, processes, file size> --
        setpriv <drop to the project's own uid, no capabilities> --
          python -m ipykernel_launcher -f <connection file>

A new network namespace also cuts ZMQ over TCP on 127.0.0.1, so the kernel speaks ZMQ over
``ipc`` (Unix sockets) in a directory of its own, bound into the sandbox at the same path: the
server connects to the socket files the kernel creates there. Only that directory (its own
connection file and sockets) and the project's working directory are visible and writable; the
hub's data directory, other kernels' keys and the network are not.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import Bool, Int, List, Unicode

PROVISIONER = "cohort-sandbox"
KERNEL_NAME = "cohort-python"
SANDBOX_HOME = "/project"  # the working directory, as the kernel sees it
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Just what a Python process needs of /etc (no shadow files, no host keys, no hub config).
ETC_PATHS = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/ssl/certs",
    "/etc/fonts",
)
PROJECT_DIR = "project-"  # working directories are named project-<id>


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Resource limits of one kernel process tree."""

    cpu_seconds: int = 5  # per run (the hub raises the soft limit before each run)
    cpu_total_seconds: int = 600  # over the kernel's life (the hard limit)
    memory_bytes: int = 1 << 30  # address space
    processes: int = 64  # tasks (threads too) of the kernel's uid
    file_bytes: int = 1 << 20  # largest file written
    open_files: int = 256


def kernel_spec(
    limits: SandboxLimits,
    *,
    python: str,
    uid_base: int,
    extra_ro_paths: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``kernel.json`` of the sandboxed Python kernel."""
    ro_paths = _python_paths(python) + list(extra_ro_paths)
    return {
        "argv": [
            python,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--HistoryManager.enabled=False",
        ],
        "display_name": "Python 3 (Cohort sandbox)",
        "language": "python",
        # A signal would reach bwrap itself; the kernel interrupts itself on a control message.
        "interrupt_mode": "message",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER,
                "config": {
                    "cpu_seconds": limits.cpu_seconds,
                    "cpu_total_seconds": limits.cpu_total_seconds,
                    "memory_bytes": limits.memory_bytes,
                    "processes": limits.processes,
                    "file_bytes": limits.file_bytes,
                    "open_files": limits.open_files,
                    "uid_base": uid_base,
                    "ro_paths": ro_paths,
                },
            }
        },
    }


def write_kernel_spec(data_dir: Path, spec: dict[str, Any]) -> Path:
    """Write the spec where a Jupyter server with ``JUPYTER_PATH=data_dir`` finds it."""
    import json

    folder = data_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return folder


def _python_paths(python: str) -> list[str]:
    """The interpreter's installation and, for a virtualenv, the environment itself."""
    exe = Path(python)
    paths: list[str] = []
    env = exe.parent.parent
    if (env / "pyvenv.cfg").exists():
        paths.append(str(env.absolute()))
    real = exe.resolve()
    paths.append(str(real.parent.parent))
    if python == sys.executable:
        paths += [sys.prefix, sys.base_prefix]
    seen: list[str] = []
    for p in paths:
        if p not in seen and not any(p.startswith(s.rstrip("/") + "/") for s in SYSTEM_PATHS):
            seen.append(p)
    return seen


def kernel_uid(uid_base: int, workdir: str) -> int:
    """The uid a project's kernel runs as: its own, so the process limit (which the kernel
    counts per uid) is per project."""
    name = os.path.basename(os.path.normpath(workdir))
    if name.startswith(PROJECT_DIR) and name[len(PROJECT_DIR) :].isdigit():
        return uid_base + int(name[len(PROJECT_DIR) :]) % 1_000_000
    return uid_base + 999_999


def bwrap_command(
    kernel_cmd: Sequence[str],
    *,
    workdir: str,
    ipc_dir: str,
    ro_paths: Sequence[str],
    limits: SandboxLimits,
    uid: int | None,
    bwrap: str = "bwrap",
) -> list[str]:
    """The full command of a sandboxed kernel (``uid`` None: keep the caller's uid, as an
    unprivileged hub must)."""
    cmd = [
        bwrap,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "IPYTHONDIR": "/tmp/.ipython",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "MPLBACKEND": "agg",
        # glibc reserves 64 MiB of address space per thread's malloc arena otherwise.
        "MALLOC_ARENA_MAX": "2",
        "COHORT_WORKDIR": SANDBOX_HOME,
    }
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for path in ETC_PATHS:
        if os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    # The private /tmp first: the interpreter (a checkout's virtualenv) may live under /tmp,
    # and a bind made before the tmpfs would vanish beneath it.
    cmd += ["--perms", "1777", "--tmpfs", "/tmp"]
    made: set[str] = set()
    for path in ro_paths:
        if os.path.exists(path):
            cmd += [*_parents(path, made), "--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--bind", workdir, SANDBOX_HOME]
    cmd += [*_parents(ipc_dir, made), "--bind", ipc_dir, ipc_dir]
    cmd += ["--chdir", SANDBOX_HOME, "--"]
    cmd += [
        shutil.which("prlimit") or "/usr/bin/prlimit",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_total_seconds}",
        f"--as={limits.memory_bytes}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]
    if uid is not None:
        cmd += [
            shutil.which("setpriv") or "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    return cmd + list(kernel_cmd)


def _parents(path: str, made: set[str]) -> list[str]:
    """Directories above a bind mount, traversable by the kernel's uid (bwrap would create
    them mode 0700, owned by root)."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for i in range(len(parts)):
        parent = "/" + "/".join(parts[: i + 1])
        if parent in made or parent == "/tmp" or parent.startswith(SYSTEM_PATHS):
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", parent]
    return args


class SandboxProvisioner(LocalProvisioner):
    """Launches kernels under bubblewrap with ZMQ over ipc (see the module docstring)."""

    cpu_seconds = Int(5, config=True)
    cpu_total_seconds = Int(600, config=True)
    memory_bytes = Int(1 << 30, config=True)
    processes = Int(64, config=True)
    file_bytes = Int(1 << 20, config=True)
    open_files = Int(256, config=True)
    uid_base = Int(200_000, config=True)
    ro_paths = List(Unicode(), config=True)
    bwrap = Unicode("bwrap", config=True)
    drop_uid = Bool(True, config=True, help="run as the project's uid (needs root)")

    _ipc_dir: str | None = None

    def _limits(self) -> SandboxLimits:
        return SandboxLimits(
            cpu_seconds=self.cpu_seconds,
            cpu_total_seconds=self.cpu_total_seconds,
            memory_bytes=self.memory_bytes,
            processes=self.processes,
            file_bytes=self.file_bytes,
            open_files=self.open_files,
        )

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        assert km is not None
        workdir, uid = self._prepare(km, str(kwargs.get("cwd") or os.getcwd()))
        kwargs = await super().pre_launch(**kwargs)
        if uid is not None:
            os.chown(km.connection_file, uid, uid)
        assert self._ipc_dir is not None
        kwargs["cmd"] = bwrap_command(
            kwargs["cmd"],
            workdir=workdir,
            ipc_dir=self._ipc_dir,
            ro_paths=self.ro_paths,
            limits=self._limits(),
            uid=uid,
            bwrap=self.bwrap,
        )
        # The sandbox gets its environment from --setenv only; bwrap itself needs little.
        kwargs["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        kwargs["cwd"] = workdir
        return kwargs

    def _prepare(self, km: Any, cwd: str) -> tuple[str, int | None]:
        """The kernel's private ipc directory and connection file (the same on every restart),
        owned by the uid it will run as."""
        workdir = os.path.realpath(cwd)
        uid = kernel_uid(self.uid_base, workdir) if self.drop_uid and os.geteuid() == 0 else None
        self._ipc_dir = os.path.join(jupyter_runtime_dir(), f"k-{km.kernel_id}")
        os.makedirs(self._ipc_dir, mode=0o700, exist_ok=True)
        km.transport = "ipc"
        km.connection_file = os.path.join(self._ipc_dir, "kernel.json")
        km.ip = os.path.join(self._ipc_dir, "zmq")
        if uid is not None:
            os.chown(self._ipc_dir, uid, uid)
            os.chown(workdir, uid, uid)
        return workdir, uid

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart and self._ipc_dir is not None:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
            self._ipc_dir = None
