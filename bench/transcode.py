"""Benchmark: Cohort's HLS ladder (``media.transcode``) against the ffmpeg command line.

Usage: ``.venv/bin/python bench/transcode.py [--seconds 60] [--sources lecture,hard] [--runs 1]``

Two synthetic 1080p30 sources with stereo AAC are generated once with lavfi and cached under
``var/bench/``: *lecture* (slides with text, a pointer and a small noisy camera picture, about
8-15 Mb/s) and *hard* (a rotating test pattern under heavy temporal noise, about 100 Mb/s). For
each source, Cohort's ``transcode()`` runs in a subprocess and the ffmpeg CLI peer encodes the
same ladder (same rungs, bitrates, maxrate/bufsize, levels, profile, preset, fixed 2 s GOP, 6 s
fMP4 HLS segments, one shared AAC audio group, master playlist) in one process; runs are
sequential, never concurrent. Each run reports wall time, CPU time, speed, peak RSS and the time
until the output is first playable (polled every 50 ms). After a tool's first run, untimed, every
rung is decoded through its HLS playlist and compared with the source (scaled to the rung's size
with the same bicubic scaler for both tools) for PSNR and SSIM.

stdout gets exactly one JSON line; progress and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg

from media.ladder import (
    AUDIO_KBPS,
    AUDIO_RATE,
    GOP_SECONDS,
    SEGMENT_SECONDS,
    PlannedRung,
    plan_ladder,
)
from media.transcode import playlist_segments

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "var" / "bench"
RECIPE = 2  # bump when a source recipe changes: the cached files are named after it
SOURCES = ("lecture", "hard")
POLL_SECONDS = 0.05
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
MONO_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
)


class BenchError(Exception):
    """A step failed; the message says which and why."""


def note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ffmpeg_exe() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


# Sources ------------------------------------------------------------------------------------


def _first_existing(candidates: tuple[str, ...]) -> str | None:
    return next((path for path in candidates if Path(path).is_file()), None)


def _lecture_graph() -> str:
    """Slides: a title bar and bullet text that change every 10 s, a code box, a moving pointer,
    a small 'speaker camera' picture with sensor noise, and faint noise over the whole frame (a
    camera-shot or lossy screen capture is never perfectly clean)."""
    font = _first_existing(FONT_CANDIDATES)
    mono = _first_existing(MONO_FONT_CANDIDATES) or font
    slide = r"trunc(t/10)"
    parts = [
        "color=c=0xF4F1EA:s=1920x1080:r=30",
        "drawbox=x=0:y=0:w=1920:h=140:color=0x1F3A5F:t=fill",
        "drawbox=x=80:y=640:w=1180:h=330:color=0x2B2B2B:t=fill",
    ]
    if font is not None and mono is not None:
        bullets = [
            rf"- Step %{{eif\:{slide}*3+1\:d}}\: discretise the domain into cells",
            rf"- Step %{{eif\:{slide}*3+2\:d}}\: assemble the sparse matrix A",
            rf"- Residual r = b - Ax = %{{eif\:mod({slide}*7919+4271,9973)\:d}}e-6",
            rf"- Iterations\: %{{eif\:mod({slide}*31+17,97)+3\:d}} (conjugate gradient)",
            r"- Preconditioner\: incomplete Cholesky",
        ]
        code = [
            rf"for k in range(%{{eif\:{slide}+2\:d}}0)\:",
            r"    alpha = rr / (p @ A @ p)",
            r"    x += alpha * p; r -= alpha * (A @ p)",
            r"    if norm(r) < tol\: break",
        ]
        title = rf"Lecture %{{eif\:{slide}+1\:d}} - Numerical methods for PDEs"
        parts.append(
            f"drawtext=fontfile={font}:text='{title}':x=60:y=38:fontsize=62:fontcolor=white"
        )
        for i, line in enumerate(bullets):
            parts.append(
                f"drawtext=fontfile={font}:text='{line}':x=80:y={200 + 78 * i}"
                ":fontsize=44:fontcolor=0x202020"
            )
        for i, line in enumerate(code):
            parts.append(
                f"drawtext=fontfile={mono}:text='{line}':x=110:y={675 + 70 * i}"
                ":fontsize=38:fontcolor=0x9FE29F"
            )
    else:  # no font: grey bars stand in for the lines of text
        for i in range(5):
            parts.append(
                f"drawbox=x=80:y={200 + 78 * i}:w='700+200*mod({slide}+{i},3)':h=34"
                ":color=0x404040:t=fill"
            )
    parts.append(
        "drawbox=x='300+600*abs(sin(t*0.7))':y='520+90*sin(t*1.3)':w=28:h=28:color=red:t=fill"
    )
    slide_chain = ",".join(parts)
    return (
        f"{slide_chain}[slide];"
        "testsrc2=s=480x270:r=30,noise=alls=6:allf=t[cam];"
        "[slide][cam]overlay=x=1400:y=780,noise=alls=2:allf=t,format=yuv420p[v]"
    )


def _hard_graph() -> str:
    return (
        "testsrc2=s=1920x1080:r=30,rotate=a='t*0.6':fillcolor=0x305080,"
        "noise=alls=28:allf=t+u,format=yuv420p[v]"
    )


@dataclass(frozen=True, slots=True)
class SourceRecipe:
    graph: Callable[[], str]
    audio: str
    rate_control: tuple[str, ...]  # x264 options of the source encode


RECIPES: dict[str, SourceRecipe] = {
    "lecture": SourceRecipe(
        graph=_lecture_graph,
        audio=(
            f"aevalsrc=0.2*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*0.5*t))|"
            f"0.2*sin(2*PI*330*t)*(0.6+0.4*cos(2*PI*0.3*t)):s={AUDIO_RATE}"
        ),
        # A bitrate, not a CRF: with faint noise, the CRF-to-bitrate curve has a cliff.
        rate_control=("-b:v", "11M", "-maxrate", "14M", "-bufsize", "22M"),
    ),
    "hard": SourceRecipe(
        graph=_hard_graph,
        audio=f"anoisesrc=c=pink:a=0.1:r={AUDIO_RATE},pan=stereo|c0=c0|c1=0.8*c0",
        rate_control=("-crf", "21"),
    ),
}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    path: Path
    seconds: float
    width: int
    height: int
    fps: Fraction
    frames: int
    bitrate_mbps: float  # whole file
    video_mbps: float
    generated_s: float | None  # None: reused from the cache


def ensure_source(name: str, seconds: int, timeout: float) -> SourceInfo:
    recipe = RECIPES[name]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"transcode-{name}-{seconds}s-r{RECIPE}.mp4"
    generated: float | None = None
    if not path.exists():
        note(f"generating the {name} source ({seconds} s, 1080p30) into {path} ...")
        partial = path.with_name(f".{path.name}.partial.mp4")
        command = [
            ffmpeg_exe(),
            *("-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
            *("-filter_complex", recipe.graph()),
            *("-f", "lavfi", "-i", recipe.audio),
            *("-map", "[v]", "-map", "0:a", "-t", str(seconds)),
            *("-c:v", "libx264", "-preset", "veryfast", *recipe.rate_control),
            *("-pix_fmt", "yuv420p", "-r", "30"),
            *("-c:a", "aac", "-b:a", "160k", "-ac", "2", "-ar", str(AUDIO_RATE)),
            *("-movflags", "+faststart", str(partial)),
        ]
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            partial.unlink(missing_ok=True)
            raise BenchError(f"generating the {name} source took over {timeout:.0f} s") from None
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BenchError(f"generating the {name} source failed: {done.stderr.strip()[-2000:]}")
        partial.replace(path)
        generated = round(time.monotonic() - started, 1)
    else:
        note(f"reusing the cached {name} source {path}")
    return _describe_source(name, path, generated)


def _describe_source(name: str, path: Path, generated: float | None) -> SourceInfo:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            duration = (container.duration or 0) / av.time_base
            fps = Fraction(stream.average_rate or 30)
            info = SourceInfo(
                name=name,
                path=path,
                seconds=round(duration, 3),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=fps,
                frames=stream.frames or round(duration * fps),
                bitrate_mbps=round(path.stat().st_size * 8 / duration / 1e6, 2),
                video_mbps=round((stream.bit_rate or 0) / 1e6, 2),
                generated_s=generated,
            )
    except (av.error.FFmpegError, IndexError, ZeroDivisionError) as exc:
        raise BenchError(f"the cached source {path} is unreadable ({exc}); delete it") from None
    if not (8 <= info.bitrate_mbps <= 15) and name == "lecture":
        note(f"warning: the lecture source is {info.bitrate_mbps} Mb/s, outside 8-15 Mb/s")
    return info


# Watching the output ------------------------------------------------------------------------

_MAP_URI = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


def _rendition_playable(directory: Path) -> bool:
    """The playlist lists a segment, and that segment and the init section both exist."""
    try:
        text = (directory / "index.m3u8").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    segments = playlist_segments(text)
    if not segments:
        return False
    match = _MAP_URI.search(text)
    init = directory / (match.group(1) if match else "init.mp4")
    return init.is_file() and (directory / segments[0][1]).is_file()


class PlayableWatcher:
    """First instant at which a player could start: master playlist plus one video rung (and,
    for information, the audio rendition too)."""

    def __init__(self, out_dir: Path, rungs: list[str]) -> None:
        self.out_dir = out_dir
        self.rungs = rungs
        self.video: float | None = None
        self.with_audio: float | None = None

    def poll(self, elapsed: float) -> None:
        if self.with_audio is not None:
            return
        if self.video is None:
            if not (self.out_dir / "master.m3u8").is_file():
                return
            if any(_rendition_playable(self.out_dir / rung) for rung in self.rungs):
                self.video = elapsed
        if self.video is not None and _rendition_playable(self.out_dir / "audio"):
            self.with_audio = elapsed


# Running one tool ---------------------------------------------------------------------------


def _busy_cpu_seconds() -> float:
    """All CPU time the machine has spent so far (to spot other load during a run)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_idle(max_wait: float, threshold_cores: float = 0.3) -> float:
    """Wait (at most ``max_wait`` s) until the rest of the machine uses under
    ``threshold_cores`` of CPU; returns the last load seen, in cores."""
    deadline = time.monotonic() + max_wait
    warned = False
    while True:
        busy, own, started = _busy_cpu_seconds(), time.process_time(), time.monotonic()
        time.sleep(1.0)
        spent = _busy_cpu_seconds() - busy - (time.process_time() - own)
        load = max(0.0, spent / (time.monotonic() - started))
        if load <= threshold_cores or time.monotonic() >= deadline:
            if load > threshold_cores:
                note(f"warning: the machine is still busy ({load:.2f} cores); measuring anyway")
            return round(load, 2)
        if not warned:
            note(f"other processes use {load:.2f} cores: waiting up to {max_wait:.0f} s ...")
            warned = True


@dataclass
class RunFigures:
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    speed_x_realtime: float
    peak_rss_mb: float
    first_playable_s: float | None
    first_playable_with_audio_s: float | None
    background_cpu_s: float  # CPU used by anything else on the machine during the run
    background_cores_before: float  # load from other processes just before the run
    output_mb: float
    spawned_at: float  # CLOCK_MONOTONIC
    phases: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.__dict__.items()
            if k != "spawned_at" and (v is not None or k.startswith("first"))
        }


def run_measured(
    command: list[str],
    *,
    out_dir: Path,
    rungs: list[str],
    seconds: float,
    timeout: float,
    label: str,
    idle_wait: float,
) -> RunFigures:
    """Run ``command`` alone, poll ``out_dir`` every 50 ms, reap it with its own rusage."""
    background_before = wait_for_idle(idle_wait)
    log_path = out_dir.parent / f"{out_dir.name}.stderr.log"
    watcher = PlayableWatcher(out_dir, rungs)
    own_before = time.process_time()
    busy_before = _busy_cpu_seconds()
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT)
        reaped = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                elapsed = time.monotonic() - started
                if pid:
                    reaped = True
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                watcher.poll(elapsed)
                if elapsed > timeout:
                    raise BenchError(f"{label} ran over {timeout:.0f} s and was stopped")
                time.sleep(POLL_SECONDS)
        finally:
            if not reaped:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
    wall = time.monotonic() - started
    busy = _busy_cpu_seconds() - busy_before
    own = time.process_time() - own_before
    output = log_path.read_text(encoding="utf-8", errors="replace")
    log_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise BenchError(f"{label} failed (exit {proc.returncode}):\n{output.strip()[-3000:]}")
    for line in output.splitlines():
        if line.strip():
            note(f"{label}: {line.strip()}")
    watcher.poll(wall)  # a very fast run may finish between two polls
    cpu = usage.ru_utime + usage.ru_stime
    size = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    return RunFigures(
        wall_s=round(wall, 2),
        cpu_s=round(cpu, 2),
        user_s=round(usage.ru_utime, 2),
        sys_s=round(usage.ru_stime, 2),
        speed_x_realtime=round(seconds / wall, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        first_playable_s=None if watcher.video is None else round(watcher.video, 2),
        first_playable_with_audio_s=(
            None if watcher.with_audio is None else round(watcher.with_audio, 2)
        ),
        background_cpu_s=round(max(0.0, busy - cpu - own), 2),
        background_cores_before=background_before,
        output_mb=round(size / 1e6, 1),
        spawned_at=started,
    )


def run_cohort(
    source: SourceInfo,
    out_dir: Path,
    rungs: list[str],
    preset: str,
    timeout: float,
    idle_wait: float,
) -> RunFigures:
    result_file = out_dir.parent / f"{out_dir.name}.result.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--cohort-child",
        *(str(source.path), str(out_dir), preset, str(result_file)),
    ]
    figures = run_measured(
        command,
        out_dir=out_dir,
        rungs=rungs,
        seconds=source.seconds,
        timeout=timeout,
        label="cohort",
        idle_wait=idle_wait,
    )
    try:
        child = json.loads(result_file.read_text(encoding="utf-8"))
    finally:
        result_file.unlink(missing_ok=True)
    # The child's timestamps are CLOCK_MONOTONIC too: make them relative to the spawn.
    startup = child["called"] - figures.spawned_at
    figures.phases = {
        "startup_s": round(startup, 2),  # interpreter, imports, until transcode() is called
        "encode_s": round(child["packaging"] - child["called"], 2),  # decode+scale+encode
        "packaging_s": round(child["returned"] - child["packaging"], 2),  # VOD, storyboard, MP4
    }
    return figures


def ffmpeg_command(
    source: SourceInfo, out_dir: Path, planned: list[PlannedRung], preset: str
) -> list[str]:
    gop = max(1, round(source.fps * GOP_SECONDS))
    n = len(planned)
    graph = f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n))
    for i, p in enumerate(planned):
        graph += f";[s{i}]scale={p.width}:{p.height}:flags=bicubic[v{i}]"
    command = [
        ffmpeg_exe(),
        *("-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning", "-y"),
        *("-i", str(source.path), "-filter_complex", graph),
    ]
    for i in range(n):
        command += ["-map", f"[v{i}]"]
    command += ["-map", "0:a:0"]
    command += [
        *("-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-pix_fmt", "yuv420p"),
        *("-g", str(gop), "-sc_threshold", "0"),
        *("-x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0"),
        *("-force_key_frames", f"expr:gte(t,n_forced*{GOP_SECONDS})"),
    ]
    for i, p in enumerate(planned):
        command += [
            *(f"-b:v:{i}", f"{p.rung.video_kbps}k"),
            *(f"-maxrate:v:{i}", f"{p.rung.maxrate_kbps}k"),
            *(f"-bufsize:v:{i}", f"{p.rung.bufsize_kbps}k"),
            *(f"-level:v:{i}", p.rung.level),
        ]
    streams = [f"v:{i},agroup:audio,name:{p.rung.name}" for i, p in enumerate(planned)]
    streams.append("a:0,agroup:audio,name:audio")
    command += [
        *("-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2", "-ar", str(AUDIO_RATE)),
        *("-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "event"),
        *("-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"),
        *("-hls_flags", "independent_segments+temp_file"),
        *("-hls_segment_filename", str(out_dir / "%v" / "seg_%05d.m4s")),
        *("-master_pl_name", "master.m3u8", "-var_stream_map", " ".join(streams)),
        str(out_dir / "%v" / "index.m3u8"),
    ]
    return command


def run_ffmpeg(
    source: SourceInfo,
    out_dir: Path,
    planned: list[PlannedRung],
    preset: str,
    timeout: float,
    idle_wait: float,
) -> RunFigures:
    return run_measured(
        ffmpeg_command(source, out_dir, planned, preset),
        out_dir=out_dir,
        rungs=[p.rung.name for p in planned],
        seconds=source.seconds,
        timeout=timeout,
        label="ffmpeg",
        idle_wait=idle_wait,
    )


# Inspecting an output (untimed) -------------------------------------------------------------

# An instance name says what a rung is compared with: `u`, the source itself (the rung scaled
# up to the source's size), or `r`, the source scaled down to the rung's size.
_QUALITY_LINE = re.compile(
    r"\[(psnr|ssim)@([ur])(\d+) @ [^\]]+\] (?:PSNR .*?average:(\S+)|SSIM .*?All:(\S+))"
)
# How a rung is scaled back up to the source's size for the comparison with the source.
UPSCALE_FLAGS = "bicubic"


def _media_playlist(directory: Path) -> tuple[list[tuple[float, str]], Path]:
    text = (directory / "index.m3u8").read_text(encoding="utf-8")
    match = _MAP_URI.search(text)
    return playlist_segments(text), directory / (match.group(1) if match else "init.mp4")


def _rung_bitrates(directory: Path) -> dict[str, Any]:
    segments, init = _media_playlist(directory)
    total_bits = init.stat().st_size * 8 if init.exists() else 0
    total_time, peak = 0.0, 0.0
    for duration, uri in segments:
        bits = (directory / uri).stat().st_size * 8
        total_bits += bits
        total_time += duration
        if duration > 0.5:
            peak = max(peak, bits / duration)
    return {
        "avg_kbps": round(total_bits / total_time / 1000) if total_time else None,
        "peak_segment_kbps": round(peak / 1000),
        "segments": len(segments),
    }


def _x264_settings(directory: Path) -> str | None:
    """x264's SEI (version and options) from the first segment."""
    segments, _init = _media_playlist(directory)
    if not segments:
        return None
    data = (directory / segments[0][1]).read_bytes()[:1_000_000]
    at = data.find(b"x264 - core")
    if at < 0:
        return None
    end = data.find(b"\x00", at)
    return data[at : end if end > 0 else at + 2000].decode("latin-1")


def _x264_options(sei: str | None) -> dict[str, str]:
    if not sei or "options: " not in sei:
        return {}
    return dict(item.split("=", 1) for item in sei.split("options: ", 1)[1].split() if "=" in item)


def inspect_output(
    source: SourceInfo,
    out_dir: Path,
    planned: list[PlannedRung],
    quality_seconds: float | None,
    timeout: float,
    ref_flags: str = "bicubic",
) -> dict[str, Any]:
    """Per-rung PSNR/SSIM, bitrates, segment alignment and x264 settings.

    Quality two ways, in one ffmpeg pass that decodes the source once:

    * against the source (``psnr``, ``ssim``): each rung scaled back up to the source's size
      (swscale ``UPSCALE_FLAGS``, the same for both tools) and compared with the source
      frames as decoded, the usual way of scoring the rungs of a ladder. Neither tool's own
      downscaler is the reference, so it scores the scaling and the encoding together;
    * against the source scaled down to the rung's size (``psnr_scaled_ref``,
      ``ssim_scaled_ref``) with swscale ``ref_flags``: with bicubic that is exactly the
      ffmpeg peer's own encoder input, so for the peer it scores the encoding alone, and for a
      tool that scales differently the difference between the two scalers as well.
    """
    limit = ["-t", f"{quality_seconds:g}"] if quality_seconds else []
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *limit, "-i"]
    command.append(str(source.path))
    n = len(planned)
    graph = [f"[0:v]setpts=PTS-STARTPTS,split={2 * n}" + "".join(f"[s{i}]" for i in range(2 * n))]
    stats: list[Path] = []
    outputs: list[str] = []
    for i, p in enumerate(planned):
        command += [*limit, "-i", str(out_dir / p.rung.name / "index.m3u8")]
        stats_file = out_dir / f".psnr-{i}.log"
        stats.append(stats_file)
        graph.append(
            f"[s{i}]scale={p.width}:{p.height}:flags={ref_flags},split[r{i}a][r{i}b];"
            f"[s{n + i}]split[f{i}a][f{i}b];"
            f"[{i + 1}:v]setpts=PTS-STARTPTS,split=3[d{i}a][d{i}b][d{i}c];"
            f"[d{i}c]scale={source.width}:{source.height}:flags={UPSCALE_FLAGS},"
            f"split[u{i}a][u{i}b];"
            f"[d{i}a][r{i}a]psnr@r{i}[o{i}a];"
            f"[d{i}b][r{i}b]ssim@r{i}[o{i}b];"
            f"[u{i}a][f{i}a]psnr@u{i}=stats_file={stats_file}[o{i}c];"
            f"[u{i}b][f{i}b]ssim@u{i}[o{i}d]"
        )
        outputs += [f"[o{i}{k}]" for k in "abcd"]
    command += ["-filter_complex", ";".join(graph)]
    for label in outputs:
        command += ["-map", label]
    command += ["-f", "null", "-"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"the quality pass took over {timeout:.0f} s") from None
    if done.returncode != 0:
        raise BenchError(f"the quality pass failed: {done.stderr.strip()[-2000:]}")
    scores: dict[tuple[str, str, int], float] = {}
    for match in _QUALITY_LINE.finditer(done.stderr):
        kind, against, index = match.group(1), match.group(2), int(match.group(3))
        value = match.group(4) if kind == "psnr" else match.group(5)
        scores[(kind, against, index)] = float(value)
    rungs = []
    extinfs = []
    for i, p in enumerate(planned):
        wanted = [(k, a, i) for k in ("psnr", "ssim") for a in "ur"]
        if any(key not in scores for key in wanted):
            raise BenchError(f"no PSNR/SSIM for {p.rung.name} in:\n{done.stderr[-2000:]}")
        frames = sum(1 for line in stats[i].read_text().splitlines() if line.startswith("n:"))
        stats[i].unlink()
        directory = out_dir / p.rung.name
        extinfs.append([round(d, 3) for d, _ in _media_playlist(directory)[0]])
        rungs.append(
            {
                "name": p.rung.name,
                "size": f"{p.width}x{p.height}",
                "psnr": round(scores[("psnr", "u", i)], 3),
                "ssim": round(scores[("ssim", "u", i)], 5),
                "psnr_scaled_ref": round(scores[("psnr", "r", i)], 3),
                "ssim_scaled_ref": round(scores[("ssim", "r", i)], 5),
                "frames_compared": frames,
                **_rung_bitrates(directory),
            }
        )
    sei = [_x264_settings(out_dir / p.rung.name) for p in planned]
    core = re.search(r"core (\d+)(?: r(\d+))?", sei[0] or "")
    return {
        "rungs": rungs,
        "segments_aligned": all(e == extinfs[0] for e in extinfs),
        "audio": _rung_bitrates(out_dir / "audio"),
        "x264_core": core.group(0) if core else None,
        "x264_options": [_x264_options(s) for s in sei],
    }


def _options_diff(ours: list[dict[str, str]], theirs: list[dict[str, str]]) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diff.setdefault(str(index), {})[key] = [a.get(key), b.get(key)]
    return diff


# The benchmark -----------------------------------------------------------------------------


def _median_figures(runs: list[RunFigures]) -> dict[str, Any]:
    if len(runs) == 1:
        return runs[0].as_json()
    data: dict[str, Any] = {}
    for key, value in runs[0].as_json().items():
        if isinstance(value, int | float) or value is None:
            values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
            data[key] = round(statistics.median(values), 3) if values else None
        elif isinstance(value, dict):
            data[key] = {
                k: round(statistics.median([(getattr(r, key) or {})[k] for r in runs]), 3)
                for k in value
            }
    data["runs"] = [r.as_json() for r in runs]
    return data


def bench_source(
    source: SourceInfo, args: argparse.Namespace, quality_seconds: float | None
) -> dict[str, Any]:
    planned = plan_ladder(source.width, source.height)
    rung_names = [p.rung.name for p in planned]
    timeout = 120 + 25 * source.seconds
    figures: dict[str, list[RunFigures]] = {"cohort": [], "ffmpeg": []}
    inspected: dict[str, dict[str, Any]] = {}
    for run in range(args.runs):
        order = ("cohort", "ffmpeg") if run % 2 == 0 else ("ffmpeg", "cohort")
        for tool in order:
            out_dir = Path(tempfile.mkdtemp(prefix=f"run-{source.name}-{tool}-", dir=CACHE_DIR))
            try:
                note(f"{source.name}: {tool} run {run + 1}/{args.runs} ...")
                if tool == "cohort":
                    result = run_cohort(
                        source, out_dir, rung_names, args.preset, timeout, args.idle_wait
                    )
                else:
                    result = run_ffmpeg(
                        source, out_dir, planned, args.preset, timeout, args.idle_wait
                    )
                note(f"{source.name}: {tool} run {run + 1}: {json.dumps(result.as_json())}")
                figures[tool].append(result)
                if run == 0 and not args.no_quality:
                    note(f"{source.name}: quality pass of {tool}'s output (untimed) ...")
                    inspected[tool] = inspect_output(
                        source, out_dir, planned, quality_seconds, timeout, args.ref_flags
                    )
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
        if args.profile and run == 0:
            profile_cohort(source, args.preset, timeout)
    cohort = _median_figures(figures["cohort"])
    ffmpeg = _median_figures(figures["ffmpeg"])
    for tool, data in (("cohort", cohort), ("ffmpeg", ffmpeg)):
        if tool in inspected:
            info = inspected[tool]
            data.update(
                rungs=info["rungs"],
                segments_aligned=info["segments_aligned"],
                audio=info["audio"],
                x264=info["x264_core"],
            )
    ffmpeg["version"] = ffmpeg_version()
    entry: dict[str, Any] = {
        "name": source.name,
        "seconds": source.seconds,
        "size": f"{source.width}x{source.height}",
        "fps": float(source.fps),
        "bitrate_mbps": source.bitrate_mbps,
        "video_mbps": source.video_mbps,
        "cohort": cohort,
        "ffmpeg": ffmpeg,
        "ratio_wall": round(cohort["wall_s"] / ffmpeg["wall_s"], 3),
        "ratio_cpu": round(cohort["cpu_s"] / ffmpeg["cpu_s"], 3),
        "first_playable_vs_ffmpeg_full": (
            round(cohort["first_playable_s"] / ffmpeg["wall_s"], 3)
            if cohort.get("first_playable_s") is not None
            else None
        ),
    }
    if source.generated_s is not None:
        entry["generated_s"] = source.generated_s
    if "cohort" in inspected and "ffmpeg" in inspected:
        entry["x264_options_diff"] = _options_diff(
            inspected["cohort"]["x264_options"], inspected["ffmpeg"]["x264_options"]
        )
    return entry


def profile_cohort(source: SourceInfo, preset: str, timeout: float) -> None:
    """One extra, untimed Cohort run under cProfile; the top of the profile goes to stderr."""
    out_dir = Path(tempfile.mkdtemp(prefix=f"profile-{source.name}-", dir=CACHE_DIR))
    result_file = out_dir.parent / f"{out_dir.name}.result.json"
    command = [
        *(sys.executable, str(Path(__file__).resolve()), "--cohort-child"),
        *(str(source.path), str(out_dir), preset, str(result_file), "--child-profile"),
    ]
    note(f"{source.name}: profiling one cohort run (untimed) ...")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
        )
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            raise BenchError(f"the profiled cohort run failed (exit {done.returncode})")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        result_file.unlink(missing_ok=True)


def cohort_revision() -> dict[str, Any]:
    """The commit measured, and whether media/ differs from it (read-only git calls)."""

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

    status = git("status", "--porcelain", "--", "media")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "media_modified": None if status is None else bool(status),
    }


def machine() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": model,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "pyav": av.__version__,
        "pyav_ffmpeg": av.ffmpeg_version_info,
        "ffmpeg_cli": ffmpeg_version(),
    }


@functools.cache
def ffmpeg_version() -> str:
    try:
        out = subprocess.run(
            [ffmpeg_exe(), "-version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"the ffmpeg binary does not run ({exc})") from None
    match = re.search(r"version n?(\d+(?:\.\d+)+)", out)
    return match.group(1) if match else out.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=60, help="source length (default 60)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="lecture,hard")
    parser.add_argument("--runs", type=int, default=1, help="timed runs per tool (alternated)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset for both tools")
    parser.add_argument(
        "--quality-seconds",
        type=float,
        default=0,
        help="compare only the first N seconds of each rung (default 0: all of it)",
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=120,
        help="before each timed run, wait up to N s for other load to stop (default 120)",
    )
    parser.add_argument(
        "--ref-flags",
        default="bicubic",
        help="swscale flags that scale the source into each rung's reference (default bicubic)",
    )
    parser.add_argument("--no-quality", action="store_true", help="skip PSNR/SSIM")
    parser.add_argument(
        "--profile", action="store_true", help="also run Cohort once under cProfile (stderr)"
    )
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in names if s not in RECIPES]
    if unknown or not names:
        parser.error(f"unknown source(s) {unknown}; choose from {', '.join(SOURCES)}")
    if not 1 <= args.seconds <= 3600 or not 1 <= args.runs <= 20:
        parser.error("--seconds must be in 1..3600 and --runs in 1..20")
    # SIGTERM: unwind through the finally blocks (children killed, temp dirs removed).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    started = time.monotonic()
    ffmpeg_version()  # fails early if the binary does not run
    quality_seconds = args.quality_seconds or None
    report: dict[str, Any] = {
        "bench": "transcode",
        "machine": machine(),
        "cohort": cohort_revision(),
        "preset": args.preset,
        "runs": args.runs,
        "quality": (
            "skipped"
            if args.no_quality
            else f"first {quality_seconds:g} s"
            if quality_seconds
            else "full"
        ),
        "notes": [
            "cohort also writes poster.jpg, storyboard.jpg/.vtt and download.mp4 (phases."
            "packaging_s, output_mb); the ffmpeg peer writes only the HLS ladder",
            "psnr (average of y/u/v) and ssim (All): each rung scaled back up to the source's "
            f"size ({UPSCALE_FLAGS}, the same for both tools) against the source frames",
            "psnr_scaled_ref, ssim_scaled_ref: each rung against the source scaled down to "
            f"its size by the ffmpeg CLI (flags={args.ref_flags}); with bicubic that is exactly "
            "the peer's own encoder input, while cohort scales with PyAV's FFmpeg and the "
            "lower rungs from a larger rung",
            "background_cpu_s: CPU used by other processes during a run (a shared machine)",
        ],
        "sources": [],
    }
    try:
        sources = [ensure_source(n, args.seconds, 120 + 10 * args.seconds) for n in names]
        for source in sources:
            report["sources"].append(bench_source(source, args, quality_seconds))
    except BenchError as exc:
        note(f"FAILED: {exc}")
        return 1
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report), flush=True)
    return 0


# The Cohort child process --------------------------------------------------------------------


def cohort_child(argv: list[str]) -> int:
    """``--cohort-child SOURCE OUT PRESET RESULT [--child-profile]``: run ``transcode()`` and
    write CLOCK_MONOTONIC timestamps of its phases to RESULT."""
    profile = "--child-profile" in argv
    source, out_dir, preset, result_file = (a for a in argv if a != "--child-profile")
    from media.transcode import TranscodeOptions, transcode

    stamps: dict[str, float] = {}

    def on_progress(_percent: float, stage: str) -> None:
        if stage == "packaging" and "packaging" not in stamps:
            stamps["packaging"] = time.monotonic()

    def job() -> None:
        transcode(
            Path(source),
            Path(out_dir),
            TranscodeOptions(preset=preset),
            on_progress=on_progress,
            cancelled=threading.Event(),
        )

    stamps["called"] = time.monotonic()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(job)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        job()
    stamps["returned"] = time.monotonic()
    stamps.setdefault("packaging", stamps["returned"])
    Path(result_file).write_text(json.dumps(stamps), encoding="utf-8")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cohort-child":
        sys.exit(cohort_child(sys.argv[2:]))
    sys.exit(main())
