"""Job queues: retries with backoff, failure with a reason, and BullMQ workers that die."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from hub.app import create_app
from hub.services import HUB
from media.jobs import (
    BullMQJobQueue,
    InProcessJobQueue,
    Job,
    JobQueue,
    PermanentJobError,
    RetryPolicy,
)
from tests.conftest import REDIS_URL, SECRET, Account, log_in, make_settings
from tests.media.clips import make_clip
from tests.media.conftest import next_event

pytestmark = pytest.mark.timeout(120)


class Recorder:
    """A job handler that fails a given number of times, then succeeds."""

    def __init__(self, failures: int, permanent: bool = False) -> None:
        self.failures = failures
        self.permanent = permanent
        self.attempts: list[tuple[str, int]] = []
        self.failed: list[tuple[str, str]] = []
        self.done = asyncio.Event()

    async def handle(self, job: Job, attempt: int) -> None:
        self.attempts.append((job.video_id, attempt))
        if len(self.attempts) <= self.failures:
            if self.permanent:
                raise PermanentJobError("the file has no video stream")
            raise RuntimeError(f"transient trouble #{attempt}")
        self.done.set()

    async def on_failure(self, job: Job, reason: str) -> None:
        self.failed.append((job.video_id, reason))
        self.done.set()


@pytest.fixture(params=["memory", pytest.param("bullmq", marks=pytest.mark.redis)])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[JobQueue]:
    policy = RetryPolicy(3, 0.01)
    if request.param == "memory":
        memory = InProcessJobQueue(policy)
        yield memory
        await memory.close()
        return
    prefix = f"cohort-test-{uuid.uuid4().hex}"
    bullmq = BullMQJobQueue(REDIS_URL, prefix, policy, lock_seconds=5)
    yield bullmq
    await bullmq.close()
    redis = Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_transient_failures_are_retried(queue: JobQueue) -> None:
    recorder = Recorder(failures=2)
    await queue.start_workers(recorder.handle, recorder.on_failure, 1)
    await queue.enqueue(Job("v1"))
    async with asyncio.timeout(20):
        await recorder.done.wait()
    assert recorder.attempts == [("v1", 1), ("v1", 2), ("v1", 3)]
    assert recorder.failed == []


async def test_three_failures_fail_the_job_with_the_reason(queue: JobQueue) -> None:
    recorder = Recorder(failures=10)
    await queue.start_workers(recorder.handle, recorder.on_failure, 1)
    await queue.enqueue(Job("v2"))
    async with asyncio.timeout(20):
        await recorder.done.wait()
    assert [a for _, a in recorder.attempts] == [1, 2, 3]
    assert recorder.failed == [("v2", "Processing failed: transient trouble #3")]


async def test_permanent_errors_are_not_retried(queue: JobQueue) -> None:
    recorder = Recorder(failures=10, permanent=True)
    await queue.start_workers(recorder.handle, recorder.on_failure, 1)
    await queue.enqueue(Job("v3"))
    async with asyncio.timeout(20):
        await recorder.done.wait()
    assert recorder.attempts == [("v3", 1)]
    assert recorder.failed == [("v3", "the file has no video stream")]


def test_backoff_doubles() -> None:
    policy = RetryPolicy(attempts=3, backoff_seconds=5)
    assert [policy.delay(n) for n in (1, 2, 3)] == [5, 10, 20]


@pytest.mark.redis
async def test_a_killed_worker_leaves_the_job_to_another(
    aiohttp_client: Any, tmp_path: Path, sqlite_template: Path, redis_url: str, fast_hashing: Any
) -> None:
    """`cohort worker` processes share a BullMQ queue; one is SIGKILLed mid-transcode and the
    job's lock lapses, so a second worker picks the job up and finishes it."""
    shutil.copy(sqlite_template, tmp_path / "cohort.db")
    prefix = f"cohort-test-{uuid.uuid4().hex}"
    env_settings = {
        "COHORT_DATA_DIR": str(tmp_path),
        "COHORT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cohort.db'}",
        "COHORT_REDIS_URL": redis_url,
        "COHORT_REDIS_PREFIX": prefix,
        "COHORT_SECRET_KEY": SECRET,
        "COHORT_TRANSCODE_PRESET": "ultrafast",
        "COHORT_JOB_LOCK_SECONDS": "2",
        "COHORT_JOB_BACKOFF_SECONDS": "0",
        "COHORT_LOG_FORMAT": "text",
    }
    settings = make_settings(
        tmp_path,
        env_settings["COHORT_DATABASE_URL"],
        redis_url=redis_url,
        redis_prefix=prefix,
        transcode_preset="ultrafast",
    )
    client = await aiohttp_client(create_app(settings, hashing=fast_hashing))
    hub = client.app[HUB]
    teacher = Account("tom@example.com", "teaching all day", "Tom")
    user = await hub.identity.ensure_account(
        teacher.email, teacher.password, "Tom", admin=False, teacher=True
    )
    await log_in(client, teacher)
    inbox = await hub.broker.subscribe(f"user:{user.id}")

    clip = make_clip(
        tmp_path / "long.mp4", width=1280, height=720, seconds=30, audio=False, pattern="color"
    )
    form = {"file": clip.open("rb")}
    resp = await client.post("/api/videos", data=form, headers=teacher.auth)
    form["file"].close()
    assert resp.status == 202
    video_id = (await resp.json())["id"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")} | env_settings
    workers = []

    def start_worker() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        workers.append(proc)
        return proc

    try:
        first = start_worker()
        # Wait until the first worker is well into the job, then kill it without warning.
        async with asyncio.timeout(60):
            while True:
                event = await next_event(inbox, "video.progress")
                if event["progress"] > 5:
                    break
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        start_worker()
        ready = await next_event(inbox, "video.ready", within=90)
        assert ready["video_id"] == video_id
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
    video = await (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).json()
    assert video["status"] == "ready"
    assert [r["name"] for r in video["renditions"]] == ["720p", "480p", "360p"]
    master = await client.get(video["playback_url"])
    assert master.status == 200
    await inbox.close()
