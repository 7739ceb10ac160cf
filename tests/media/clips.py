"""Small test clips generated with FFmpeg's lavfi sources through PyAV."""

from __future__ import annotations

from pathlib import Path

import av
from av.audio.resampler import AudioResampler
from av.video.frame import PictureType


def make_clip(
    path: Path,
    *,
    width: int = 426,
    height: int = 240,
    seconds: float = 4,
    fps: int = 30,
    audio: bool = True,
    video: bool = True,
    container_format: str | None = None,
    pattern: str = "testsrc2",
) -> Path:
    """A ``testsrc2`` picture (moving, with a frame counter) and a 440 Hz tone. Other lavfi
    patterns (``color``, ``smptebars``) make files that are small for their length."""
    with av.open(str(path), "w", format=container_format) as out:
        # Every stream must exist before the first packet is muxed.
        vs = out.add_stream("libx264", rate=fps) if video else None
        aus = out.add_stream("aac", rate=48_000) if audio else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.codec_context.options = {"preset": "ultrafast"}
        if aus is not None:
            aus.layout = "stereo"
        if vs is not None:
            source = f"{pattern}=size={width}x{height}:rate={fps}:duration={seconds}"
            with av.open(source, format="lavfi") as pictures:
                for frame in pictures.decode(video=0):
                    frame.pict_type = PictureType.NONE
                    for packet in vs.encode(frame):
                        out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
        if aus is not None:
            resampler = AudioResampler(format="fltp", layout="stereo", rate=48_000)
            tone = f"sine=frequency=440:duration={seconds}:sample_rate=48000"
            with av.open(tone, format="lavfi") as sound:
                for frame in sound.decode(audio=0):
                    for resampled in resampler.resample(frame):
                        for packet in aus.encode(resampled):
                            out.mux(packet)
            for packet in aus.encode(None):
                out.mux(packet)
    return path


def keyframe_times(playlist_dir: Path) -> list[float]:
    """Presentation times of the keyframes of one HLS rendition (init + segments joined)."""
    from media.transcode import playlist_maps, playlist_segments

    text = (playlist_dir / "index.m3u8").read_text()
    segments = playlist_segments(text)
    joined = playlist_dir.parent / f"{playlist_dir.name}.joined.mp4"
    with joined.open("wb") as out:
        out.write((playlist_dir / playlist_maps(text)[0]).read_bytes())
        for _duration, uri in segments:
            out.write((playlist_dir / uri).read_bytes())
    with av.open(str(joined)) as container:
        stream = container.streams.video[0]
        times = [
            float(p.pts * p.time_base)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        ]
    joined.unlink()
    return times


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
