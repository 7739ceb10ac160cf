"""Builds the media services from settings and plugs them into a hub app or a worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web

from hub.api import Api
from hub.services import Hub
from media.handlers import MEDIA, MediaServices, add_media_routes, register_routes
from media.jobs import BullMQJobQueue, InProcessJobQueue, JobQueue, RetryPolicy
from media.manager import MediaConfig, VideoManager, VideoNotifier
from media.playback import Entitlement, OwnerOrAdmin, PlaybackSigner
from media.progress import MemoryProgressStore, ProgressStore, RedisProgressStore
from media.storage import LocalStorage, Storage
from media.tus import TusUploads

log = logging.getLogger(__name__)
EXPIRE_UPLOADS_EVERY = 3600.0


def build_storage(hub: Hub) -> Storage:
    settings = hub.settings
    if settings.storage == "cloudinary":
        from media.cloudinary_storage import CloudinaryStorage

        assert settings.cloudinary_url is not None
        return CloudinaryStorage(settings.cloudinary_url, settings.redis_prefix)
    return LocalStorage(settings.media_root)


def build_media(hub: Hub, *, entitlement: Entitlement | None = None) -> MediaServices:
    settings = hub.settings
    policy = RetryPolicy(settings.job_attempts, settings.job_backoff_seconds)
    queue: JobQueue
    progress: ProgressStore
    if settings.redis_url and hub.redis is not None:
        queue = BullMQJobQueue(
            settings.redis_url, settings.redis_prefix, policy, settings.job_lock_seconds
        )
        progress = RedisProgressStore(hub.redis, settings.redis_prefix)
    else:
        queue = InProcessJobQueue(policy)
        progress = MemoryProgressStore()
    temp_dir = settings.data_dir / "tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    videos = VideoManager(
        db=hub.db,
        storage=build_storage(hub),
        queue=queue,
        progress=progress,
        broker=hub.broker,
        signer=PlaybackSigner(settings.signing_key(), settings.playback_url_ttl, hub.clock),
        entitlement=entitlement or OwnerOrAdmin(),
        clock=hub.clock,
        notifier=_notifier(hub),
        config=MediaConfig(
            work_dir=settings.data_dir / "work",
            preset=settings.transcode_preset,
            max_upload_bytes=settings.max_upload_bytes,
            part_seconds=settings.transcode_part_seconds,
        ),
    )
    uploads = TusUploads(
        db=hub.db,
        videos=videos,
        clock=hub.clock,
        directory=settings.data_dir / "uploads",
        max_bytes=settings.max_upload_bytes,
        expiry=timedelta(hours=settings.upload_expiry_hours),
    )
    return MediaServices(videos, uploads, temp_dir, settings.max_upload_bytes)


def _notifier(hub: Hub) -> VideoNotifier:
    """Video outcomes as the uploader's notifications (``video.ready``, ``video.failed``)."""

    async def notify(user_id: int, kind: str, data: dict[str, Any]) -> None:
        await hub.notifications.notify(user_id, kind, data=data)

    return notify


def install(app: web.Application, hub: Hub, api: Api, services: MediaServices) -> None:
    """Routes, and the background work of a hub: in-process transcoding when there is no
    Redis (with Redis, `cohort worker` processes do it), upload expiry."""
    app[MEDIA] = services
    register_routes(api)
    add_media_routes(app)
    in_process = hub.settings.redis_url is None

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        expiry = asyncio.create_task(_expire_uploads(services, stop), name="expire-uploads")
        listener = (
            await start_worker(services, hub.settings.worker_concurrency) if in_process else None
        )
        try:
            yield
        finally:
            stop.set()
            await stop_worker(services, listener)
            await expiry

    app.cleanup_ctx.append(lifecycle)


async def start_worker(services: MediaServices, concurrency: int) -> asyncio.Task[None]:
    """Consume transcode jobs in this process; returns the cancellation listener's task."""
    videos = services.videos
    listener = asyncio.create_task(videos.listen_for_cancellations(), name="media-cancel")
    await videos.queue.start_workers(videos.process, videos.fail, concurrency)
    if isinstance(videos.queue, InProcessJobQueue):
        resumed = await videos.resume_unfinished()
        if resumed:
            log.info("resumed unfinished transcodes", extra={"count": resumed})
    return listener


async def stop_worker(services: MediaServices, listener: asyncio.Task[None] | None) -> None:
    """Interrupt running transcodes (their videos are picked up again later), let the
    workers wind down, close the queue."""
    services.videos.interrupt_all()
    await services.videos.queue.close()
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _expire_uploads(services: MediaServices, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await services.uploads.expire()
        except Exception:
            log.exception("expiring uploads failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EXPIRE_UPLOADS_EVERY)
