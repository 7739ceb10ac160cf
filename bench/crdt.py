"""Benchmark: shared Yjs documents, Cohort's ``/yjs/{doc}`` against Hocuspocus 3 and
``@y/websocket-server`` (issue 6), driven by the same Node load generator.

Usage: ``.venv/bin/python bench/crdt.py [--clients 20,50] [--seconds 30] [--rate 5] [--docs 1000]
[--doc-kb 10] [--generators 2] [--systems cohort,hocuspocus,yws] [--code DIR] [--profile]``

Scenarios, each on a freshly started server process per system:

* ``edit-<n>``: ``n`` stock clients (y-websocket 3 against Cohort and @y/websocket-server,
  @hocuspocus/provider 3 against Hocuspocus) on one document, each inserting one character at a
  random position ``--rate`` times a second for ``--seconds``. Latency runs from an insert (the
  sender's clock) to its arrival at every other client, identified by the Yjs id (client, clock)
  from each remote transaction's state vectors, not by reading the text. Afterwards every client's
  text digest is compared (``diverged``: clients whose text differs from the majority's) and
  arrivals are counted (``missing``). Server CPU seconds cover the load and the drain; RSS peak;
  the generators' CPU is reported (at 50 clients they can be the bottleneck).
* ``memory``: ``--docs`` documents, one client each, each filled with ``--doc-kb`` KB of text (one
  transaction of 10 inserts at random positions): (server RSS loaded - RSS before) / docs.

Cohort: one ``cohort serve`` (no Redis) on a fresh PostgreSQL database (created, migrated, dropped);
users and sessions are inserted and access tokens signed with the hub's key (bench/fanout.py's
seeding); the edited document is a project of a study group holding every user; the memory
scenario's documents are projects (``POST /api/projects``). Clients take a ticket from
``POST /api/realtime/ticket`` ``{"doc"}`` and edit a top-level ``Y.Text`` (``bench``), the same in
every system. The peers (``bench/crdt/peers.mjs``) and the generator (``bench/crdt/gen.mjs``) use
the npm packages pinned by ``bench/crdt/package-lock.json`` (``npm ci`` whenever it changes).

stdout gets exactly one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench import fanout as fo  # noqa: E402  (the harness of the real-time bench)

BIN = Path(sys.executable).parent
NODE_DIR = ROOT / "bench" / "crdt"
SYSTEMS = ("cohort", "hocuspocus", "yws")
note = fo.note
BenchError = fo.BenchError


def ensure_node() -> dict[str, str]:
    return fo.npm_packages(
        NODE_DIR,
        (
            "@hocuspocus/server",
            "@hocuspocus/provider",
            "@y/websocket-server",
            "y-websocket",
            "yjs",
            "ws",
        ),
        "the CRDT load generator and peers",
    )


@contextlib.asynccontextmanager
async def crdt_database() -> Any:
    import asyncpg

    name = f"cohort_crdt_{os.getpid()}"
    conn = await asyncpg.connect(fo.ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host = fo.ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{host}/{name}"
    finally:
        conn = await asyncpg.connect(fo.ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class Hub:
    def __init__(self, database_url: str, work: Path, code: Path | None) -> None:
        self.database_url = database_url
        self.secret_key = secrets.token_urlsafe(48)
        self.work = work
        self.code = code

    def environ(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
        if self.code is not None:
            env["PYTHONPATH"] = str(self.code)
        (self.work / name).mkdir(parents=True, exist_ok=True)
        env.update(
            COHORT_DATABASE_URL=self.database_url,
            COHORT_SECRET_KEY=self.secret_key,
            COHORT_DATA_DIR=str(self.work / name),
            COHORT_ACCESS_TOKEN_TTL="3600",
        )
        return env

    def migrate(self) -> None:
        done = subprocess.run(
            [str(BIN / "cohort"), "migrate"],
            env=self.environ("migrate"),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise BenchError(f"cohort migrate failed:\n{(done.stdout + done.stderr)[-3000:]}")


def server_for(system: str, hub: Hub, run_dir: Path) -> fo.ServerProcess:
    if system == "cohort":
        return fo.ServerProcess(
            "cohort",
            [str(BIN / "cohort"), "serve", "--host", "127.0.0.1", "--port", "{port}"],
            hub.environ(run_dir.name),
            "/readyz",
            run_dir / "server.log",
        )
    env = {**os.environ, "PORT": "{port}", "NODE_ENV": "production"}
    return fo.ServerProcess(
        system, ["node", str(NODE_DIR / "peers.mjs"), system], env, "/", run_dir / "server.log"
    )


class Gen:
    """One Node load generator process, driven by JSON lines."""

    def __init__(self, spec_path: Path, log: Path) -> None:
        self.spec_path = spec_path
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "gen.mjs"),
            str(self.spec_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.log.open("wb"),
            cwd=NODE_DIR,
            limit=1 << 30,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def call(self, cmd: str, within: float = 600, **args: Any) -> Any:
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not line:
            raise BenchError(f"generator exited: {self.log.read_text(errors='replace')[-2000:]}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise BenchError(f"generator {cmd}: {answer['error'][:2000]}")
        return answer["result"]

    async def finish(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.call("close", within=10)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def rss_kb(pid: int) -> int:
    return fo.proc_status_kb(pid, "VmRSS") or 0


async def quiet(pids: list[int], limit: float, cores: float = 0.05) -> float:
    started = time.monotonic()
    before = {p: fo.proc_cpu(p) or 0.0 for p in pids}
    calm = 0
    while time.monotonic() - started < limit:
        await asyncio.sleep(1.0)
        now = {p: fo.proc_cpu(p) or 0.0 for p in pids}
        busy = sum(now[p] - before[p] for p in pids)
        before = now
        calm = calm + 1 if busy < cores else 0
        if calm >= 2:
            break
    return round(time.monotonic() - started, 1)


async def start_gens(
    system: str,
    server: fo.ServerProcess,
    clients: list[list[Any]],
    n_gens: int,
    run_dir: Path,
    concurrency: int,
    no_deflate: bool = False,
) -> list[Gen]:
    base = f"http://127.0.0.1:{server.port}"
    url = f"ws://127.0.0.1:{server.port}" + ("/yjs" if system == "cohort" else "")
    gens = []
    for g in range(n_gens):
        spec = {
            "system": system,
            "base": base,
            "url": url,
            "clients": clients[g::n_gens],
            "concurrency": concurrency,
            "noDeflate": no_deflate,
        }
        path = run_dir / f"gen{g}.spec.json"
        path.write_text(json.dumps(spec))
        gen = Gen(path, run_dir / f"gen{g}.log")
        await gen.start()
        gens.append(gen)
    return gens


async def edit_run(ctx: dict[str, Any], system: str, n: int) -> dict[str, Any]:
    args = ctx["args"]
    run_dir = ctx["work"] / f"edit{n}-{system}"
    run_dir.mkdir(parents=True)
    server = server_for(system, ctx["hub"], run_dir)
    gens: list[Gen] = []
    out: dict[str, Any] = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        server.spawn()
        await server.wait_ready()
        await asyncio.sleep(1.0)
        out["rss_mb_start"] = round(rss_kb(server.pid) / 1024, 1)
        if system == "cohort":
            doc = await ctx["create_project"](server, 0, f"edit{n}", group=True)
            clients = [[doc, ctx["tokens"][i]] for i in range(n)]
        else:
            clients = [[f"edit{n}", None] for _ in range(n)]
        gens = await start_gens(
            system, server, clients, args.generators, run_dir, 8, args.no_deflate
        )
        await asyncio.gather(*(g.call("open") for g in gens))
        await quiet([server.pid] + [g.pid for g in gens], 20)
        out["rss_mb_connected"] = round(rss_kb(server.pid) / 1024, 1)
        pids = [server.pid] + [g.pid for g in gens]
        cpu0 = {p: fo.proc_cpu(p) or 0.0 for p in pids}
        wall0 = time.monotonic()
        start_at = time.time() * 1000 + 500
        profiler = None
        if args.profile and system == "cohort":
            profiler = fo.start_profiler(server.pid, args.seconds, run_dir / "pyspy.txt")
        peak = [0]

        async def watch() -> None:
            while True:
                peak[0] = max(peak[0], rss_kb(server.pid))
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(
                *(
                    g.call(
                        "load",
                        within=args.seconds + 120,
                        startAt=start_at,
                        seconds=args.seconds,
                        rate=args.rate,
                    )
                    for g in gens
                )
            )
            results = await asyncio.gather(
                *(g.call("drain", within=120, quietMs=2000, limitMs=60000) for g in gens)
            )
        finally:
            watcher.cancel()
        wall = time.monotonic() - wall0
        cpu1 = {p: fo.proc_cpu(p) or 0.0 for p in pids}
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        if profiler is not None:
            prof = fo.finish_profiler(profiler, run_dir / "pyspy.txt", top=15)
            out["profile_self_pct"] = prof["self_pct"]
            out["profile_inclusive_pct"] = prof["inclusive_pct"]
        sends: dict[int, list[float]] = {}
        lag: list[float] = []
        receivers = []
        for r in results:
            for c in r["clients"]:
                s = c["sends"]
                sends[c["id"]] = s[0::2]
                lag.extend(s[1::2])
                receivers.append(c)
        lat: list[float] = []
        arrived = 0
        for c in receivers:
            a = c["arrivals"]
            for i in range(0, len(a), 3):
                times = sends.get(a[i])
                if times is not None and a[i + 1] < len(times) and a[i] != c["id"]:
                    lat.append(a[i + 2] - times[a[i + 1]])
                    arrived += 1
        sent = sum(len(t) for t in sends.values())
        expected = sum(len(t) * (len(receivers) - 1) for t in sends.values())
        digests = collections.Counter(c["digest"] for c in receivers)
        majority = digests.most_common(1)[0][1] if digests else 0
        out.update(
            {
                "clients": len(receivers),
                "updates_sent": sent,
                "send_rate": round(sent / args.seconds, 1),
                "send_lag_ms_p99": fo.percentiles(lag).get("p99"),
                "latency_ms": fo.percentiles(lat),
                "arrivals_expected": expected,
                "missing": expected - arrived,
                "diverged": len(receivers) - majority,
                "distinct_texts": len(digests),
                "final_length": max((c["length"] for c in receivers), default=0),
                "disconnected_at_end": sum(1 for c in receivers if not c["connected"]),
                "drain_ms": max(r["drain_ms"] for r in results),
                "window_s": round(wall, 1),
                "server_cpu_s": round(cpu1[server.pid] - cpu0[server.pid], 2),
                "server_cores": round((cpu1[server.pid] - cpu0[server.pid]) / wall, 3),
                "server_rss_mb_peak": round(max(peak[0], rss_kb(server.pid)) / 1024, 1),
                "generator_cpu_s": round(sum(cpu1[g.pid] - cpu0[g.pid] for g in gens), 2),
                "generator_cores": round(sum(cpu1[g.pid] - cpu0[g.pid] for g in gens) / wall, 3),
                "server_errors": fo.server_error_lines(system, [server]),
            }
        )
        note(
            f"edit{n}/{system}: p50 {out['latency_ms'].get('p50')} "
            f"p99 {out['latency_ms'].get('p99')} ms, "
            f"server {out['server_cpu_s']} s CPU, gen {out['generator_cores']} cores, "
            f"missing {out['missing']}, diverged {out['diverged']}"
        )
        return out
    finally:
        for g in gens:
            await g.finish()
        server.stop()


async def memory_run(ctx: dict[str, Any], system: str) -> dict[str, Any]:
    args = ctx["args"]
    run_dir = ctx["work"] / f"memory-{system}"
    run_dir.mkdir(parents=True)
    server = server_for(system, ctx["hub"], run_dir)
    gens: list[Gen] = []
    out: dict[str, Any] = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        server.spawn()
        await server.wait_ready()
        tokens = ctx["tokens"]
        if system == "cohort":
            sem = asyncio.Semaphore(8)

            async def make(i: int) -> list[Any]:
                async with sem:
                    owner = i % len(tokens)
                    return [await ctx["create_project"](server, owner, f"mem{i}"), tokens[owner]]

            t = time.monotonic()
            clients = list(await asyncio.gather(*(make(i) for i in range(args.docs))))
            out["projects_created_s"] = round(time.monotonic() - t, 1)
        else:
            clients = [[f"mem{i}", None] for i in range(args.docs)]
        await quiet([server.pid], 30)
        base = rss_kb(server.pid)
        t = time.monotonic()
        gens = await start_gens(
            system, server, clients, args.generators, run_dir, 16, args.no_deflate
        )
        await asyncio.gather(*(g.call("open", within=900) for g in gens))
        out["open_s"] = round(time.monotonic() - t, 1)
        await asyncio.gather(*(g.call("fill", within=900, bytes=args.doc_kb * 1024) for g in gens))
        out["settle_s"] = await quiet([server.pid], 120)
        loaded = rss_kb(server.pid)
        out.update(
            {
                "docs": args.docs,
                "rss_mb_before": round(base / 1024, 1),
                "rss_mb_loaded": round(loaded / 1024, 1),
                "kb_per_doc": round((loaded - base) / args.docs, 1),
                "server_errors": fo.server_error_lines(system, [server]),
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
        note(f"memory/{system}: {out['kb_per_doc']} KB per document")
        return out
    finally:
        for g in gens:
            await g.finish()
        server.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    started = time.monotonic()
    report: dict[str, Any] = {
        "bench": "crdt",
        "machine": fo.machine_info(),
        "cohort": fo.cohort_revision(),
    }
    report["cohort"]["code"] = args.code
    report["peers"] = ensure_node()
    fo.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crdt-", dir=fo.CACHE_DIR))
    systems = [s for s in args.systems.split(",") if s]
    counts = [int(x) for x in args.clients.split(",") if x]
    report["config"] = {
        k: getattr(args, k)
        for k in ("clients", "seconds", "rate", "docs", "doc_kb", "generators", "no_deflate")
    }
    try:
        async with crdt_database() as database_url:
            hub = Hub(database_url, work, Path(args.code) if args.code else None)
            if "cohort" in systems:
                note("migrating ...")
                hub.migrate()
                cfg = fo.HubConfig(database_url, "", "", hub.secret_key, work)
                users = max([*counts, 2])
                accounts = await fo.seed(cfg, users, 0, users)
            else:
                accounts = None
            http = aiohttp.ClientSession()

            async def create_project(
                server: fo.ServerProcess, owner: int, name: str, group: bool = False
            ) -> str:
                assert accounts is not None
                body: dict[str, Any] = {"name": name}
                if group:
                    body["group_id"] = accounts.big_group
                async with http.post(
                    f"http://127.0.0.1:{server.port}/api/projects",
                    json=body,
                    headers={"Authorization": f"Bearer {accounts.tokens[owner]}"},
                ) as resp:
                    data = await resp.json()
                    if resp.status != 201:
                        raise BenchError(f"POST /api/projects: {resp.status} {data}")
                    return str(data["doc"])

            ctx = {
                "args": args,
                "hub": hub,
                "work": work,
                "create_project": create_project,
                "tokens": accounts.tokens if accounts else [],
            }
            try:
                for n in counts:
                    report[f"edit_{n}"] = {}
                    for system in systems:
                        try:
                            report[f"edit_{n}"][system] = await edit_run(ctx, system, n)
                        except BenchError as exc:
                            note(f"edit{n}/{system} failed: {exc}")
                            report[f"edit_{n}"][system] = {"error": str(exc)[:2000]}
                if args.docs:
                    report["memory"] = {}
                    for system in systems:
                        try:
                            report["memory"][system] = await memory_run(ctx, system)
                        except BenchError as exc:
                            note(f"memory/{system} failed: {exc}")
                            report["memory"][system] = {"error": str(exc)[:2000]}
            finally:
                await http.close()
    finally:
        if args.keep_logs:
            note(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["summary"] = summary(report, counts, systems)
    report["targets"] = (
        "p99 at 20 clients <= the better peer's; server CPU <= the better peer's; "
        "no divergence; memory <= 60 KB per document"
    )
    report["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    return report


def summary(report: dict[str, Any], counts: list[int], systems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in counts:
        for s in systems:
            r = report.get(f"edit_{n}", {}).get(s, {})
            out[f"edit_{n}_{s}"] = {
                k: r.get(k)
                for k in (
                    "server_cpu_s",
                    "generator_cpu_s",
                    "missing",
                    "diverged",
                    "server_rss_mb_peak",
                )
            }
            out[f"edit_{n}_{s}"].update(
                {
                    "p50_ms": r.get("latency_ms", {}).get("p50"),
                    "p99_ms": r.get("latency_ms", {}).get("p99"),
                }
            )
    for s in systems:
        out[f"memory_{s}_kb_per_doc"] = report.get("memory", {}).get(s, {}).get("kb_per_doc")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", default="20,50", help="clients per edit scenario")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=5, help="inserts per client per second")
    parser.add_argument("--docs", type=int, default=1000, help="memory scenario (0: skip)")
    parser.add_argument("--doc-kb", type=int, default=10)
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--code", help="run the hub (and seeding) from this source tree")
    parser.add_argument("--profile", action="store_true", help="py-spy the hub in edit scenarios")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="diagnostic: clients do not offer permessage-deflate",
    )
    args = parser.parse_args()
    if args.code:
        args.code = str(Path(args.code).resolve())
        if not (Path(args.code) / "hub" / "cli.py").is_file():
            parser.error(f"--code {args.code}: no hub/cli.py there")
        sys.path.insert(0, args.code)
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))
    fo.raise_fd_limit()
    try:
        report = asyncio.run(bench(args))
    except BenchError as exc:
        note(f"FAILED: {exc}")
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
