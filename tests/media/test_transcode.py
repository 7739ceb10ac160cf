"""The PyAV ladder on real, generated clips."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from media.ladder import plan_ladder
from media.transcode import (
    TranscodeCancelled,
    TranscodeFailed,
    TranscodeOptions,
    Watermark,
    playlist_segments,
    probe,
    transcode,
)
from tests.media.clips import count_frames, keyframe_times, make_clip

pytestmark = pytest.mark.timeout(120)
FAST = TranscodeOptions(preset="ultrafast")


def run(source: Path, out: Path, options: TranscodeOptions = FAST, **kwargs):
    progress: list[tuple[float, str]] = []
    result = transcode(
        source,
        out,
        options,
        on_progress=kwargs.get("on_progress", lambda p, s: progress.append((p, s))),
        cancelled=kwargs.get("cancelled", threading.Event()),
    )
    return result, progress


def test_ladder_never_upscales() -> None:
    assert [p.rung.name for p in plan_ladder(1920, 1080)] == ["1080p", "720p", "480p", "360p"]
    assert [(p.width, p.height) for p in plan_ladder(1280, 720)] == [
        (1280, 720),
        (854, 480),
        (640, 360),
    ]
    assert [p.rung.name for p in plan_ladder(640, 480)] == ["480p", "360p"]
    [only] = plan_ladder(426, 240)  # below the lowest rung: one rendition at its own size
    assert (only.width, only.height) == (426, 240)
    # Portrait sources keep their shape.
    assert next((p.width, p.height) for p in plan_ladder(720, 1280)) == (720, 1280)


def test_ladder_with_aligned_keyframes_and_a_valid_master(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", width=1280, height=720, seconds=13)
    out = tmp_path / "out"
    result, progress = run(source, out, TranscodeOptions(preset="veryfast"))

    assert [r.name for r in result.renditions] == ["720p", "480p", "360p"]
    assert result.has_audio
    assert result.frames == 13 * 30
    master = (out / "master.m3u8").read_text()
    assert master.count("#EXT-X-STREAM-INF") == 3
    for rendition in result.renditions:
        line = next(x for x in master.splitlines() if f"RESOLUTION={rendition.width}x" in x)
        for attribute in ("BANDWIDTH=", "AVERAGE-BANDWIDTH=", 'CODECS="avc1.64', "mp4a.40.2"):
            assert attribute in line
        assert rendition.bandwidth >= rendition.average_bandwidth > 0
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master

    expected = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    keyframes = {}
    for rendition in result.renditions:
        playlist = (out / rendition.name / "index.m3u8").read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
        assert "#EXT-X-ENDLIST" in playlist
        # 2 s first (plays sooner), then 6 s segments.
        assert [round(d) for d, _ in playlist_segments(playlist)] == [2, 6, 5]
        times = keyframe_times(out / rendition.name)
        # A constant decoder delay shifts every rung alike; the GOP is 2 s everywhere.
        keyframes[rendition.name] = [round(t - times[0], 3) for t in times]
        assert keyframes[rendition.name] == expected
        init_path = out / rendition.name / "init.mp4"
        with av.open(str(init_path)) as init:
            context = init.streams.video[0].codec_context
            assert (context.width, context.height) == (rendition.width, rendition.height)
        assert _first_frame(out / rendition.name).shape == (rendition.height, rendition.width, 3)
        avcc = init_path.read_bytes()
        profile_idc = avcc[avcc.index(b"avcC") + 5]
        assert profile_idc == 100  # High
    # Every frame is in the download, with its audio.
    assert count_frames(out / "download.mp4") == 13 * 30
    with av.open(str(out / "download.mp4")) as download:
        assert {s.type for s in download.streams} == {"video", "audio"}
    # Poster and storyboard.
    assert (out / "poster.jpg").stat().st_size > 1000
    vtt = (out / "storyboard.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    assert "storyboard.jpg#xywh=0,0,160,90" in vtt
    assert vtt.count("-->") == 7  # one thumbnail every 2 s
    # Progress rose steadily to the end.
    percents = [p for p, _ in progress]
    assert percents == sorted(percents)
    assert percents[-1] == 99.0


def test_playlists_are_published_while_encoding(tmp_path: Path) -> None:
    """An EVENT playlist with finished segments exists long before the end."""
    source = make_clip(tmp_path / "in.mp4", seconds=20, audio=False)
    out = tmp_path / "out"
    seen: list[str] = []

    def on_progress(percent: float, stage: str) -> None:
        if percent >= 75 and not seen:
            # Runs in the encoding thread, which waits for us: nothing races.
            seen.append((out / "240p" / "index.m3u8").read_text())

    run(source, out, on_progress=on_progress)
    [during] = seen
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in during
    assert "#EXT-X-ENDLIST" not in during
    assert len(playlist_segments(during)) >= 1
    assert (out / "master.m3u8").exists()


def test_a_small_source_gets_one_rendition_without_audio(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", width=320, height=180, seconds=3, audio=False)
    result, _ = run(source, tmp_path / "out")
    assert [(r.name, r.width, r.height) for r in result.renditions] == [("180p", 320, 180)]
    assert not result.has_audio
    master = (tmp_path / "out" / "master.m3u8").read_text()
    assert "TYPE=AUDIO" not in master
    assert 'CODECS="avc1.42c01e"' in master  # ultrafast: Constrained Baseline, said as such


def test_watermark_is_burned_into_every_rung(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", width=854, height=480, seconds=2, audio=False)
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    run(source, plain)
    options = TranscodeOptions(
        preset="ultrafast",
        watermark=Watermark(text="COHORT", position="top-left", opacity=1.0),
    )
    run(source, marked, options)
    for rung in ("480p", "360p"):
        a = _first_frame(plain / rung)
        b = _first_frame(marked / rung)
        height, width = a.shape[:2]
        corner = (slice(0, height // 6), slice(0, width // 4))
        far = (slice(height // 2, height), slice(width // 2, width))
        assert np.abs(a[corner].astype(int) - b[corner].astype(int)).mean() > 5
        assert np.abs(a[far].astype(int) - b[far].astype(int)).mean() < 2


def test_image_watermark(tmp_path: Path) -> None:
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGBA", (64, 32), (255, 0, 0, 255)).save(logo)
    source = make_clip(tmp_path / "in.mp4", seconds=2, audio=False)
    options = TranscodeOptions(
        preset="ultrafast", watermark=Watermark(image=logo, position="center", opacity=1.0)
    )
    run(source, tmp_path / "out", options)
    frame = _first_frame(tmp_path / "out" / "240p")
    height, width = frame.shape[:2]
    r, g, b = frame[height // 2, width // 2].astype(int)
    assert r > 180 > g
    assert b < 80


def _first_frame(rung_dir: Path) -> np.ndarray:
    joined = rung_dir / "first.mp4"
    first_segment = playlist_segments((rung_dir / "index.m3u8").read_text())[0][1]
    joined.write_bytes(
        (rung_dir / "init.mp4").read_bytes() + (rung_dir / first_segment).read_bytes()
    )
    with av.open(str(joined)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        return frame.to_ndarray(format="rgb24")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: make_clip(p, video=False, seconds=2, container_format="mp4"), "no video stream"),
        (lambda p: p.write_bytes(np.random.default_rng(1).bytes(200_000)) and p, "Not a readable"),
        (lambda p: p.write_bytes(b"") or p, "Not a readable"),
    ],
)
def test_bad_inputs_fail_with_a_clear_reason(tmp_path: Path, make, message: str) -> None:
    source = tmp_path / "in.mp4"
    make(source)
    with pytest.raises(TranscodeFailed, match=message):
        run(source, tmp_path / "out")


def test_truncated_files_fail(tmp_path: Path) -> None:
    # An MP4 cut before its index cannot even be opened...
    mp4 = make_clip(tmp_path / "full.mp4", seconds=10)
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(TranscodeFailed, match="Not a readable"):
        run(cut_mp4, tmp_path / "out1")
    # ...while an MP4 whose index survives but whose media data is cut decodes part-way.
    fast = tmp_path / "faststart.mp4"
    with (
        av.open(str(mp4)) as src,
        av.open(str(fast), "w", options={"movflags": "+faststart"}) as dst,
    ):
        streams = {s: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream]
                dst.mux(packet)
    cut_data = tmp_path / "cut-data.mp4"
    cut_data.write_bytes(fast.read_bytes()[: fast.stat().st_size // 3])
    with pytest.raises(TranscodeFailed, match="truncated"):
        run(cut_data, tmp_path / "out2")


def test_zero_duration_fails(tmp_path: Path) -> None:
    from PIL import Image

    source = tmp_path / "still.png"  # a picture has a video stream but no duration
    Image.new("RGB", (64, 48), (10, 20, 30)).save(source)
    with pytest.raises(TranscodeFailed, match="duration of zero"):
        run(source, tmp_path / "out")


def test_cancellation_stops_the_encoder(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", seconds=10, audio=False)
    cancelled = threading.Event()

    def on_progress(percent: float, stage: str) -> None:
        if percent > 20:
            cancelled.set()

    with pytest.raises(TranscodeCancelled):
        run(source, tmp_path / "out", on_progress=on_progress, cancelled=cancelled)
    assert not _rung_threads()


def _rung_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rung-")]


def test_a_rung_that_fails_fails_the_pass_and_stops_every_rung(tmp_path: Path) -> None:
    """Each rung encodes on its own thread: a failure there (here its output directory
    vanishes mid-pass) must reach the caller, not hang the decoder or leave threads behind."""
    source = make_clip(tmp_path / "in.mp4", seconds=12, width=640, height=360, audio=False)
    out = tmp_path / "out"
    lost = out / plan_ladder(640, 360)[-1].rung.name

    def on_progress(percent: float, stage: str) -> None:
        if percent > 20 and lost.exists():
            shutil.rmtree(lost)

    with pytest.raises(FileNotFoundError):
        run(source, out, on_progress=on_progress)
    assert not _rung_threads()


def test_parts_plan_on_segment_boundaries() -> None:
    from media.transcode import plan_parts

    # On the published grid: 2 s, then every 6 s.
    assert plan_parts(40, 12) == [(0, 14), (14, 26), (26, 40)]
    assert plan_parts(30, 12) == [(0, 14), (14, 30)]
    assert plan_parts(12, 100) == [(0, 12)]
    assert plan_parts(100, 20) == [(0, 20), (20, 38), (38, 56), (56, 74), (74, 92), (92, 100)]


def test_parts_encoded_separately_stitch_into_every_frame(tmp_path: Path) -> None:
    """A long video split at keyframes, each part encoded on its own (as separate workers
    would), audio once, then stitched: every frame is there, once, in order, and it plays."""
    from media.transcode import plan_parts, stitch, transcode_audio, transcode_part

    seconds, fps = 40, 30
    source = make_clip(tmp_path / "in.mp4", seconds=seconds, fps=fps)
    facts = probe(source)
    out = tmp_path / "out"
    parts = []
    # Out of order on purpose: parts do not depend on each other.
    for index, (start, end) in reversed(list(enumerate(plan_parts(facts.duration, 12)))):
        parts.append(
            transcode_part(
                source,
                out,
                FAST,
                index=index,
                start=start,
                end=end,
                on_progress=lambda p, s: None,
                cancelled=threading.Event(),
            )
        )
    assert transcode_audio(source, out, cancelled=threading.Event())
    result = stitch(out, facts, parts, has_audio=True)

    assert result.frames == seconds * fps
    assert sorted(p.frames for p in parts) == [360, 420, 420]
    playlist = (out / "240p" / "index.m3u8").read_text()
    # One configuration, so one init section for the whole stream.
    assert playlist.count("#EXT-X-MAP") == 1
    assert "#EXT-X-DISCONTINUITY" not in playlist
    # The same segments a single pass makes.
    assert [round(d) for d, _ in playlist_segments(playlist)] == [2, 6, 6, 6, 6, 6, 6, 2]
    # Played through its playlist: every frame once, in order, evenly spaced.
    with av.open(str(out / "240p" / "index.m3u8")) as hls:
        times = [round(float(f.pts * f.time_base) * fps) for f in hls.decode(video=0)]
    assert times == list(range(times[0], times[0] + seconds * fps))
    # The same GOP grid as a single pass.
    assert [
        round(t - keyframe_times(out / "240p")[0], 3) for t in keyframe_times(out / "240p")
    ] == [float(t) for t in range(0, seconds, 2)]
    assert count_frames(out / "download.mp4") == seconds * fps
    master = (out / "master.m3u8").read_text()
    assert "AVERAGE-BANDWIDTH=" in master
    assert "#EXT-X-MEDIA:TYPE=AUDIO" in master
    vtt = (out / "storyboard.vtt").read_text()
    assert vtt.count("-->") == 20  # every 2 s, across the parts
    assert (out / "poster.jpg").exists()
