"""The adaptive bitrate ladder: which renditions a source gets, at which bitrates."""

from __future__ import annotations

from dataclasses import dataclass

# H.264 High profile at 30 fps, after Apple's HLS authoring specification (video bitrate table):
# 1080p 6000 kb/s and 720p 3000 kb/s are its rungs; 480p sits between its 432p (1100) and 540p
# (2000) rungs, and 360p takes its 432p figure, which looks right for lecture content.
AUDIO_KBPS = 128
AUDIO_RATE = 48_000
GOP_SECONDS = 2
SEGMENT_SECONDS = 6


@dataclass(frozen=True, slots=True)
class Rung:
    name: str
    height: int
    video_kbps: int
    level: str  # H.264 level for this height at up to 30 fps

    @property
    def maxrate_kbps(self) -> int:
        # Capped VBR: peaks within 7% of the target keep segment sizes predictable for ABR.
        return round(self.video_kbps * 1.07)

    @property
    def bufsize_kbps(self) -> int:
        return round(self.video_kbps * 1.5)

    @property
    def codecs(self) -> str:
        """RFC 6381 codecs string: avc1 High profile (0x64) at this level, plus AAC-LC."""
        level_idc = {"3.0": 0x1E, "3.1": 0x1F, "4.0": 0x28, "4.1": 0x29}[self.level]
        return f"avc1.6400{level_idc:02x}"


LADDER: tuple[Rung, ...] = (
    Rung("1080p", 1080, 6000, "4.0"),
    Rung("720p", 720, 3000, "3.1"),
    # 854x480 at 30 fps is 48,600 macroblocks a second: past level 3.0's 40,500.
    Rung("480p", 480, 1400, "3.1"),
    Rung("360p", 360, 730, "3.0"),
)
AUDIO_CODECS = "mp4a.40.2"


@dataclass(frozen=True, slots=True)
class PlannedRung:
    rung: Rung
    width: int
    height: int


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_ladder(source_width: int, source_height: int) -> list[PlannedRung]:
    """Rungs at or below the source's size (never upscaled), largest first. A source smaller
    than the lowest rung still gets one rendition, at its own size."""
    # Rungs are named by the short side, so a portrait 720x1280 video is "720p" too.
    short = min(source_width, source_height)
    planned = [
        PlannedRung(
            rung,
            even(source_width * rung.height / short),
            even(source_height * rung.height / short),
        )
        for rung in LADDER
        if rung.height <= short
    ]
    if not planned:
        size = even(short)
        lowest = LADDER[-1]
        scaled_kbps = max(200, round(lowest.video_kbps * size / lowest.height))
        rung = Rung(f"{size}p", size, scaled_kbps, "3.0")
        planned.append(PlannedRung(rung, even(source_width), even(source_height)))
    return planned
