"""What a clip is (size, rate, length, sound) and what it may be: the caps.

Probing reads the container's header only (PyAV, FFmpeg's demuxers), so a clip over
the duration cap is refused before a single frame is decoded. Longer sides and
higher frame rates are not refused: they are scaled down and thinned to the caps,
which is what a user who sends a 1080p 60-fps phone video wants back.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from totoshka.engine.video.errors import VideoRejected

# Telegram draws round video notes from a square of up to 640 px.
VIDEO_NOTE_MAX_SIDE = 640


@dataclass(frozen=True)
class VideoLimits:
    """The operator's caps (`EngineSettings.video_*`)."""

    max_side: int = 720
    max_seconds: float = 60.0
    max_fps: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> VideoLimits:
        return cls(
            max_side=settings.video_max_side,
            max_seconds=settings.video_max_seconds,
            max_fps=settings.video_max_fps,
        )


@dataclass(frozen=True)
class ClipInfo:
    width: int
    height: int
    fps: float
    duration: float  # seconds
    frames: int  # expected frame count (the header's, or duration × rate)
    has_audio: bool
    is_gif: bool


def _rate(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def open_clip(path: Path | str) -> Any:
    """The container, or `VideoRejected("not_video")` for anything FFmpeg cannot read."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VideoRejected("not_video") from e
    if not container.streams.video:
        container.close()
        raise VideoRejected("not_video")
    return container


def probe_clip(path: Path | str, limits: VideoLimits | None = None) -> ClipInfo:
    """The clip's header facts; refuses a clip longer than ``limits.max_seconds``."""
    limits = limits or VideoLimits()
    with open_clip(path) as container:
        stream = container.streams.video[0]
        rate = _rate(stream)
        duration = _duration(container, stream)
        frames = stream.frames or (round(duration * rate) if duration else 0)
        if duration is None:
            duration = frames / rate if frames else 0.0
        info = ClipInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            duration=duration,
            frames=int(frames),
            has_audio=bool(container.streams.audio),
            is_gif=container.format.name == "gif",
        )
    if info.width <= 0 or info.height <= 0:
        raise VideoRejected("no_frames")
    if info.duration > limits.max_seconds + 0.5:  # half a second: containers round
        raise VideoRejected("too_long", seconds=info.duration, limit=limits.max_seconds)
    return info


def _even(n: float) -> int:
    return max(2, round(n / 2) * 2)


def output_geometry(
    width: int, height: int, max_side: int, square: bool
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """(crop box x, y, w, h) of the source and the (even) output size: yuv420p needs
    even sides; a video note is the centred square, at most 640 px."""
    if square:
        side = min(width, height)
        box = ((width - side) // 2, (height - side) // 2, side, side)
        out = _even(min(side, max_side, VIDEO_NOTE_MAX_SIDE))
        return box, (out, out)
    scale = min(1.0, max_side / max(width, height))
    return (0, 0, width, height), (_even(width * scale), _even(height * scale))
