"""Demo content for the embedded default (``make run``): a published course by the demo teacher
with short generated video lessons (the first a free preview) and a text lesson.

The videos go through the real pipeline (upload → transcode → HLS); the course is published as
soon as they are ready, by a background task, so the hub starts at once."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import av
from aiohttp import web
from av.audio.resampler import AudioResampler
from av.video.frame import PictureType
from sqlalchemy import select

from catalog.courses import LessonDraft
from catalog.models import Course, Lesson
from catalog.services import CATALOG
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.services import HUB
from media.handlers import MEDIA
from media.manager import UploadChoices
from media.models import Video

log = logging.getLogger(__name__)

DEMO_SLUG = "learn-together-a-first-course"
COURSE = {
    "title": "Learn Together: a first course",
    "subtitle": "A short tour of Cohort with three tiny video lessons",
    "description": (
        "This demo course shows how a course works on Cohort: watch the free preview, buy the "
        "course with the coins every new account gets, watch the lessons to the end and see "
        "your progress. The teacher sees the sale and the views on the course dashboard."
    ),
    "tags": ["demo", "learning", "video"],
    "level": "beginner",
    "language": "en",
    "price": 30,
}
# (title, lavfi pattern, seconds, tone Hz, free preview)
VIDEO_LESSONS = (
    ("Welcome to Cohort", "testsrc2", 16, 440, True),
    ("Watching together", "smptebars", 20, 523, False),
    ("Patterns everywhere", "testsrc", 12, 659, False),
)
TEXT_LESSON = (
    "Notes: how progress works",
    "# How progress works\n\nA video lesson is complete once you have watched 90% of it; "
    "skipping to the end does not count. Text lessons like this one are complete when you "
    "mark them done.\n",
)


def make_lesson_clip(
    path: Path, pattern: str, seconds: int, tone: int, size: str = "640x360"
) -> Path:
    """A generated picture (FFmpeg's lavfi sources) with a tone, as an uploaded MP4 would be."""
    width, height = (int(n) for n in size.split("x"))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        audio = out.add_stream("aac", rate=48_000)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast"}
        audio.layout = "stereo"
        source = f"{pattern}=size={size}:rate=30:duration={seconds}"
        with av.open(source, format="lavfi") as pictures:
            for frame in pictures.decode(video=0):
                frame.pict_type = PictureType.NONE
                out.mux(video.encode(frame))
        out.mux(video.encode(None))
        resampler = AudioResampler(format="fltp", layout="stereo", rate=48_000)
        with av.open(
            f"sine=frequency={tone}:duration={seconds}:sample_rate=48000", format="lavfi"
        ) as sound:
            for chunk in sound.decode(audio=0):
                for resampled in resampler.resample(chunk):
                    out.mux(audio.encode(resampled))
        out.mux(audio.encode(None))
    return path


async def seed_demo_course(
    app: web.Application, teacher_email: str
) -> tuple[int, asyncio.Task[None] | None]:
    """Create the demo course if it does not exist yet, and publish it once its videos are
    ready: returns the course id and the task that publishes it (None when it already is).
    Safe to run on every start; the caller cancels the task if the hub stops first."""
    hub = app[HUB]
    catalog = app[CATALOG]
    async with hub.db.sessions() as s:
        teacher = await s.scalar(select(User).where(User.email == teacher_email))
        existing = await s.scalar(select(Course).where(Course.slug == DEMO_SLUG))
    if teacher is None:
        raise RuntimeError(f"demo teacher {teacher_email} does not exist")
    principal = Principal(user=teacher, session_id="demo-seed")
    if existing is not None:
        course_id = existing.id
        if existing.status == "published":
            return course_id, None
    else:
        course = await catalog.courses.create(principal, COURSE)
        course_id = course.id
        # The slug is derived from the title; pin it so later starts find the course.
        async with hub.db.transaction() as s:
            row = await s.get(Course, course_id)
            assert row is not None
            row.slug = DEMO_SLUG
        section = await catalog.courses.add_section(principal, course_id, "Getting started")
        videos = app[MEDIA].videos
        with tempfile.TemporaryDirectory(dir=hub.settings.data_dir / "tmp") as scratch:
            for title, pattern, seconds, tone, preview in VIDEO_LESSONS:
                clip = await asyncio.to_thread(
                    make_lesson_clip, Path(scratch) / f"{pattern}.mp4", pattern, seconds, tone
                )
                video = await videos.create(
                    principal, clip, UploadChoices(title=title, filename=clip.name)
                )
                await catalog.courses.add_lesson(
                    principal,
                    section.id,
                    LessonDraft(title=title, kind="video", video_id=video.id, free_preview=preview),
                )
        await catalog.courses.add_lesson(
            principal,
            section.id,
            LessonDraft(title=TEXT_LESSON[0], kind="text", body=TEXT_LESSON[1]),
        )
        log.info("demo course created", extra={"course_id": course_id})
    task = asyncio.create_task(_publish_when_ready(app, principal, course_id))
    return course_id, task


async def _publish_when_ready(app: web.Application, principal: Principal, course_id: int) -> None:
    hub = app[HUB]
    while True:
        async with hub.db.sessions() as s:
            statuses = list(
                await s.scalars(
                    select(Video.status)
                    .join(Lesson, Lesson.video_id == Video.id)
                    .where(Lesson.course_id == course_id)
                )
            )
        if any(status == "failed" for status in statuses):
            log.error("a demo video failed to transcode; the demo course stays a draft")
            return
        if all(status == "ready" for status in statuses):
            await app[CATALOG].courses.publish(principal, course_id)
            log.info("demo course published", extra={"course_id": course_id})
            return
        await asyncio.sleep(0.5)
