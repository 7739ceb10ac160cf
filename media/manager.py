"""The rules of video: who uploads, the job that turns an upload into a stream, publishing
while encoding, progress, deletion, and authorized playback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.broker import Broker
from hub.clock import Clock
from hub.db import Database
from hub.errors import FieldError, Forbidden, NotFound, ValidationFailed
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.realtime.store import publish_event
from media.jobs import Job, JobInterrupted, JobQueue, PermanentJobError
from media.models import Video
from media.playback import Entitlement, PlaybackSigner
from media.progress import Progress, ProgressStore
from media.storage import PARTS_PREFIX, PROCESSED_PREFIX, RAW_PREFIX, ObjectMissing, Storage
from media.transcode import (
    PartResult,
    Probe,
    TranscodeCancelled,
    TranscodeFailed,
    TranscodeOptions,
    TranscodeResult,
    Watermark,
    plan_parts,
    playlist_maps,
    playlist_segments,
    probe,
    stitch,
    transcode,
    transcode_audio,
    transcode_part,
)

log = logging.getLogger(__name__)

CANCEL_CHANNEL = "media:cancel"
PUBLISH_INTERVAL = 0.5
PROGRESS_INTERVAL = 0.5
WATERMARK_POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
_MEDIA_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)?(/[A-Za-z0-9_-]+\.[A-Za-z0-9]+)?$")
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}


@dataclass(frozen=True, slots=True)
class MediaConfig:
    work_dir: Path
    preset: str
    max_upload_bytes: int
    part_seconds: int = 0  # longer videos are encoded in parts of this length (0: never)


@dataclass(frozen=True, slots=True)
class UploadChoices:
    title: str
    filename: str
    watermark_text: str | None = None
    watermark_position: str = "bottom-right"
    watermark_opacity: float = 0.6
    watermark_image: Path | None = None


@dataclass(frozen=True, slots=True)
class VideoView:
    video: Video
    progress: float
    stage: str
    playback_url: str | None
    poster_url: str | None
    storyboard_url: str | None
    download_url: str | None


@dataclass(frozen=True, slots=True)
class MediaObject:
    """What to answer a playback request with: a local file, bytes, or a redirect."""

    content_type: str
    path: Path | None = None
    data: bytes | None = None
    redirect: str | None = None
    immutable: bool = False


def choices_from_fields(
    fields: dict[str, str], filename: str, watermark_image: Path | None = None
) -> UploadChoices:
    """Per-upload choices from form fields or tus metadata (the same names in both).

    Raises:
        ValidationFailed: an opacity that is not a number.
    """
    try:
        opacity = float(fields.get("watermark_opacity") or "0.6")
    except ValueError:
        raise ValidationFailed(
            [FieldError("watermark_opacity", "must be a number between 0.05 and 1")]
        ) from None
    return UploadChoices(
        title=fields.get("title") or Path(filename).stem or "Untitled video",
        filename=filename,
        watermark_text=fields.get("watermark_text") or None,
        watermark_position=fields.get("watermark_position") or "bottom-right",
        watermark_opacity=opacity,
        watermark_image=watermark_image,
    )


def validate_choices(choices: UploadChoices) -> None:
    """Raises ValidationFailed for any bad per-upload choice."""
    errors = []
    if not choices.title.strip() or len(choices.title) > 200:
        errors.append(FieldError("title", "must be 1 to 200 characters"))
    if choices.watermark_position not in WATERMARK_POSITIONS:
        errors.append(
            FieldError("watermark_position", f"must be one of {', '.join(WATERMARK_POSITIONS)}")
        )
    if not 0.05 <= choices.watermark_opacity <= 1:
        errors.append(FieldError("watermark_opacity", "must be between 0.05 and 1"))
    if choices.watermark_text is not None and len(choices.watermark_text) > 80:
        errors.append(FieldError("watermark_text", "must be at most 80 characters"))
    if errors:
        raise ValidationFailed(errors)


# Stores a notification for a user (hub.notifications): (user id, type, data).
VideoNotifier = Callable[[int, str, dict[str, Any]], Awaitable[object]]
# Outcomes the uploader is told about in their notifications, beyond the live events.
NOTIFIED_OUTCOMES = ("video.ready", "video.failed")


class VideoManager:
    def __init__(
        self,
        *,
        db: Database,
        storage: Storage,
        queue: JobQueue,
        progress: ProgressStore,
        broker: Broker,
        signer: PlaybackSigner,
        entitlement: Entitlement,
        clock: Clock,
        config: MediaConfig,
        notifier: VideoNotifier | None = None,
    ) -> None:
        self._db = db
        self._storage = storage
        self.queue = queue
        self._progress = progress
        self._broker = broker
        self._signer = signer
        self._entitlement = entitlement
        self._clock = clock
        self._config = config
        self._notifier = notifier
        self._running: dict[str, set[threading.Event]] = {}

    # Uploading -----------------------------------------------------------------------------

    @staticmethod
    def require_uploader(principal: Principal) -> None:
        if not (principal.user.is_teacher or principal.user.is_admin):
            raise Forbidden("Only verified teachers and admins can upload videos.")

    async def create(self, principal: Principal, source: Path, choices: UploadChoices) -> Video:
        """Store an uploaded file as a new video and queue its transcode.

        Raises:
            Forbidden: not a teacher or admin.
            ValidationFailed: empty file or bad choices.
        """
        self.require_uploader(principal)
        validate_choices(choices)
        size = (await asyncio.to_thread(source.stat)).st_size
        if size == 0:
            raise ValidationFailed([FieldError("file", "the file is empty")])
        video_id = uuid.uuid4().hex
        source_key = f"{RAW_PREFIX}{video_id}/source"
        await self._storage.put_file(source_key, source, "application/octet-stream")
        options: dict[str, Any] = {}
        if choices.watermark_text or choices.watermark_image:
            options["watermark"] = {
                "text": choices.watermark_text,
                "position": choices.watermark_position,
                "opacity": choices.watermark_opacity,
            }
            if choices.watermark_image is not None:
                image_key = f"{RAW_PREFIX}{video_id}/watermark.png"
                await self._storage.put_file(image_key, choices.watermark_image, "image/png")
                options["watermark"]["image_key"] = image_key
        now = self._clock.now()
        video = Video(
            id=video_id,
            owner_id=principal.user.id,
            title=choices.title.strip(),
            filename=choices.filename[:255],
            status="queued",
            stage="queued",
            source_key=source_key,
            source_size=size,
            options=options,
            renditions=[],
            assets={},
            playable=False,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        async with self._db.transaction() as s:
            s.add(video)
        await self.queue.enqueue(Job(video_id))
        await self._notify(video, "video.queued")
        return video

    # Reading -------------------------------------------------------------------------------

    async def _load(self, video_id: str) -> Video | None:
        async with self._db.sessions() as s:
            return await s.get(Video, video_id)

    async def view(self, principal: Principal, video_id: str) -> VideoView:
        """Raises NotFound for a video the user may not see (its existence is not revealed)."""
        video = await self._load(video_id)
        if video is None or not await self._entitlement.can_watch(principal.user, video):
            raise NotFound("No video with this id.")
        return await self._view(principal.user, video)

    async def list_own(self, principal: Principal) -> list[VideoView]:
        async with self._db.sessions() as s:
            videos = list(
                await s.scalars(
                    select(Video)
                    .where(Video.owner_id == principal.user.id)
                    .order_by(Video.created_at.desc())
                )
            )
        return [await self._view(principal.user, v) for v in videos]

    async def _view(self, user: User, video: Video) -> VideoView:
        if video.status == "ready":
            percent, stage = 100.0, "done"
        elif video.status == "processing":
            live = await self._progress.get(video.id)
            percent, stage = (live.percent, live.stage) if live else (0.0, video.stage)
        else:
            percent, stage = 0.0, video.stage
        base = None
        if video.playable:
            base = f"/media/{self._signer.token(video.id, user.id)}/{video.id}"

        def asset(name: str) -> str | None:
            return f"{base}/{name}" if base and name in video.assets else None

        return VideoView(
            video=video,
            progress=round(percent, 1),
            stage=stage,
            playback_url=f"{base}/master.m3u8" if base else None,
            poster_url=asset("poster.jpg"),
            storyboard_url=asset("storyboard.vtt"),
            download_url=asset("download.mp4"),
        )

    # Deleting ------------------------------------------------------------------------------

    async def delete(self, principal: Principal, video_id: str) -> None:
        """Remove a video and its files; a running transcode is cancelled.

        Raises:
            NotFound: no such video, or not the owner (admins may delete any).
        """
        video = await self._load(video_id)
        if video is None or not (principal.user.is_admin or video.owner_id == principal.user.id):
            raise NotFound("No video with this id.")
        async with self._db.transaction() as s:
            stored = await s.get(Video, video_id)
            if stored is not None:
                await s.delete(stored)
        await self._broker.publish(CANCEL_CHANNEL, video_id.encode())
        await self._remove_files(video_id)
        await self._progress.clear(video_id)

    async def _remove_files(self, video_id: str) -> None:
        for prefix in (RAW_PREFIX, PROCESSED_PREFIX, PARTS_PREFIX):
            await self._storage.delete_prefix(f"{prefix}{video_id}/")

    def interrupt_all(self) -> None:
        """Stop every transcode running in this process (shutdown); their videos stay
        unfinished and are picked up again."""
        for events in self._running.values():
            for event in events:
                event.set()

    async def listen_for_cancellations(self) -> None:
        """Runs for the life of a worker: cancels jobs of videos deleted on any hub."""
        async with await self._broker.subscribe(CANCEL_CHANNEL) as subscription:
            async for message in subscription:
                for event in self._running.get(message.data.decode(), ()):
                    event.set()

    async def resume_unfinished(self) -> int:
        """Queue again every video left queued or processing (the in-process queue is not
        durable: a restart must not strand jobs)."""
        async with self._db.sessions() as s:
            ids = list(
                await s.scalars(select(Video.id).where(Video.status.in_(("queued", "processing"))))
            )
        for video_id in ids:
            await self.queue.enqueue(Job(video_id))
        return len(ids)

    # Processing (the jobs) -----------------------------------------------------------------

    async def process(self, job: Job, attempt: int) -> None:
        """Run one job. Safe to run again after a crash: work starts over from the raw upload
        (and, for a video in parts, from the parts not yet done).

        Raises:
            PermanentJobError: the input can never work (no video, corrupt, ...).
        """
        video = await self._load(job.video_id)
        if video is None or video.status in ("ready", "failed"):
            return
        work = self._config.work_dir / job.key.replace(":", "-")
        shutil.rmtree(work, ignore_errors=True)
        out_dir = work / "out"
        out_dir.mkdir(parents=True)
        cancelled = threading.Event()
        self._running.setdefault(video.id, set()).add(cancelled)
        try:
            if job.kind == "video":
                await self._run_whole(video, attempt, work, out_dir, cancelled)
            elif job.kind == "part":
                await self._run_part(video, job.part, work, out_dir, cancelled)
            elif job.kind == "audio":
                await self._run_audio(video, work, out_dir, cancelled)
            else:
                await self._run_stitch(video, out_dir)
        except TranscodeCancelled:
            if await self._load(video.id) is not None:
                # Not deleted: this worker is stopping. The job runs again later.
                log.info("transcode interrupted by shutdown", extra={"job": job.key})
                raise JobInterrupted(job.key) from None
            log.info("transcode cancelled", extra={"job": job.key})
            await self._remove_files(video.id)
            await self._notify(video, "video.cancelled")
        except TranscodeFailed as exc:
            raise PermanentJobError(str(exc)) from None
        except Exception as exc:
            log.warning(
                "transcode attempt failed",
                extra={"job": job.key, "attempt": attempt, "error": repr(exc)},
                exc_info=True,
            )
            if job.kind == "video":
                await self._update(video.id, status="queued", stage="retrying")
            raise
        finally:
            running = self._running.get(video.id)
            if running is not None:
                running.discard(cancelled)
                if not running:
                    del self._running[video.id]
            shutil.rmtree(work, ignore_errors=True)

    async def _run_whole(
        self, video: Video, attempt: int, work: Path, out_dir: Path, cancelled: threading.Event
    ) -> None:
        if "parts" in video.options:
            await self._resume_parts(video)
            return
        await self._update(video.id, status="processing", stage="probing", attempts=attempt)
        await self._progress.set(video.id, Progress(0.0, "probing"))
        source = await self._local_copy(video.source_key, work / "source")
        facts = await asyncio.to_thread(probe, source)
        part_seconds = self._config.part_seconds
        if part_seconds and facts.duration > part_seconds * 1.5:
            await self._split(video, facts)
            return
        options = await self._transcode_options(video, work)
        publisher = _Publisher(self, video, out_dir)
        reporter = _ProgressReporter(self, video)
        result = await self._in_thread(
            transcode, source, out_dir, options, reporter, cancelled, publisher=publisher
        )
        if await self._load(video.id) is None:
            raise TranscodeCancelled()
        await publisher.publish_all(final=True)
        await self._finish(video, result, publisher.assets)

    async def _in_thread(
        self,
        fn: Any,
        source: Path,
        out_dir: Path,
        options: TranscodeOptions,
        reporter: _ProgressReporter,
        cancelled: threading.Event,
        *,
        publisher: _Publisher | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run an encoder function in a worker thread, with progress (and publishing)."""
        loop = asyncio.get_running_loop()
        # Stopped by an event, not cancelled: a task cancelled in the middle of a database
        # or storage call can leave a connection or an upload half done.
        stop = asyncio.Event()
        tasks = [asyncio.create_task(reporter.run(stop), name="progress")]
        if publisher is not None:
            tasks.append(asyncio.create_task(publisher.run(stop), name="publish"))
        try:
            return await asyncio.to_thread(
                fn,
                source,
                out_dir,
                options,
                on_progress=lambda p, s: _call_soon(loop, reporter.update, p, s),
                cancelled=cancelled,
                **kwargs,
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    # Long videos: parts on several workers, audio once, then stitched ----------------------

    async def _split(self, video: Video, facts: Probe) -> None:
        plan = plan_parts(facts.duration, self._config.part_seconds)
        state = {
            "probe": {
                "duration": facts.duration,
                "width": facts.width,
                "height": facts.height,
                "fps": str(facts.fps),
                "has_audio": facts.has_audio,
                "video_codec": facts.video_codec,
            },
            "plan": [[start, end] for start, end in plan],
            "done": {},
        }
        stage = f"encoding {len(plan)} parts"
        updated = await self._update(
            video.id, stage=stage, options={**video.options, "parts": state}
        )
        await self._progress.set(video.id, Progress(0.0, stage))
        log.info("video split into parts", extra={"video_id": video.id, "parts": len(plan)})
        if updated is not None:
            await self._resume_parts(updated)

    async def _resume_parts(self, video: Video) -> None:
        """Queue whatever of a split video is not done yet (or the stitch, if all is)."""
        state = video.options["parts"]
        done = state["done"]
        missing = [
            Job(video.id, "part", n) for n in range(len(state["plan"])) if str(n) not in done
        ]
        if "audio" not in done:
            missing.append(Job(video.id, "audio"))
        for job in missing or [Job(video.id, "stitch")]:
            await self.queue.enqueue(job)

    async def _run_part(
        self, video: Video, index: int, work: Path, out_dir: Path, cancelled: threading.Event
    ) -> None:
        state = video.options["parts"]
        start, end = state["plan"][index]
        total = len(state["plan"]) + 1
        already = len(state["done"])
        source = await self._local_copy(video.source_key, work / "source")
        options = await self._transcode_options(video, work)
        stage = f"encoding part {index + 1} of {total - 1}"
        reporter = _ProgressReporter(
            self, video, scale=lambda p: (already + p / 100) / total * 100, stage=stage
        )
        result: PartResult = await self._in_thread(
            transcode_part,
            source,
            out_dir,
            options,
            reporter,
            cancelled,
            index=index,
            start=start,
            end=end,
        )
        files = await self._upload_part_files(video.id, out_dir)
        manifest = {
            "start": result.start,
            "end": result.end,
            "frames": result.frames,
            "thumbs": result.thumbs,
            "files": files,
        }
        await self._record_part(video, str(index), manifest)

    async def _run_audio(
        self, video: Video, work: Path, out_dir: Path, cancelled: threading.Event
    ) -> None:
        source = await self._local_copy(video.source_key, work / "source")
        has_audio = await asyncio.to_thread(transcode_audio, source, out_dir, cancelled=cancelled)
        files = await self._upload_part_files(video.id, out_dir)
        await self._record_part(video, "audio", {"has_audio": has_audio, "files": files})

    async def _upload_part_files(self, video_id: str, out_dir: Path) -> list[str]:
        files = sorted(
            str(p.relative_to(out_dir))
            for p in await asyncio.to_thread(lambda: list(out_dir.rglob("*")))
            if p.is_file() and not p.name.startswith(".")
        )
        for relative in files:
            await self._storage.put_file(
                f"{PARTS_PREFIX}{video_id}/{relative}",
                out_dir / relative,
                CONTENT_TYPES.get(Path(relative).suffix, "application/octet-stream"),
            )
        return files

    async def _record_part(self, video: Video, name: str, manifest: dict[str, Any]) -> None:
        """Mark one piece done; whoever completes the set queues the stitch (exactly one
        does: the row is locked while deciding)."""
        async with self._db.transaction() as s:
            stored = await s.get(Video, video.id, with_for_update=True)
            if stored is None:
                raise TranscodeCancelled()
            state = dict(stored.options["parts"])
            state["done"] = {**state["done"], name: manifest}
            stored.options = {**stored.options, "parts": state}
            stored.updated_at = self._clock.now()
            complete = len(state["done"]) == len(state["plan"]) + 1
        percent = len(state["done"]) / (len(state["plan"]) + 1) * 100
        await self.report(video, Progress(min(99.0, percent), "encoding parts"))
        if complete:
            await self.queue.enqueue(Job(video.id, "stitch"))

    async def _run_stitch(self, video: Video, out_dir: Path) -> None:
        state = video.options["parts"]
        facts_data = dict(state["probe"])
        facts = Probe(**{**facts_data, "fps": Fraction(facts_data["fps"])})
        await self.report(video, Progress(99.0, "stitching"))
        for manifest in state["done"].values():
            for relative in manifest["files"]:
                target = out_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                await self._storage.fetch_to(f"{PARTS_PREFIX}{video.id}/{relative}", target)
        parts = [
            PartResult(int(name), m["start"], m["end"], m["frames"], m["thumbs"])
            for name, m in state["done"].items()
            if name != "audio"
        ]
        has_audio = bool(state["done"]["audio"]["has_audio"])
        result = await asyncio.to_thread(stitch, out_dir, facts, parts, has_audio=has_audio)
        if await self._load(video.id) is None:
            raise TranscodeCancelled()
        publisher = _Publisher(self, video, out_dir)
        await publisher.publish_all(final=True)
        await self._finish(video, result, publisher.assets, drop_parts=True)

    async def fail(self, job: Job, reason: str) -> None:
        """A job failed for good: the video fails, saying why."""
        video = await self._update(job.video_id, status="failed", stage="failed", error=reason)
        await self._progress.clear(job.video_id)
        if video is not None:
            await self._notify(video, "video.failed", error=reason)

    async def _finish(
        self,
        video: Video,
        result: TranscodeResult,
        assets: dict[str, str],
        *,
        drop_parts: bool = False,
    ) -> None:
        facts = result.probe
        renditions = [
            {
                "name": r.name,
                "width": r.width,
                "height": r.height,
                "bandwidth": r.bandwidth,
                "average_bandwidth": r.average_bandwidth,
            }
            for r in result.renditions
        ]
        updated = await self._update(
            video.id,
            status="ready",
            stage="done",
            error=None,
            duration=round(facts.duration, 3),
            width=facts.width,
            height=facts.height,
            renditions=renditions,
            playable=True,
            assets=assets,
        )
        await self._progress.clear(video.id)
        if drop_parts:
            # Before the owner hears it is ready: by then nothing of the work is left over.
            await self._storage.delete_prefix(f"{PARTS_PREFIX}{video.id}/")
        if updated is not None:
            await self._notify(updated, "video.ready")

    async def _local_copy(self, key: str, target: Path) -> Path:
        local = await self._storage.local_path(key)
        if local is not None and await asyncio.to_thread(local.exists):
            return local
        await self._storage.fetch_to(key, target)
        return target

    async def _transcode_options(self, video: Video, work: Path) -> TranscodeOptions:
        mark = video.options.get("watermark")
        watermark = None
        if mark:
            image = None
            if mark.get("image_key"):
                image = await self._local_copy(mark["image_key"], work / "watermark.png")
            watermark = Watermark(
                image=image,
                text=mark.get("text"),
                position=mark.get("position", "bottom-right"),
                opacity=float(mark.get("opacity", 0.6)),
            )
        return TranscodeOptions(preset=self._config.preset, watermark=watermark)

    async def _update(self, video_id: str, **values: Any) -> Video | None:
        async with self._db.transaction() as s:
            video = await s.get(Video, video_id)
            if video is None:
                return None
            for name, value in values.items():
                setattr(video, name, value)
            video.updated_at = self._clock.now()
        return video

    async def _notify(self, video: Video, kind: str, **extra: Any) -> None:
        event = {"type": kind, "video_id": video.id, "status": video.status, **extra}
        await publish_event(self._broker, f"user:{video.owner_id}", event)
        if self._notifier is not None and kind in NOTIFIED_OUTCOMES:
            data = {"video_id": video.id, "title": video.title, **extra}
            try:
                await self._notifier(video.owner_id, kind, data)
            except Exception:
                # The video's state is committed; a lost notification must not fail the job.
                log.exception("could not store a video notification", extra={"video_id": video.id})

    # Playback ------------------------------------------------------------------------------

    async def poster(self, video_id: str) -> bytes | None:
        """The poster image of a playable video, for covers shown to everyone."""
        video = await self._load(video_id)
        if video is None or not video.playable:
            return None
        try:
            return await self._storage.get_bytes(f"{PROCESSED_PREFIX}{video_id}/poster.jpg")
        except ObjectMissing:
            return None

    async def open_media(self, token: str, video_id: str, path: str) -> MediaObject:
        """Authorize a playback request and say what to send.

        Raises:
            Forbidden: bad, foreign or expired token.
            NotFound: no such video or file.
        """
        self._signer.verify(token, video_id)
        if not _MEDIA_PATH.match(path):
            raise NotFound("No such media file.")
        video = await self._load(video_id)
        if video is None or not video.playable:
            raise NotFound("No such media file.")
        suffix = Path(path).suffix
        content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
        key = f"{PROCESSED_PREFIX}{video_id}/{path}"
        immutable = suffix in (".m4s", ".jpg", ".mp4") or path.endswith("init.mp4")
        local = await self._storage.local_path(key)
        if local is not None:
            if not await asyncio.to_thread(local.is_file):
                raise NotFound("No such media file.")
            return MediaObject(content_type, path=local, immutable=immutable)
        if suffix in (".m3u8", ".vtt"):
            return MediaObject(content_type, data=await self._storage.get_bytes(key))
        url = video.assets.get(path)
        if not url:
            raise NotFound("No such media file.")
        return MediaObject(content_type, redirect=url, immutable=immutable)

    # Used by the publisher -----------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        return self._storage

    async def mark_playable(self, video: Video) -> None:
        updated = await self._update(video.id, playable=True)
        if updated is not None:
            await self._notify(updated, "video.playable")

    async def report(self, video: Video, progress: Progress) -> None:
        await self._progress.set(video.id, progress)
        await self._update(video.id, stage=progress.stage)
        event = {
            "type": "video.progress",
            "video_id": video.id,
            "progress": round(progress.percent, 1),
            "stage": progress.stage,
        }
        await publish_event(self._broker, f"user:{video.owner_id}", event)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    loop.call_soon_threadsafe(fn, *args)


class _ProgressReporter:
    """Carries progress from the encoding thread to the store and the owner's channel, at
    most every PROGRESS_INTERVAL and at least once a second while anything changes."""

    def __init__(
        self,
        manager: VideoManager,
        video: Video,
        *,
        scale: Callable[[float], float] = lambda p: p,
        stage: str | None = None,
    ) -> None:
        self._manager = manager
        self._video = video
        self._scale = scale
        self._stage = stage
        self._latest = Progress(scale(0.0), stage or "transcoding")
        self._sent: Progress | None = None

    def update(self, percent: float, stage: str) -> None:
        self._latest = Progress(self._scale(percent), self._stage or stage)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self._latest != self._sent:
                self._sent = self._latest
                await self._manager.report(self._video, self._latest)
            await _wait(stop, PROGRESS_INTERVAL)


class _Publisher:
    """Copies finished segments and the playlists that list them to storage while the encoder
    runs, so the video plays long before the job ends. Segments go first, then the playlist
    naming them, then (once every rendition has a segment) the master playlist."""

    def __init__(self, manager: VideoManager, video: Video, out_dir: Path) -> None:
        self._manager = manager
        self._video = video
        self._out = out_dir
        self._prefix = f"{PROCESSED_PREFIX}{video.id}/"
        self._uploaded: dict[str, str | None] = {}  # relative name -> delivery URL
        self._master_published = False
        self.assets: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.publish_all(final=False)
            await _wait(stop, PUBLISH_INTERVAL)

    async def publish_all(self, *, final: bool) -> None:
        storage = self._manager.storage
        ready = []
        for directory in sorted(p for p in self._out.iterdir() if p.is_dir()):
            ready.append(await self._publish_rendition(directory))
        master = self._out / "master.m3u8"
        if master.exists() and ready and all(ready) and (final or not self._master_published):
            data = await asyncio.to_thread(master.read_bytes)
            await storage.put_bytes(self._prefix + "master.m3u8", data, CONTENT_TYPES[".m3u8"])
            if not self._master_published:
                self._master_published = True
                await self._manager.mark_playable(self._video)
        if final:
            for name in ("poster.jpg", "storyboard.jpg", "storyboard.vtt", "download.mp4"):
                path = self._out / name
                if path.exists():
                    stored = await storage.put_file(
                        self._prefix + name, path, CONTENT_TYPES[path.suffix]
                    )
                    self.assets[name] = stored.url or ""

    async def _publish_rendition(self, directory: Path) -> bool:
        # Only the rendition playlists are published here: a part's own playlists and files
        # travel through the parts area instead.
        playlist = directory / "index.m3u8"
        if not playlist.exists():
            return False
        text = await asyncio.to_thread(playlist.read_text, encoding="utf-8")
        segments = playlist_segments(text)
        if not segments:
            return False
        storage = self._manager.storage
        names = playlist_maps(text) + [uri for _duration, uri in segments]
        for name in names:
            relative = f"{directory.name}/{name}"
            if relative in self._uploaded:
                continue
            content_type = CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
            stored = await storage.put_file(self._prefix + relative, directory / name, content_type)
            self._uploaded[relative] = stored.url
        # Remote storage: point the playlist at where each object really is.
        for name in names:
            url = self._uploaded.get(f"{directory.name}/{name}")
            if url:
                text = text.replace(f'URI="{name}"', f'URI="{url}"')
                text = re.sub(rf"(?m)^{re.escape(name)}$", url, text)
        await storage.put_bytes(
            f"{self._prefix}{directory.name}/index.m3u8", text.encode(), CONTENT_TYPES[".m3u8"]
        )
        return True
