"""Project kernels, for real: a local Jupyter server, ipykernel under bubblewrap, runs streamed
on the gateway to every member, and the sandbox's limits (network, files, CPU, memory,
processes).

Kernels run as uid ``kernel_uid_base + project id``, and the process limit counts per uid:
these tests share one xdist group and a uid base of their own, so no other test's kernel runs
as the same uid at the same time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.clock import FakeClock
from hub.services import HUB
from hub.settings import Settings
from ide.jupyter import LocalJupyterServer, LocalServerConfig, RemoteJupyter
from ide.models import KernelLease, KernelRun
from ide.services import IDE
from tests.conftest import Account, log_in, make_settings, sign_up
from tests.hub.test_realtime import Socket, connect
from tests.ide.conftest import create_project, py_client

pytestmark = [
    pytest.mark.xdist_group("kernels"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.timeout(180),
]

SECRET_TEXT = "hub-secret-do-not-leak-0123456789"
THIS_FILE = Path(__file__).resolve()
REPO_SECRET = THIS_FILE.parents[2] / "var" / "secret"


def exists(path: str) -> bool:
    return Path(path).exists()


@pytest.fixture
def backend() -> str:
    # The database is incidental here; the kernels are what is tested.
    return "sqlite"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    (tmp_path / "secret").write_text(SECRET_TEXT)
    return make_settings(
        tmp_path,
        database_url,
        kernel_cpu_seconds=3,
        kernel_run_seconds=30,
        kernel_memory_bytes=768 << 20,
        kernel_processes=48,
        kernel_file_bytes=64 * 1024,
        kernel_output_bytes=20_000,
        kernel_idle_seconds=60,
        # Uids of their own: the fork bomb fills its uid's process count, and other tests'
        # kernels (other workers, same project ids) run as the default base + project id.
        kernel_uid_base=300_000,
    )


async def start_run(
    client: TestClient[Any, Any], account: Account, project: int, **body: Any
) -> dict[str, Any]:
    resp = await client.post(f"/api/projects/{project}/runs", json=body, headers=account.auth)
    assert resp.status == 202, await resp.text()
    run: dict[str, Any] = await resp.json()
    assert run["status"] == "queued"
    return run


async def finished(
    client: TestClient[Any, Any], account: Account, project: int, run_id: int, within: float = 60
) -> dict[str, Any]:
    """The run once it has ended (polled: the frames are tested separately)."""
    async with asyncio.timeout(within):
        while True:
            resp = await client.get(f"/api/projects/{project}/runs/{run_id}", headers=account.auth)
            assert resp.status == 200, await resp.text()
            run: dict[str, Any] = await resp.json()
            if run["status"] not in ("queued", "running"):
                return run
            await asyncio.sleep(0.1)


async def run_code(
    client: TestClient[Any, Any], account: Account, project: int, code: str, within: float = 60
) -> dict[str, Any]:
    run = await start_run(client, account, project, code=code)
    return await finished(client, account, project, run["id"], within)


def stdout(run: dict[str, Any]) -> str:
    return "".join(
        o["text"] for o in run["outputs"] if o["output_type"] == "stream" and o["name"] == "stdout"
    )


def everything(run: dict[str, Any]) -> str:
    return repr(run["outputs"])


async def wait_busy(client: TestClient[Any, Any], account: Account, project: int) -> None:
    async with asyncio.timeout(30):
        while True:
            kernel = await client.get(f"/api/projects/{project}/kernel", headers=account.auth)
            if (await kernel.json())["state"] == "busy":
                return
            await asyncio.sleep(0.05)


async def interrupt_stops_a_loop(
    client: TestClient[Any, Any], account: Account, project: int, *, prints: str, expected: str
) -> None:
    """A run looping forever, interrupted through ``client``, ends ``interrupted``; the run
    queued behind it then prints the kernel's variable ``prints``: ``expected``."""
    socket = await connect(client, account)
    assert (await socket.subscribe(f"project:{project}"))["op"] == "subscribed"
    code = "print('looping', flush=True)\nwhile True:\n    pass"
    loop = await start_run(client, account, project, code=code)

    def looping(frame: dict[str, Any]) -> bool:
        data = frame.get("data") or {}
        return bool(data.get("type") == "output" and data.get("run") == loop["id"])

    async with asyncio.timeout(30):  # its first output: the loop is running in the kernel
        await socket.recv_until(looping, wait=30)
    queued = await start_run(client, account, project, code=f"print({prints})")
    resp = await client.post(f"/api/projects/{project}/kernel/interrupt", headers=account.auth)
    assert resp.status == 200
    stopped = await finished(client, account, project, loop["id"])
    assert stopped["status"] == "interrupted", stopped
    after = await finished(client, account, project, queued["id"])
    assert (after["status"], stdout(after)) == ("ok", expected)
    await socket.ws.close()


async def still_works(client: TestClient[Any, Any], account: Account, project: int) -> None:
    run = await run_code(client, account, project, "print(6 * 7)")
    assert run["status"] == "ok", run
    assert stdout(run) == "42\n"


async def frames_until_done(socket: Socket, run_id: int, wait: float = 60) -> list[dict[str, Any]]:
    """The channel data received up to the run's final status."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while True:
            frame = await socket.recv(wait)
            if frame.get("op") != "message":
                continue
            data = frame["data"]
            seen.append(data)
            if (
                data["type"] == "run"
                and data["run"]["id"] == run_id
                and data["run"]["status"] not in ("queued", "running")
            ):
                return seen


async def test_a_run_streams_to_every_member(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    eve = await sign_up(client, "Eve")
    project = await create_project(client, ana, "Hello")
    pid = project["id"]
    invite = await client.post(
        f"/api/projects/{pid}/members", json={"user_id": ben.id, "role": "editor"}, headers=ana.auth
    )
    assert invite.status == 200
    # The file lives in the document: type it there, as the editor does.
    async with py_client(client, ana, project["doc"]) as editor:
        text = editor.text("main.py")
        with editor.doc.transaction():
            text += "import sys\nprint('hello from', __name__)\nprint('oops', file=sys.stderr)\n"
            text += "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))\n"
            text += "21 * 2\n"
        async with asyncio.timeout(10):
            while True:
                if "21 * 2" in (await client.app[IDE].kernels.files(pid)).get("main.py", ""):
                    break
                await asyncio.sleep(0.05)

    sockets = [await connect(client, ana), await connect(client, ben)]
    for socket in sockets:
        assert (await socket.subscribe(f"project:{pid}"))["op"] == "subscribed"
    # Strangers may not listen, and nobody publishes on the channel.
    stranger = await connect(client, eve)
    refused = await stranger.subscribe(f"project:{pid}")
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    await sockets[0].send(
        {"op": "publish", "channel": f"project:{pid}", "data": {"type": "run"}, "ref": 1}
    )
    refused = await sockets[0].recv()
    assert (refused["op"], refused["code"]) == ("error", "forbidden")

    run = await start_run(client, ben, pid, path="main.py")
    assert run["by"]["id"] == ben.id
    assert run["path"] == "main.py"
    for socket in sockets:
        frames = await frames_until_done(socket, run["id"])
        statuses = [f["run"]["status"] for f in frames if f["type"] == "run"]
        assert statuses[-1] == "ok", frames
        assert "running" in statuses
        outputs = [f["output"] for f in frames if f["type"] == "output"]
        text = "".join(o["text"] for o in outputs if o.get("name") == "stdout")
        assert "hello from __main__" in text
        assert any(o.get("name") == "stderr" and "oops" in o["text"] for o in outputs)
        assert any(o.get("data", {}).get("text/html") == "<b>bold</b>" for o in outputs)
    done = await finished(client, ana, pid, run["id"])
    assert done["status"] == "ok"
    assert done["started_at"]
    assert done["finished_at"]
    assert "hello from __main__" in stdout(done)
    # The stored outputs are what was streamed.
    assert [o["output_type"] for o in done["outputs"]].count("display_data") == 1

    # A selection runs in the same kernel: state is shared between runs.
    again = await run_code(client, ana, pid, "x = 5")
    assert again["status"] == "ok"
    result = await run_code(client, ben, pid, "x * 3")
    assert result["outputs"] == [
        {"output_type": "execute_result", "data": {"text/plain": "15"}, "execution_count": 3}
    ]
    error = await run_code(client, ben, pid, "1 / 0")
    assert error["status"] == "error"
    assert error["outputs"][-1]["ename"] == "ZeroDivisionError"
    assert "\x1b[" not in "".join(error["outputs"][-1]["traceback"])

    listed = await client.get(f"/api/projects/{pid}/runs?limit=3", headers=eve.auth)
    assert listed.status == 403
    listed = await client.get(f"/api/projects/{pid}/runs?limit=3", headers=ana.auth)
    assert [r["id"] for r in (await listed.json())["items"]] == [
        error["id"],
        result["id"],
        again["id"],
    ]
    kernel = await client.get(f"/api/projects/{pid}/kernel", headers=ben.auth)
    assert (await kernel.json())["state"] == "idle"
    for socket in [*sockets, stranger]:
        await socket.ws.close()


async def test_bad_runs_change_nothing(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    vic = await sign_up(client, "Vic")
    eve = await sign_up(client, "Eve")
    project = await create_project(client, ana)
    pid = project["id"]
    await client.post(
        f"/api/projects/{pid}/members", json={"user_id": vic.id, "role": "viewer"}, headers=ana.auth
    )
    url = f"/api/projects/{pid}/runs"
    for body in ({}, {"path": "main.py", "code": "1"}, {"code": ""}, {"path": "../etc/passwd"}):
        resp = await client.post(url, json=body, headers=ana.auth)
        assert resp.status == 422, (body, await resp.text())
        assert resp.content_type == "application/problem+json"
    missing = await client.post(url, json={"path": "nope.py"}, headers=ana.auth)
    assert missing.status == 404
    assert missing.content_type == "application/problem+json"
    assert (await client.post(url, json={"code": "1"}, headers=vic.auth)).status == 403
    assert (await client.post(url, json={"code": "1"}, headers=eve.auth)).status == 403
    nowhere = await client.post("/api/projects/999/runs", json={"code": "1"}, headers=ana.auth)
    assert nowhere.status == 404
    for action in ("interrupt", "restart"):
        resp = await client.post(f"/api/projects/{pid}/kernel/{action}", headers=vic.auth)
        assert resp.status == 403
    assert (await client.get(f"{url}/12345", headers=ana.auth)).status == 404
    # Viewers see the kernel and the runs; nothing was queued and no kernel started.
    kernel = await client.get(f"/api/projects/{pid}/kernel", headers=vic.auth)
    assert await kernel.json() == {"state": "none", "run": None, "queued": 0}
    runs = await client.get(url, headers=vic.auth)
    assert (await runs.json())["items"] == []


async def test_the_sandbox_holds(client: TestClient[Any, Any], settings: Settings) -> None:
    ana = await sign_up(client, "Ana")
    pid = (await create_project(client, ana))["id"]
    await still_works(client, ana, pid)

    # No network: not even the database on this machine.
    net = await run_code(
        client, ana, pid, "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=3)"
    )
    assert net["status"] == "error"
    assert net["outputs"][-1]["ename"] in ("ConnectionRefusedError", "OSError", "TimeoutError")

    # The hub's files are out of sight.
    secret = settings.data_dir.resolve() / "secret"
    visible_on_host = [secret, THIS_FILE, settings.kernels_root.resolve() / "jupyter-server.log"]
    for path in [*visible_on_host, REPO_SECRET]:
        read = await run_code(client, ana, pid, f"print(open({str(path)!r}).read())")
        assert read["status"] == "error", read
        assert read["outputs"][-1]["ename"] in ("FileNotFoundError", "PermissionError")
        assert SECRET_TEXT not in everything(read)
    env = await run_code(client, ana, pid, "import os; print(sorted(os.environ))")
    assert "JUPYTER_TOKEN" not in stdout(env)
    assert "COHORT_SECRET_KEY" not in stdout(env)

    # Writable: the working directory and /tmp; nothing else.
    for target in ("/usr/evil.txt", "/etc/evil.txt", str(Path(__file__).parent / "evil.txt")):
        wrote = await run_code(client, ana, pid, f"open({target!r}, 'w').write('x')")
        assert wrote["status"] == "error", wrote
        assert wrote["outputs"][-1]["ename"] in (
            "PermissionError",
            "OSError",
            "FileNotFoundError",
        )
        assert not exists(target)
    local = await run_code(
        client, ana, pid, "open('notes.txt', 'w').write('kept'); print(open('notes.txt').read())"
    )
    assert stdout(local) == "kept\n"
    work = settings.kernels_root / "work" / f"project-{pid}"
    assert (work / "notes.txt").read_text() == "kept"
    assert (work / "main.py").exists()  # the document's files, written before each run
    # File size limit: the write fails, the file stops at the limit.
    big = await run_code(client, ana, pid, "open('big.bin', 'wb').write(b'x' * 200_000)")
    assert big["status"] == "error"
    assert (work / "big.bin").stat().st_size <= 64 * 1024

    # A memory bomb: MemoryError (address space limit), the kernel and the hub carry on.
    hog = "hog = []\nwhile True:\n    hog.append(bytearray(50 << 20))"
    bomb = await run_code(client, ana, pid, hog)
    assert bomb["status"] in ("limit", "error"), bomb
    await still_works(client, ana, pid)

    # A fork bomb: the process limit stops it; its leftovers are killed after the run.
    fork = await run_code(client, ana, pid, "import os\nwhile True:\n    os.fork()")
    assert fork["status"] in ("error", "limit"), fork
    await still_works(client, ana, pid)
    listing = "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    count = await run_code(client, ana, pid, listing)
    assert len(eval(stdout(count))) == 2, stdout(count)  # bwrap's init and the kernel

    # A flood of output is cut at the cap, with a marker.
    flood = await run_code(client, ana, pid, "for i in range(5000):\n    print('line', i)")
    assert flood["status"] == "ok"
    assert flood["truncated"] is True
    assert "output truncated" in flood["outputs"][-1]["text"]
    assert sum(len(o.get("text", "")) for o in flood["outputs"]) < 25_000
    await still_works(client, ana, pid)


async def test_infinite_loops_end(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    pid = (await create_project(client, ana))["id"]
    await still_works(client, ana, pid)
    await run_code(client, ana, pid, "kept = 'before'")

    # Interrupt: the run ends "interrupted", the kernel keeps its variables.
    await interrupt_stops_a_loop(client, ana, pid, prints="kept", expected="before\n")

    # The kernel ignores SIGINT until it begins executing a run's code, so an interrupt that
    # reaches it earlier is lost: the hub sends it again once the kernel says it began. Held
    # here so that the interrupt comes first: the code's request leaves once it was posted.
    kernels = client.app[IDE].kernels
    posted = asyncio.Event()
    send = kernels._send

    async def after_the_interrupt(pk: Any, request: Any, code: str) -> str:
        if "sleep(60)" in code:
            await posted.wait()
        return await send(pk, request, code)

    kernels._send = after_the_interrupt
    try:
        sleeper = await start_run(client, ana, pid, code="import time; time.sleep(60)")
        await wait_busy(client, ana, pid)
        resp = await client.post(f"/api/projects/{pid}/kernel/interrupt", headers=ana.auth)
        assert resp.status == 200
        posted.set()
        stopped = await finished(client, ana, pid, sleeper["id"], within=20)
        assert stopped["status"] == "interrupted", stopped
    finally:
        kernels._send = send

    # The CPU limit (3 s a run): the kernel is killed and replaced; the next run works.
    spin = await run_code(client, ana, pid, "while True:\n    pass", within=60)
    assert spin["status"] == "limit", spin
    await still_works(client, ana, pid)

    # Wall time: a run that sleeps is interrupted (status "limit"); one that ignores the
    # interrupt loses its kernel.
    kernels = client.app[IDE].kernels
    kernels.tuning = dataclasses.replace(kernels.tuning, run_seconds=2, interrupt_grace=2)
    nap = await run_code(client, ana, pid, "import time\ntime.sleep(100)")
    assert nap["status"] == "limit", nap
    assert "longer than 2 s" in nap["outputs"][-1]["text"]
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(100)"
    deaf = await run_code(client, ana, pid, stubborn)
    assert deaf["status"] == "limit", deaf
    kernels.tuning = dataclasses.replace(kernels.tuning, run_seconds=30, interrupt_grace=5)
    await still_works(client, ana, pid)

    # Restart, here during a run: the run ends "interrupted", variables are gone.
    await run_code(client, ana, pid, "kept = 'again'")
    busy = await start_run(client, ana, pid, code="while True:\n    pass")
    await wait_busy(client, ana, pid)
    resp = await client.post(f"/api/projects/{pid}/kernel/restart", headers=ana.auth)
    assert resp.status == 200
    assert (await resp.json())["state"] in ("busy", "idle")
    restarted = await finished(client, ana, pid, busy["id"])
    assert restarted["status"] == "interrupted", restarted
    gone = await run_code(client, ana, pid, "print(kept)")
    assert gone["status"] == "error"
    assert gone["outputs"][-1]["ename"] == "NameError"


async def test_idle_kernels_are_culled(client: TestClient[Any, Any], clock: FakeClock) -> None:
    ana = await sign_up(client, "Ana")
    pid = (await create_project(client, ana))["id"]
    await still_works(client, ana, pid)
    kernels = client.app[IDE].kernels
    assert await kernels.cull() == []
    # The run's end is stored before its worker resumes and marks the kernel idle: until it
    # has, a minute more of idleness is not yet a minute since the run ended.
    async with asyncio.timeout(10):
        while not (culled := await kernels.cull()):
            clock.advance(61)
            await asyncio.sleep(0.01)
    assert culled == [pid]
    state = await (await client.get(f"/api/projects/{pid}/kernel", headers=ana.auth)).json()
    assert state["state"] == "none"
    await still_works(client, ana, pid)


async def test_a_hub_back_on_the_broker_sends_the_kernel_state_again(
    client: TestClient[Any, Any],
) -> None:
    """Frames the project channel carried while the hub's broker connection was down are
    gone: once it is back (the broker's reconnect hook), the hub's members get the kernel's
    state as it stands."""
    ana = await sign_up(client, "Ana")
    pid = (await create_project(client, ana))["id"]
    socket = await connect(client, ana)
    assert (await socket.subscribe(f"project:{pid}"))["op"] == "subscribed"
    await client.app[HUB].gateway.catch_up()
    frames = await socket.recv_until(lambda f: f.get("op") == "message")
    assert frames[-1]["channel"] == f"project:{pid}"
    assert frames[-1]["data"] == {
        "type": "kernel",
        "kernel": {"state": "none", "run": None, "queued": 0},
    }


async def test_a_remote_jupyter_server(
    aiohttp_client: Any, tmp_path: Path, database_url: str, fast_hashing: Any
) -> None:
    """COHORT_KERNEL_GATEWAY_URL: the hub starts no server of its own and speaks the same REST
    and WebSocket API to the one it is given (here a Jupyter server started for the test)."""
    server = LocalJupyterServer(
        LocalServerConfig(kernels_dir=tmp_path / "remote", uid_base=300_000)
    )
    endpoint = await server.endpoint()
    try:
        settings = make_settings(
            tmp_path / "hub",
            database_url,
            kernel_gateway_url=endpoint.base_url,
            kernel_gateway_token=endpoint.token,
            kernel_name="cohort-python",
        )
        client = await aiohttp_client(create_app(settings, hashing=fast_hashing))
        assert isinstance(client.app[IDE].kernels.host, RemoteJupyter)
        ana = await sign_up(client, "Ana")
        pid = (await create_project(client, ana))["id"]
        await still_works(client, ana, pid)
        await client.close()
        # The hub shut its kernel down on the way out; the server is not the hub's to stop.
        async with (
            aiohttp.ClientSession(headers=endpoint.headers) as http,
            http.get(endpoint.base_url + "/api/kernels") as resp,
        ):
            assert resp.status == 200
            assert await resp.json() == []
    finally:
        await server.close()


# One kernel per project across hub processes ------------------------------------------------

HUBS = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])


@dataclasses.dataclass
class HubPair:
    one: TestClient[Any, Any]
    two: TestClient[Any, Any]
    ana: Account  # logged in on both
    pid: int  # Ana's project


@pytest.fixture
async def hub_pair(
    aiohttp_client: Any,
    settings: Settings,
    redis_url: str,
    clock: FakeClock,
    fast_hashing: Any,
    tmp_path: Path,
) -> HubPair:
    """Two hub apps on one database and one Redis, each with its own local Jupyter server.

    Their lease rounds (every third of ``lease_seconds``) never come during a test: what the
    hubs do, the messages between them do, or the test (calling ``adopt``).
    """
    prefix = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
    clients = []
    for name in ("one", "two"):
        hub_settings = settings.model_copy(
            update={
                "redis_url": redis_url,
                "redis_prefix": prefix,
                "kernels_dir": tmp_path / name / "kernels",
            }
        )
        app = create_app(hub_settings, clock=clock, hashing=fast_hashing)
        kernels = app[IDE].kernels
        kernels.tuning = dataclasses.replace(kernels.tuning, lease_seconds=3600)
        clients.append(await aiohttp_client(app))
    one, two = clients
    ana = await sign_up(one, "Ana")
    await log_in(two, ana)
    return HubPair(one, two, ana, (await create_project(one, ana))["id"])


async def left_by_a_dead_hub(
    client: TestClient[Any, Any], account: Account, project: int, clock: FakeClock
) -> tuple[int, int]:
    """What a hub that died mid-run leaves: its lease (not expired yet), a ``running`` run and
    a ``queued`` one. Returns the two runs' ids."""
    db = client.app[HUB].db
    lease_seconds = client.app[IDE].kernels.tuning.lease_seconds
    async with db.transaction() as s:
        stale = KernelRun(
            project_id=project,
            user_id=account.id,
            code="while True:\n    pass",
            status="running",
            outputs=[{"output_type": "stream", "name": "stdout", "text": "started\n"}],
            output_bytes=0,
            truncated=False,
            created_at=clock.now(),
            started_at=clock.now(),
        )
        waiting = KernelRun(
            project_id=project,
            user_id=account.id,
            code="print('picked up')",
            status="queued",
            outputs=[],
            output_bytes=0,
            truncated=False,
            created_at=clock.now(),
        )
        s.add_all([stale, waiting])
        await s.flush()
        s.add(
            KernelLease(
                project_id=project,
                hub_id=uuid.uuid4().hex,  # no hub has this id any more
                expires_at=clock.now() + timedelta(seconds=lease_seconds),
                state="busy",
                run_id=stale.id,
            )
        )
    return stale.id, waiting.id


@HUBS
@pytest.mark.redis
async def test_one_kernel_for_a_project_across_hubs(hub_pair: HubPair) -> None:
    one, two, ana, pid = hub_pair.one, hub_pair.two, hub_pair.ana, hub_pair.pid
    first, second = one.app[IDE].kernels, two.app[IDE].kernels

    # A variable set through hub one is there for a run posted to hub two: one kernel.
    assert (await run_code(one, ana, pid, "x = 41"))["status"] == "ok"
    assert await second.holder(pid) == first.hub_id
    read = await run_code(two, ana, pid, "print(x + 1)")
    assert (read["status"], stdout(read)) == ("ok", "42\n")
    assert await second.holder(pid) == first.hub_id
    state = await (await two.get(f"/api/projects/{pid}/kernel", headers=ana.auth)).json()
    assert state == {"state": "idle", "run": None, "queued": 0}

    # Interrupt through hub two stops the run on hub one's kernel; the queue goes on.
    await interrupt_stops_a_loop(two, ana, pid, prints="x", expected="41\n")

    # Restart through hub two: the one kernel's variables are gone, for both hubs.
    resp = await two.post(f"/api/projects/{pid}/kernel/restart", headers=ana.auth)
    assert resp.status == 200
    gone = await run_code(one, ana, pid, "print(x)")
    assert gone["status"] == "error"
    assert gone["outputs"][-1]["ename"] == "NameError"
    assert await first.holder(pid) == first.hub_id


@HUBS
@pytest.mark.redis
async def test_a_hub_that_stops_hands_its_queue_over(hub_pair: HubPair) -> None:
    one, two, ana, pid = hub_pair.one, hub_pair.two, hub_pair.ana, hub_pair.pid
    loop = await start_run(one, ana, pid, code="while True:\n    pass")
    await wait_busy(two, ana, pid)
    waiting = await start_run(two, ana, pid, code="print('after')")
    await one.close()
    # The run hub one was running ended with it; hub two took the kernel and ran the queue.
    stopped = await finished(two, ana, pid, loop["id"])
    assert stopped["status"] == "error"
    assert "[the hub stopped]" in everything(stopped)
    after = await finished(two, ana, pid, waiting["id"])
    assert (after["status"], stdout(after)) == ("ok", "after\n")
    assert await two.app[IDE].kernels.holder(pid) == two.app[IDE].kernels.hub_id


@HUBS
@pytest.mark.redis
async def test_a_dead_hubs_kernel_is_taken_over_once_its_lease_expires(
    hub_pair: HubPair, clock: FakeClock
) -> None:
    one, two, ana, pid = hub_pair.one, hub_pair.two, hub_pair.ana, hub_pair.pid
    kernels = two.app[IDE].kernels
    stale, waiting = await left_by_a_dead_hub(two, ana, pid, clock)

    # While the lease lasts its hub may only be slow: nothing is taken from it.
    assert await kernels.adopt() == []
    state = await (await two.get(f"/api/projects/{pid}/kernel", headers=ana.auth)).json()
    assert state == {"state": "busy", "run": stale, "queued": 1}
    later = await start_run(one, ana, pid, code="print('later')")  # told to the dead hub
    assert (await finished_or_none(two, ana, pid, stale)) is None

    # The dead hub never renews: once the lease expires the next hub takes the kernel over.
    clock.advance(kernels.tuning.lease_seconds + 1)
    await log_in(two, ana)  # a new access token: the old one expired meanwhile
    assert await kernels.adopt() == [pid]
    assert await kernels.holder(pid) == kernels.hub_id
    failed = await finished(two, ana, pid, stale)
    assert failed["status"] == "error"
    assert "the hub running this kernel stopped" in failed["outputs"][-1]["text"]
    assert failed["outputs"][0]["text"] == "started\n"  # what it printed is kept
    ran = await finished(two, ana, pid, waiting)
    assert (ran["status"], stdout(ran)) == ("ok", "picked up\n")
    after = await finished(two, ana, pid, later["id"])
    assert (after["status"], stdout(after)) == ("ok", "later\n")
    assert ran["finished_at"] <= after["started_at"]  # in the order they were posted


async def test_a_single_hub_finishes_what_its_last_run_left(
    aiohttp_client: Any, settings: Settings, clock: FakeClock, fast_hashing: Any
) -> None:
    """The embedded default (no Redis): on startup the hub is the only one, so a lease not its
    own was left by its previous process, expired or not."""
    first = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    ana = await sign_up(first, "Ana")
    pid = (await create_project(first, ana))["id"]
    stale, waiting = await left_by_a_dead_hub(first, ana, pid, clock)
    await first.close()

    client = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    await log_in(client, ana)
    failed = await finished(client, ana, pid, stale)
    assert failed["status"] == "error"
    assert "the hub running this kernel stopped" in failed["outputs"][-1]["text"]
    ran = await finished(client, ana, pid, waiting)
    assert (ran["status"], stdout(ran)) == ("ok", "picked up\n")
    kernels = client.app[IDE].kernels
    assert await kernels.holder(pid) == kernels.hub_id


async def finished_or_none(
    client: TestClient[Any, Any], account: Account, project: int, run_id: int
) -> dict[str, Any] | None:
    """The run if it has ended, else None (read once)."""
    resp = await client.get(f"/api/projects/{project}/runs/{run_id}", headers=account.auth)
    run: dict[str, Any] = await resp.json()
    return run if run["status"] not in ("queued", "running") else None
