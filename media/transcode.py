"""Source video → HLS ladder, with PyAV: decode once, encode every rung.

Runs in a worker thread (every heavy call here is C code: FFmpeg's decoders, swscale and
libx264's own threads). Smaller rungs are scaled from a larger rung rather than from the
source (see ``_scale_sources``) with scalers kept for the whole pass, which is most of the
scaling work saved against a ``split`` filter graph; audio is encoded once into its own HLS
rendition group that every video rung shares. The HLS muxers
write EVENT playlists segment by segment, so a publisher can serve the video while it is still
being encoded; at the end they become VOD playlists.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.audio.resampler import AudioResampler
from av.container import InputContainer, OutputContainer
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw, ImageFont

from media.ladder import (
    AUDIO_CODECS,
    AUDIO_KBPS,
    AUDIO_RATE,
    GOP_SECONDS,
    SEGMENT_SECONDS,
    PlannedRung,
    even,
    plan_ladder,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
POSTER_MAX_WIDTH = 1280
THUMB_WIDTH = 160
STORYBOARD_COLUMNS = 10
MAX_THUMBS = 120


class TranscodeFailed(Exception):
    """The input cannot be turned into a video; the message is shown to the uploader."""


class TranscodeCancelled(Exception):
    """The job was cancelled (the video was deleted) while it ran."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """An overlay burned into every rung: an image file or a line of text."""

    image: Path | None = None
    text: str | None = None
    position: str = "bottom-right"  # top-left | top-right | bottom-left | bottom-right | center
    opacity: float = 0.6


@dataclass(frozen=True, slots=True)
class TranscodeOptions:
    preset: str = "veryfast"
    watermark: Watermark | None = None
    decoder_threads: int = 0  # 0: FFmpeg decides


@dataclass(frozen=True, slots=True)
class Probe:
    duration: float
    width: int
    height: int
    fps: Fraction
    has_audio: bool
    video_codec: str


@dataclass(frozen=True, slots=True)
class Rendition:
    name: str
    width: int
    height: int
    bandwidth: int  # peak bits per second of any segment, audio included (HLS BANDWIDTH)
    average_bandwidth: int
    codecs: str


@dataclass(frozen=True, slots=True)
class TranscodeResult:
    probe: Probe
    renditions: list[Rendition]
    has_audio: bool
    poster: str | None
    storyboard: str | None
    download: str | None
    frames: int


# Probing -----------------------------------------------------------------------------------


def probe(source: Path) -> Probe:
    """Read the container's facts.

    Raises:
        TranscodeFailed: not a media file, no video stream, or no duration.
    """
    try:
        with av.open(str(source)) as container:
            return _probe_open(container)
    except av.error.FFmpegError as exc:
        raise TranscodeFailed(f"Not a readable video file ({_ffmpeg_reason(exc)}).") from None


def _probe_open(container: InputContainer) -> Probe:
    if not container.streams.video:
        raise TranscodeFailed("The file has no video stream.")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise TranscodeFailed("The video stream has no picture size.")
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0 and container.duration:
        duration = container.duration / av.time_base
    if duration <= 0 or not math.isfinite(duration):
        raise TranscodeFailed("The video has a duration of zero.")
    rate = stream.average_rate or stream.guessed_rate or Fraction(30)
    fps = Fraction(rate).limit_denominator(1001)
    if fps <= 0 or fps > 240:
        fps = Fraction(30)
    return Probe(
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        has_audio=bool(container.streams.audio),
        video_codec=stream.codec_context.name,
    )


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# Outputs -----------------------------------------------------------------------------------


def _hls_options(directory: Path, prefix: str = "") -> dict[str, str]:
    # The muxer cuts a fragment at every keyframe (2 s); _Segmenter joins them into the
    # published segments.
    return {
        "hls_time": str(GOP_SECONDS),
        "hls_playlist_type": "event",
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": f"{prefix}init.mp4",
        "hls_segment_filename": str(directory / f"{prefix}frag_%05d.m4s"),
        # temp_file: a fragment appears under its name only once complete, so nothing ever
        # reads half of one.
        "hls_flags": "independent_segments+temp_file",
    }


class _Segmenter:
    """Publishes a rendition's segments from the muxer's 2 s fragments: the first fragment
    alone, so a new video plays after 2 s of encoding instead of 6, then three fragments
    (6 s) to a segment. A segment file is its fragments back to back (an fMP4 segment may hold
    several moof/mdat pairs), so this moves bytes, it does not re-encode. The playlist it
    writes (``index.m3u8``) only ever grows, as an EVENT playlist must, until ``final``."""

    def __init__(self, directory: Path, prefix: str, *, first_alone: bool) -> None:
        self.directory = directory
        self.prefix = prefix
        self.first_alone = first_alone
        self.raw = directory / f"{prefix}frags.m3u8"
        self.playlist = directory / f"{prefix}index.m3u8"
        self.segments: list[tuple[float, str]] = []
        self._consumed = 0
        self._seen: int | None = None

    def update(self, *, final: bool = False) -> None:
        try:
            stamp = self.raw.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if stamp == self._seen and not final:
            return
        self._seen = stamp
        fragments = playlist_segments(self.raw.read_text(encoding="utf-8"))
        grew = False
        while self._consumed < len(fragments):
            alone = self.first_alone and self._consumed == 0
            size = 1 if alone else SEGMENT_SECONDS // GOP_SECONDS
            group = fragments[self._consumed : self._consumed + size]
            if len(group) < size and not final:
                break
            name = f"{self.prefix}seg_{len(self.segments):05d}.m4s"
            tmp = self.directory / f".{name}.tmp"
            with tmp.open("wb") as out:
                for _duration, uri in group:
                    out.write((self.directory / uri).read_bytes())
            tmp.replace(self.directory / name)
            for _duration, uri in group:
                (self.directory / uri).unlink()
            self.segments.append((sum(d for d, _ in group), name))
            self._consumed += len(group)
            grew = True
        if grew or final:
            self._write(final)
        if final:
            self.raw.unlink(missing_ok=True)

    def _write(self, final: bool) -> None:
        longest = max([float(SEGMENT_SECONDS), *(d for d, _ in self.segments)])
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{math.ceil(longest - 1e-3)}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            f"#EXT-X-PLAYLIST-TYPE:{'VOD' if final else 'EVENT'}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            f'#EXT-X-MAP:URI="{self.prefix}init.mp4"',
        ]
        for duration, name in self.segments:
            lines.extend([f"#EXTINF:{duration:.6f},", name])
        if final:
            lines.append("#EXT-X-ENDLIST")
        tmp = self.directory / f".{self.playlist.name}.tmp"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(self.playlist)


@dataclass
class _VideoOutput:
    planned: PlannedRung
    directory: Path
    container: OutputContainer
    stream: Any
    segmenter: _Segmenter
    frames: int = 0


@dataclass
class _AudioOutput:
    directory: Path
    container: OutputContainer
    stream: Any
    resampler: AudioResampler
    segmenter: _Segmenter


def _open_video_output(
    planned: PlannedRung,
    out_dir: Path,
    fps: Fraction,
    time_base: Fraction,
    preset: str,
    prefix: str = "",
    *,
    first_alone: bool = True,
) -> _VideoOutput:
    directory = out_dir / planned.rung.name
    directory.mkdir(parents=True, exist_ok=True)
    container = av.open(
        str(directory / f"{prefix}frags.m3u8"),
        "w",
        format="hls",
        options=_hls_options(directory, prefix),
    )
    stream = container.add_stream("libx264", rate=fps)
    stream.width = planned.width
    stream.height = planned.height
    stream.pix_fmt = "yuv420p"
    stream.time_base = time_base
    stream.bit_rate = planned.rung.video_kbps * 1000
    gop = max(1, round(fps * GOP_SECONDS))
    stream.codec_context.gop_size = gop
    stream.codec_context.options = {
        "preset": preset,
        "profile": "high",
        "level": planned.rung.level,
        "maxrate": f"{planned.rung.maxrate_kbps}k",
        "bufsize": f"{planned.rung.bufsize_kbps}k",
        # scenecut=0 is what pins the GOP (x264 clamps keyint_min); with keyframes forced at
        # the same instants in every rung, segments align across the ladder.
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
    }
    # Frame threads: slice threading (PyAV's default) runs x264 ~20% slower.
    stream.codec_context.thread_type = "AUTO"
    segmenter = _Segmenter(directory, prefix, first_alone=first_alone)
    return _VideoOutput(planned, directory, container, stream, segmenter)


def _open_audio_output(out_dir: Path) -> _AudioOutput:
    directory = out_dir / "audio"
    directory.mkdir(parents=True, exist_ok=True)
    container = av.open(
        str(directory / "frags.m3u8"), "w", format="hls", options=_hls_options(directory)
    )
    stream = container.add_stream("aac", rate=AUDIO_RATE)
    stream.layout = "stereo"
    stream.bit_rate = AUDIO_KBPS * 1000
    resampler = AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    segmenter = _Segmenter(directory, "", first_alone=True)
    return _AudioOutput(directory, container, stream, resampler, segmenter)


# Watermark ---------------------------------------------------------------------------------


@dataclass
class _Overlay:
    """A watermark pre-converted to YUV planes and alpha at its place in the frame."""

    x: int
    y: int
    y_plane: np.ndarray
    u_plane: np.ndarray
    v_plane: np.ndarray
    alpha: np.ndarray  # 0..1, full resolution
    alpha_half: np.ndarray  # 0..1, chroma resolution


def _watermark_image(mark: Watermark, frame_width: int, frame_height: int) -> Image.Image:
    target_width = max(16, frame_width // 6)
    if mark.image is not None:
        try:
            image = Image.open(mark.image).convert("RGBA")
        except OSError as exc:
            raise TranscodeFailed(f"The watermark image cannot be read ({exc}).") from None
        scale = target_width / image.width
        return image.resize(
            (target_width, max(2, round(image.height * scale))), Image.Resampling.LANCZOS
        )
    text = (mark.text or "").strip()
    size = max(12, frame_height // 24)
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    pad = size // 3
    size_px = (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad)
    image = Image.new("RGBA", size_px, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    # White text with a dark outline reads on light and dark footage alike.
    draw.text(
        (pad - left, pad - top),
        text,
        font=font,
        fill=(255, 255, 255, 255),
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0, 255),
    )
    return image


def _prepare_overlay(mark: Watermark, frame_width: int, frame_height: int) -> _Overlay:
    image = _watermark_image(mark, frame_width, frame_height)
    # Even size and position: the chroma planes are half resolution.
    w = min(even(image.width), frame_width - (frame_width % 2))
    h = min(even(image.height), frame_height - (frame_height % 2))
    image = image.resize((w, h), Image.Resampling.LANCZOS) if (w, h) != image.size else image
    margin = even(max(8, frame_height // 40))
    horizontal, _, vertical = mark.position.partition("-")
    if mark.position == "center":
        x, y = (frame_width - w) // 2, (frame_height - h) // 2
    else:
        x = margin if vertical == "left" else frame_width - w - margin
        y = margin if horizontal == "top" else frame_height - h - margin
    x, y = max(0, x - x % 2), max(0, y - y % 2)
    rgba = np.asarray(image, dtype=np.float32)
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    # BT.709 limited range, as x264 receives HD video.
    yy = 16 + 0.1826 * r + 0.6142 * g + 0.0620 * b
    uu = 128 - 0.1006 * r - 0.3386 * g + 0.4392 * b
    vv = 128 + 0.4392 * r - 0.3989 * g - 0.0403 * b
    alpha = rgba[..., 3] / 255.0 * max(0.0, min(1.0, mark.opacity))
    return _Overlay(
        x=x,
        y=y,
        y_plane=yy,
        u_plane=uu.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)),
        v_plane=vv.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)),
        alpha=alpha,
        alpha_half=alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)),
    )


def _apply_overlay(frame: VideoFrame, overlay: _Overlay) -> VideoFrame:
    """Alpha-blend the overlay into a yuv420p frame; only its rectangle is touched."""
    width, height = frame.width, frame.height
    data = frame.to_ndarray()  # (height * 3 / 2, width) for yuv420p
    x, y = overlay.x, overlay.y
    luma = data[:height]
    chroma_u = data[height : height + height // 4].reshape(height // 2, width // 2)
    chroma_v = data[height + height // 4 :].reshape(height // 2, width // 2)

    def blend(plane: np.ndarray, top: int, left: int, src: np.ndarray, alpha: np.ndarray) -> None:
        region = plane[top : top + src.shape[0], left : left + src.shape[1]].astype(np.float32)
        plane[top : top + src.shape[0], left : left + src.shape[1]] = (
            region * (1 - alpha) + src * alpha
        ).astype(np.uint8)

    blend(luma, y, x, overlay.y_plane, overlay.alpha)
    blend(chroma_u, y // 2, x // 2, overlay.u_plane, overlay.alpha_half)
    blend(chroma_v, y // 2, x // 2, overlay.v_plane, overlay.alpha_half)
    out = VideoFrame.from_ndarray(data, format="yuv420p")
    out.pts = frame.pts
    out.time_base = frame.time_base
    return out


# Storyboard --------------------------------------------------------------------------------


@dataclass
class _Storyboard:
    interval: float
    thumb_width: int
    thumb_height: int
    thumbs: list[tuple[float, Image.Image]] = field(default_factory=list)
    next_at: float = 0.0
    _scaler: VideoReformatter = field(default_factory=VideoReformatter)

    def offer(self, t: float, frame: VideoFrame) -> None:
        if t + 1e-6 < self.next_at or len(self.thumbs) >= MAX_THUMBS:
            return
        image = self._scaler.reformat(
            frame, width=self.thumb_width, height=self.thumb_height, format="rgb24"
        ).to_image()  # type: ignore[no-untyped-call]
        self.thumbs.append((t, image))
        self.next_at = t + self.interval

    def write(self, directory: Path, duration: float) -> bool:
        if not self.thumbs:
            return False
        columns = min(STORYBOARD_COLUMNS, len(self.thumbs))
        rows = math.ceil(len(self.thumbs) / columns)
        sprite = Image.new("RGB", (columns * self.thumb_width, rows * self.thumb_height))
        cues = ["WEBVTT", ""]
        for index, (start, image) in enumerate(self.thumbs):
            x = (index % columns) * self.thumb_width
            y = (index // columns) * self.thumb_height
            sprite.paste(image, (x, y))
            end = self.thumbs[index + 1][0] if index + 1 < len(self.thumbs) else duration
            cues.append(f"{_vtt_time(start)} --> {_vtt_time(max(end, start + 0.001))}")
            cues.append(f"storyboard.jpg#xywh={x},{y},{self.thumb_width},{self.thumb_height}")
            cues.append("")
        sprite.save(directory / "storyboard.jpg", quality=70)
        (directory / "storyboard.vtt").write_text("\n".join(cues), encoding="utf-8")
        return True


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


# The pipeline ------------------------------------------------------------------------------


@dataclass
class _PassResult:
    frames: int
    first_time: Fraction | None  # exact time of the first frame encoded, from the source start
    decoded_until: float
    storyboard: _Storyboard
    outputs: list[_VideoOutput]
    audio: _AudioOutput | None


class _RungEncoder:
    """One rung's scaler and encoder on a thread of its own, fed through a short queue.

    The decoding thread hands each frame to the rungs that scale from it and goes on decoding;
    a rung forwards its scaled frame to the rungs scaled from it before encoding its own. Fed
    one after another from a single thread, the encoders waited on each other: while x264
    held the feeding thread for one rung (its frame threads all busy), the others' threads ran
    dry and the machine's cores sat partly idle. Every heavy call here (swscale, x264, the
    muxer) releases the GIL."""

    QUEUE_FRAMES = 4

    def __init__(
        self,
        output: _VideoOutput,
        time_base: Fraction,
        storyboard: _Storyboard | None,
        abort: threading.Event,
    ) -> None:
        self.output = output
        self.time_base = time_base
        self.storyboard = storyboard
        self.abort = abort
        self.children: list[_RungEncoder] = []
        self.scales = False
        self.error: BaseException | None = None
        self._finishing = False
        self._scaler = VideoReformatter()
        self._inbox: queue.Queue[tuple[VideoFrame, int, bool, float] | None] = queue.Queue(
            self.QUEUE_FRAMES
        )
        self._thread = threading.Thread(
            target=self._run, name=f"rung-{output.planned.rung.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def put(self, frame: VideoFrame, rel_pts: int, keyframe: bool, t: float) -> None:
        self._inbox.put((frame, rel_pts, keyframe, t))

    @property
    def running(self) -> bool:
        return not self._finishing

    def finish(self) -> None:
        """No more frames: flush the encoder (after the queued frames) and end the thread."""
        if not self._finishing:
            self._finishing = True
            self._inbox.put(None)

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        try:
            while (item := self._inbox.get()) is not None:
                if self.abort.is_set() or self.error is not None:
                    continue
                try:
                    self._encode(*item)
                except BaseException as exc:  # re-raised by the decoding thread
                    self.error = exc
                    self.abort.set()
            if self.error is None and not self.abort.is_set():
                try:
                    for out_packet in self.output.stream.encode(None):
                        self.output.container.mux(out_packet)
                except BaseException as exc:
                    self.error = exc
                    self.abort.set()
        finally:
            for child in self.children:
                child.finish()

    def _encode(self, base: VideoFrame, rel_pts: int, keyframe: bool, t: float) -> None:
        planned = self.output.planned
        current = base
        if self.scales:
            current = self._scaler.reformat(
                base,
                width=planned.width,
                height=planned.height,
                format="yuv420p",
                interpolation="BICUBIC",
                # The rungs already run in parallel; swscale's own slice threads would only
                # add hand-offs between threads.
                threads=1,
            )
            _set_timing(current, rel_pts, self.time_base, keyframe)
        # Children first: their scaling overlaps this rung's encoding. They only read the
        # pixels, which nothing writes once a frame is made.
        for child in self.children:
            child.put(current, rel_pts, keyframe, t)
        for out_packet in self.output.stream.encode(current):
            self.output.container.mux(out_packet)
        self.output.frames += 1
        self.output.segmenter.update()
        if self.storyboard is not None:
            self.storyboard.offer(t, current)


def _end_rungs(rungs: list[_RungEncoder], *, raise_error: bool = True) -> None:
    """Flush every rung (children after their source) and wait for all; re-raise the first
    rung's failure."""
    rungs[0].finish()
    for rung in rungs:
        rung.join()
    for rung in rungs:
        if rung.error is not None and raise_error:
            raise rung.error


def _set_timing(frame: VideoFrame, rel_pts: int, time_base: Fraction, keyframe: bool) -> None:
    frame.pts = rel_pts
    frame.time_base = time_base
    # Decoded frames keep the source's picture type and x264 would turn its I-frames into
    # keyframes: reset, except where we want one.
    frame.pict_type = PictureType.I if keyframe else PictureType.NONE


def _scale_sources(planned: list[PlannedRung]) -> list[int]:
    """Which frame each rung is scaled from: the rung of exactly twice its height when there is
    one (a clean 2:1 step), else the next larger rung; -1 for the top frame. Cheaper than
    scaling everything from the top, and within a fraction of a dB of it, unlike a plain
    chain of steps whose blur adds up (1080→720→480→360 cost 360p about 10 dB against the
    direct scale on lecture content)."""
    sources = []
    for n, rung in enumerate(planned):
        if n == 0:
            sources.append(-1)
            continue
        double = [i for i in range(n) if planned[i].height == 2 * rung.height]
        sources.append(double[0] if double else n - 1)
    return sources


def _open_source(source: Path) -> InputContainer:
    try:
        return av.open(str(source))
    except av.error.FFmpegError as exc:
        raise TranscodeFailed(f"Not a readable video file ({_ffmpeg_reason(exc)}).") from None


def _encode_pass(
    container: InputContainer,
    facts: Probe,
    out_dir: Path,
    options: TranscodeOptions,
    *,
    start: float,
    end: float | None,
    prefix: str,
    with_audio: bool,
    write_poster: bool,
    on_progress: ProgressCallback,
    cancelled: threading.Event,
) -> _PassResult:
    """Decode ``[start, end)`` of the video once and encode it into every rung (and the audio
    group when ``with_audio``). Times are the source's, counted from its start, so parts of one
    video encoded separately line up: same keyframe instants, same segment boundaries."""
    vstream = container.streams.video[0]
    vstream.thread_type = "AUTO"
    if options.decoder_threads:
        vstream.codec_context.thread_count = options.decoder_threads
    astream = container.streams.audio[0] if (with_audio and container.streams.audio) else None
    time_base = vstream.time_base or Fraction(1, 90_000)
    origin = vstream.start_time if vstream.start_time is not None else None
    planned = plan_ladder(facts.width, facts.height)
    videos = [
        _open_video_output(
            p, out_dir, facts.fps, time_base, options.preset, prefix, first_alone=start == 0
        )
        for p in planned
    ]
    audio = _open_audio_output(out_dir) if astream is not None else None
    largest, smallest = planned[0], planned[-1]
    overlay = (
        _prepare_overlay(options.watermark, largest.width, largest.height)
        if options.watermark
        else None
    )
    top_scaler = VideoReformatter()
    storyboard = _Storyboard(
        interval=max(2.0, facts.duration / 100),
        thumb_width=THUMB_WIDTH,
        thumb_height=even(THUMB_WIDTH * smallest.height / smallest.width),
        next_at=start,
    )
    # One thread per rung, scaler and encoder kept for the whole pass (a scaling context, and
    # its threads, made per frame cost more than the scaling itself). Rung 0 is the top frame
    # itself; each smaller rung is scaled from the rung `_scale_sources` names.
    abort = threading.Event()
    rungs = [
        _RungEncoder(output, time_base, storyboard if n == len(videos) - 1 else None, abort)
        for n, output in enumerate(videos)
    ]
    for n, source_rung in enumerate(_scale_sources(planned)):
        if n > 0:
            rungs[n].scales = True
            rungs[max(source_rung, 0)].children.append(rungs[n])
    poster_at = min(facts.duration * 0.1, 10.0) if write_poster else math.inf
    half_frame = 0.5 / float(facts.fps)
    next_keyframe = start
    span = (end if end is not None else facts.duration) - start
    frames, decode_errors = 0, 0
    first_time: Fraction | None = None
    decoded_until = start
    last_report = -1.0
    if start > 0:
        # Lands on the keyframe at or before `start`; frames before it are decoded and dropped.
        container.seek(int((start - 1) / time_base) + (origin or 0), stream=vstream)
    streams = [s for s in (vstream, astream) if s is not None]
    done = False
    for rung in rungs:
        rung.start()
    try:
        for packet in container.demux(*streams):
            if cancelled.is_set():
                raise TranscodeCancelled()
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                decode_errors += 1
                if decode_errors > 50 and frames == 0:
                    raise TranscodeFailed("The video data is corrupt.") from None
                continue
            for frame in decoded:
                if packet.stream is astream:
                    assert audio is not None
                    _encode_audio(audio, frame)
                    continue
                if done:
                    continue
                assert isinstance(frame, VideoFrame)
                if frame.pts is None:
                    continue
                if origin is None:
                    origin = frame.pts
                rel_pts = frame.pts - origin
                t = float(rel_pts * time_base)
                if t + half_frame < start:
                    continue
                if end is not None and t + half_frame >= end:
                    done = True
                    if astream is None:
                        break
                    continue
                top = frame
                if (top.width, top.height, top.format.name) != (
                    largest.width,
                    largest.height,
                    "yuv420p",
                ):
                    top = top_scaler.reformat(
                        frame, width=largest.width, height=largest.height, format="yuv420p"
                    )
                if overlay is not None:
                    top = _apply_overlay(top, overlay)
                keyframe = t + half_frame >= next_keyframe
                if keyframe:
                    next_keyframe += GOP_SECONDS
                if abort.is_set():
                    break
                _set_timing(top, rel_pts, time_base, keyframe)
                rungs[0].put(top, rel_pts, keyframe, t)
                if audio is not None:
                    audio.segmenter.update()
                if t + half_frame >= poster_at:
                    _write_poster(top, out_dir)
                    poster_at = math.inf
                if first_time is None:
                    first_time = Fraction(rel_pts) * time_base
                frames += 1
                decoded_until = t + 1 / float(facts.fps)
                if t - last_report >= 0.5:
                    on_progress(min(99.0, 100 * (t - start) / span), "transcoding")
                    last_report = t
            if (done and astream is None) or abort.is_set():
                break
        if frames == 0:
            raise TranscodeFailed("No video frame could be decoded.")
        _end_rungs(rungs)
        if audio is not None:
            _flush_audio(audio)
    finally:
        if rungs[0].running:  # failed or cancelled: stop the rungs, keep the first reason
            abort.set()
            _end_rungs(rungs, raise_error=False)
        for output in videos:
            output.container.close()
        if audio is not None:
            audio.container.close()
    for output in videos:
        output.segmenter.update(final=True)
    if audio is not None:
        audio.segmenter.update(final=True)
    return _PassResult(frames, first_time, decoded_until, storyboard, videos, audio)


def transcode(
    source: Path,
    out_dir: Path,
    options: TranscodeOptions,
    *,
    on_progress: ProgressCallback,
    cancelled: threading.Event,
) -> TranscodeResult:
    """Encode ``source`` into an HLS ladder under ``out_dir``, in one pass.

    Layout: ``<rung>/index.m3u8`` + ``init.mp4`` + ``seg_NNNNN.m4s`` per rung, ``audio/`` the
    same, ``master.m3u8`` (written at the start for early playback and again at the end),
    ``poster.jpg``, ``storyboard.jpg`` + ``storyboard.vtt``, ``download.mp4``.

    Raises:
        TranscodeFailed: unreadable, video-less, zero-length, truncated or undecodable input.
        TranscodeCancelled: ``cancelled`` was set.
    """
    facts = probe(source)
    on_progress(0.0, "transcoding")
    out_dir.mkdir(parents=True, exist_ok=True)
    planned = plan_ladder(facts.width, facts.height)
    write_master(out_dir, _nominal_renditions(planned), has_audio=facts.has_audio)
    with _open_source(source) as container:
        encoded = _encode_pass(
            container,
            facts,
            out_dir,
            options,
            start=0.0,
            end=None,
            prefix="",
            with_audio=True,
            write_poster=True,
            on_progress=on_progress,
            cancelled=cancelled,
        )
    _check_complete(encoded.decoded_until, 0.0, facts.duration)
    on_progress(99.0, "packaging")
    return _package(
        out_dir,
        facts,
        planned,
        encoded.storyboard,
        has_audio=encoded.audio is not None,
        frames=encoded.frames,
    )


def _package(
    out_dir: Path,
    facts: Probe,
    planned: list[PlannedRung],
    storyboard: _Storyboard,
    *,
    has_audio: bool,
    frames: int,
) -> TranscodeResult:
    """The finishing touches of a finished ladder: measured master, storyboard, download."""
    renditions = _renditions(out_dir, planned, has_audio=has_audio)
    write_master(out_dir, renditions, has_audio=has_audio)
    has_storyboard = storyboard.write(out_dir, facts.duration)
    download = _write_download(out_dir, renditions, has_audio=has_audio)
    return TranscodeResult(
        probe=facts,
        renditions=renditions,
        has_audio=has_audio,
        poster="poster.jpg" if (out_dir / "poster.jpg").exists() else None,
        storyboard="storyboard.vtt" if has_storyboard else None,
        download=download,
        frames=frames,
    )


def _check_complete(decoded_until: float, start: float, expected_end: float) -> None:
    if decoded_until < start + (expected_end - start) * 0.9 - 1:
        raise TranscodeFailed(
            f"The file is truncated: only {decoded_until:.1f} s of "
            f"{expected_end:.1f} s could be decoded."
        )


def _renditions(out_dir: Path, planned: list[PlannedRung], *, has_audio: bool) -> list[Rendition]:
    """Measured peak and average bandwidths of the finished rungs."""
    audio_peak, audio_avg = _measure(out_dir / "audio" / "index.m3u8") if has_audio else (0, 0)
    renditions = []
    for p in planned:
        directory = out_dir / p.rung.name
        peak, average = _measure(directory / "index.m3u8")
        init = next(iter(sorted(directory.glob("*init.mp4"))), None)
        renditions.append(
            Rendition(
                name=p.rung.name,
                width=p.width,
                height=p.height,
                bandwidth=peak + audio_peak,
                average_bandwidth=average + audio_avg,
                codecs=(_codecs_of(init) if init else None) or p.rung.codecs,
            )
        )
    return renditions


# Parts: long videos encoded by several workers ---------------------------------------------


@dataclass(frozen=True, slots=True)
class PartResult:
    index: int
    start: float
    end: float
    frames: int
    thumbs: list[float]  # times of the thumbnails in ``p<index>_thumbs.jpg``, left to right


def part_prefix(index: int) -> str:
    return f"p{index:03d}_"


def plan_parts(duration: float, part_seconds: float) -> list[tuple[float, float]]:
    """Cut points on the published segment boundaries (2 s, then every 6 s; all keyframes):
    [start, end) per part, so the stitched video has the segments a single pass makes."""
    step = max(SEGMENT_SECONDS, round(part_seconds / SEGMENT_SECONDS) * SEGMENT_SECONDS)
    first = GOP_SECONDS  # the first segment is one fragment long
    cuts = []
    start = 0.0
    while start < duration:
        end = min(duration, (first if start == 0 else start) + step)
        if duration - end < SEGMENT_SECONDS:  # no sliver of a last part
            end = duration
        cuts.append((start, end))
        start = end
    return cuts


def transcode_part(
    source: Path,
    out_dir: Path,
    options: TranscodeOptions,
    *,
    index: int,
    start: float,
    end: float,
    on_progress: ProgressCallback,
    cancelled: threading.Event,
) -> PartResult:
    """Encode the video of ``[start, end)`` into every rung as ``<rung>/p<index>_index.m3u8``
    with its own init section and segments (no audio: that is encoded once, by
    ``transcode_audio``). Part 0 also makes the poster."""
    facts = probe(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = part_prefix(index)
    with _open_source(source) as container:
        encoded = _encode_pass(
            container,
            facts,
            out_dir,
            options,
            start=start,
            end=end,
            prefix=prefix,
            with_audio=False,
            write_poster=index == 0,
            on_progress=on_progress,
            cancelled=cancelled,
        )
    _check_complete(encoded.decoded_until, start, end)
    for output in encoded.outputs:
        playlist = output.directory / f"{prefix}index.m3u8"
        # The MP4 muxer counts every output's decode time from zero (and records the part's
        # start in an edit list); stitched parts need times counted from the video's start.
        if encoded.first_time:
            timescale = _track_timescale(output.directory / f"{prefix}init.mp4")
            ticks = round(encoded.first_time * timescale)
            for _duration, uri in playlist_segments(playlist.read_text(encoding="utf-8")):
                _shift_fragments(output.directory / uri, ticks)
    thumbs = encoded.storyboard.thumbs
    if thumbs:
        board = encoded.storyboard
        strip = Image.new("RGB", (board.thumb_width * len(thumbs), board.thumb_height))
        for n, (_t, image) in enumerate(thumbs):
            strip.paste(image, (n * board.thumb_width, 0))
        strip.save(out_dir / f"{prefix}thumbs.jpg", quality=80)
    return PartResult(index, start, end, encoded.frames, [t for t, _ in thumbs])


def transcode_audio(source: Path, out_dir: Path, *, cancelled: threading.Event) -> bool:
    """Encode the whole audio track once into ``audio/``; False when there is none."""
    with _open_source(source) as container:
        if not container.streams.audio:
            return False
        astream = container.streams.audio[0]
        audio = _open_audio_output(out_dir)
        try:
            for packet in container.demux(astream):
                if cancelled.is_set():
                    raise TranscodeCancelled()
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    _encode_audio(audio, frame)
                audio.segmenter.update()
            _flush_audio(audio)
        finally:
            audio.container.close()
    audio.segmenter.update(final=True)
    return True


def stitch(
    out_dir: Path, facts: Probe, parts: list[PartResult], *, has_audio: bool
) -> TranscodeResult:
    """Join the parts' playlists into one VOD playlist per rung, then master, storyboard and
    download. ``out_dir`` holds every part's files and the audio rendition."""
    planned = plan_ladder(facts.width, facts.height)
    parts = sorted(parts, key=lambda p: p.index)
    for p in planned:
        directory = out_dir / p.rung.name
        lines: list[str] = []
        longest = 0.0
        first_config = _avc_config(directory / f"{part_prefix(parts[0].index)}init.mp4")
        for n, part in enumerate(parts):
            prefix = part_prefix(part.index)
            text = (directory / f"{prefix}index.m3u8").read_text()
            # Parts encoded with one configuration share the first part's init section: one
            # continuous fMP4 stream (segments carry absolute decode times), which every
            # player handles. Should a part differ, it gets its own, behind a discontinuity.
            if n == 0:
                lines.append(f'#EXT-X-MAP:URI="{prefix}init.mp4"')
            elif _avc_config(directory / f"{prefix}init.mp4") != first_config:
                lines.extend(["#EXT-X-DISCONTINUITY", f'#EXT-X-MAP:URI="{prefix}init.mp4"'])
            for duration, uri in playlist_segments(text):
                lines.extend([f"#EXTINF:{duration:.6f},", uri])
                longest = max(longest, duration)
        header = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{math.ceil(longest)}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        (directory / "index.m3u8").write_text("\n".join([*header, *lines, "#EXT-X-ENDLIST"]) + "\n")
    board = _Storyboard(
        interval=max(2.0, facts.duration / 100),
        thumb_width=THUMB_WIDTH,
        thumb_height=even(THUMB_WIDTH * planned[-1].height / planned[-1].width),
    )
    for part in parts:
        strip_path = out_dir / f"{part_prefix(part.index)}thumbs.jpg"
        if not part.thumbs or not strip_path.exists():
            continue
        with Image.open(strip_path) as strip:
            for n, t in enumerate(part.thumbs):
                box = (n * board.thumb_width, 0, (n + 1) * board.thumb_width, board.thumb_height)
                board.thumbs.append((t, strip.crop(box)))
    return _package(
        out_dir, facts, planned, board, has_audio=has_audio, frames=sum(p.frames for p in parts)
    )


def _encode_audio(audio: _AudioOutput, frame: Any) -> None:
    for resampled in audio.resampler.resample(frame):
        for packet in audio.stream.encode(resampled):
            audio.container.mux(packet)


def _flush_audio(audio: _AudioOutput) -> None:
    for resampled in audio.resampler.resample(None):
        for packet in audio.stream.encode(resampled):
            audio.container.mux(packet)
    for packet in audio.stream.encode(None):
        audio.container.mux(packet)


def _write_poster(frame: VideoFrame, out_dir: Path) -> None:
    width = min(frame.width, POSTER_MAX_WIDTH)
    height = even(frame.height * width / frame.width)
    # A scaler of its own: `frame.reformat` keeps one on the frame, which a rung's thread may
    # be using on this very frame (the storyboard), and one scaler used by two threads hangs.
    image = VideoReformatter().reformat(frame, width=width, height=height, format="rgb24")
    image = image.to_image()  # type: ignore[no-untyped-call]
    image.save(out_dir / "poster.jpg", quality=85)


def _nominal_renditions(planned: list[PlannedRung]) -> list[Rendition]:
    """What the master playlist says while encoding, before real sizes are known."""
    return [
        Rendition(
            name=p.rung.name,
            width=p.width,
            height=p.height,
            bandwidth=(p.rung.maxrate_kbps + AUDIO_KBPS) * 1000,
            average_bandwidth=(p.rung.video_kbps + AUDIO_KBPS) * 1000,
            codecs=p.rung.codecs,
        )
        for p in planned
    ]


def write_master(out_dir: Path, renditions: list[Rendition], *, has_audio: bool) -> None:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if has_audio:
        lines.append(
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Original",LANGUAGE="und",'
            'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"'
        )
    for r in renditions:
        codecs = f"{r.codecs},{AUDIO_CODECS}" if has_audio else r.codecs
        attributes = (
            f"BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
            f'RESOLUTION={r.width}x{r.height},CODECS="{codecs}"'
        )
        if has_audio:
            attributes += ',AUDIO="audio"'
        lines.append(f"#EXT-X-STREAM-INF:{attributes}")
        lines.append(f"{r.name}/index.m3u8")
    tmp = out_dir / ".master.m3u8.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "master.m3u8")


_EXTINF = re.compile(r"#EXTINF:([0-9.]+)")
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


def playlist_maps(text: str) -> list[str]:
    """URIs of the init sections a media playlist names, in order (parts each have one)."""
    return _MAP.findall(text)


def playlist_segments(text: str) -> list[tuple[float, str]]:
    """(duration, uri) of each segment of a media playlist."""
    segments = []
    duration: float | None = None
    for line in text.splitlines():
        match = _EXTINF.match(line)
        if match:
            duration = float(match.group(1))
        elif line and not line.startswith("#") and duration is not None:
            segments.append((duration, line.strip()))
            duration = None
    return segments


def _measure(playlist: Path) -> tuple[int, int]:
    """Peak and average bits per second over the playlist's segments."""
    segments = playlist_segments(playlist.read_text(encoding="utf-8"))
    peak, total_bits, total_time = 0.0, 0, 0.0
    for duration, uri in segments:
        size = (playlist.parent / uri).stat().st_size
        total_bits += size * 8
        total_time += duration
        if duration > 0.5:  # a short tail segment would overstate the peak
            peak = max(peak, size * 8 / duration)
    for init in playlist_maps(playlist.read_text(encoding="utf-8")):
        total_bits += (playlist.parent / init).stat().st_size * 8
    average = total_bits / total_time if total_time else 0
    return int(max(peak, average)), int(average)


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the ISO-BMFF boxes in ``data[start:end]``."""
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        kind = bytes(data[at + 4 : at + 8])
        header = 8
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
            header = 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        yield kind, at + header, at + size
        at += size


def _shift_fragments(segment: Path, ticks: int) -> None:
    """Add ``ticks`` to the base decode time (tfdt) of every fragment of an fMP4 segment."""
    data = bytearray(segment.read_bytes())
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind != b"moof":
            continue
        for traf_kind, traf_body, traf_end in _boxes(data, body, end):
            if traf_kind != b"traf":
                continue
            for box_kind, box_body, _box_end in _boxes(data, traf_body, traf_end):
                if box_kind != b"tfdt":
                    continue
                width = 8 if data[box_body] == 1 else 4
                at = box_body + 4
                value = int.from_bytes(data[at : at + width], "big") + ticks
                data[at : at + width] = value.to_bytes(width, "big")
    tmp = segment.with_name(f".{segment.name}.tmp")
    tmp.write_bytes(bytes(data))
    tmp.replace(segment)


def _track_timescale(init: Path) -> int:
    """The media timescale (mdhd) of the video track of an init section."""
    data = init.read_bytes()
    at = data.find(b"mdhd")
    version = data[at + 4]
    offset = at + 4 + 4 + (16 if version == 1 else 8)
    return int.from_bytes(data[offset : offset + 4], "big")


def _avc_config(init: Path) -> bytes:
    """The avcC box (SPS and PPS): what decides whether two init sections are interchangeable."""
    data = init.read_bytes()
    at = data.find(b"avcC")
    if at < 4:
        return data
    size = int.from_bytes(data[at - 4 : at], "big")
    return data[at - 4 : at - 4 + size]


def _codecs_of(init: Path) -> str | None:
    """The RFC 6381 string of what x264 really produced (its ``profile`` is only a ceiling:
    fast presets come out Constrained Baseline), read from the avcC box."""
    data = init.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        return None
    profile, compatibility, level = data[at + 5], data[at + 6], data[at + 7]
    return f"avc1.{profile:02x}{compatibility:02x}{level:02x}"


def _write_download(out_dir: Path, renditions: list[Rendition], *, has_audio: bool) -> str | None:
    """One progressive MP4 for download, remuxed from a rung's segments (no re-encoding)."""
    at_most_720 = [r for r in renditions if r.height <= 720]
    chosen = at_most_720[0] if at_most_720 else renditions[-1]
    video_file = _concatenate(out_dir / chosen.name)
    audio_file = _concatenate(out_dir / "audio") if has_audio else None
    target = out_dir / "download.mp4"
    try:
        inputs = [av.open(str(video_file))]
        if audio_file is not None:
            inputs.append(av.open(str(audio_file)))
        with av.open(str(target), "w", options={"movflags": "+faststart"}) as output:
            mapping = {}
            for source in inputs:
                stream = source.streams[0]
                mapping[source] = output.add_stream_from_template(stream)
            last_dts: dict[InputContainer, int] = {}
            for source, packet in _interleave(inputs):
                if packet.dts is None:
                    continue
                # Separately encoded parts each start their decode clock a B-frame delay
                # before their first picture, overlapping the previous part's last DTS by a
                # frame or two; nudge those by a tick (PTS, what viewers see, is untouched).
                previous = last_dts.get(source)
                if previous is not None and packet.dts <= previous:
                    packet.dts = previous + 1
                    if packet.pts is not None and packet.pts < packet.dts:
                        packet.pts = packet.dts
                last_dts[source] = packet.dts
                packet.stream = mapping[source]
                output.mux(packet)
        for source in inputs:
            source.close()
    finally:
        video_file.unlink(missing_ok=True)
        if audio_file is not None:
            audio_file.unlink(missing_ok=True)
    return "download.mp4"


def _concatenate(directory: Path) -> Path:
    """An init section followed by every segment is a valid fragmented MP4. Parts encoded
    separately share one encoder configuration, so the first part's init serves them all."""
    text = (directory / "index.m3u8").read_text(encoding="utf-8")
    segments = playlist_segments(text)
    target = directory.parent / f".{directory.name}.joined.mp4"
    with target.open("wb") as out:
        out.write((directory / playlist_maps(text)[0]).read_bytes())
        for _duration, uri in segments:
            out.write((directory / uri).read_bytes())
    return target


def _interleave(inputs: list[InputContainer]) -> Iterator[tuple[InputContainer, Any]]:
    """Packets of several inputs in decode-time order, so the muxer never buffers a whole
    stream waiting for the other."""
    iterators = [(source, source.demux(source.streams[0])) for source in inputs]
    heap: list[tuple[float, int, Any, InputContainer]] = []
    counter = 0

    def push(source: InputContainer, iterator: Iterator[Any]) -> None:
        nonlocal counter
        for packet in iterator:
            if packet.dts is None:
                continue
            heapq.heappush(
                heap, (float(packet.dts * packet.time_base), counter, (packet, iterator), source)
            )
            counter += 1
            return

    for source, iterator in iterators:
        push(source, iterator)
    while heap:
        _t, _n, (packet, iterator), source = heapq.heappop(heap)
        yield source, packet
        push(source, iterator)
