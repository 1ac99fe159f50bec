"""A clip in, a painted clip out, a few frames at a time.

Streaming is the whole design: the source is demuxed packet by packet
(`decode.source_frames`), a few frames at a time are painted (one `run_batch`: a
GPU paints them together), passed through the consistency method and encoded
(`encode.ClipWriter`) before the next are read, so memory stays the same for a
5-second GIF and a 60-second video; the consistency method keeps one previous
frame. Audio packets are remuxed as they come.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from totoshka.engine.errors import EngineError
from totoshka.engine.video.clip import VideoLimits, open_clip, output_geometry, probe_clip
from totoshka.engine.video.decode import sample_frames, source_frames
from totoshka.engine.video.encode import ClipWriter
from totoshka.engine.video.errors import VideoCancelled, VideoRejected
from totoshka.engine.video.temporal import METHODS, Method

if TYPE_CHECKING:
    from totoshka.engine.mixing import StyleMix
    from totoshka.engine.own_style import OwnStyle
    from totoshka.engine.stylizer import Stylizer

DEFAULT_METHOD = "flow"  # the winner in benchmarks/results/video.md
FRAME_BATCH = 4  # frames painted together: a GPU batch, a few MB of frames at 720p
STATS_SAMPLES = 5  # frames the shared statistics are pooled over


@dataclass(frozen=True)
class ClipResult:
    """The painted clip as written."""

    width: int
    height: int
    fps: float
    duration: float
    frames: int
    has_audio: bool
    seconds: float  # wall time of the whole painting, decode to encode


def method_of(name: str | None) -> Method:
    name = name or DEFAULT_METHOD
    if name not in METHODS:
        raise EngineError(f"unknown consistency method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]


Painter = Callable[[list[np.ndarray]], list[np.ndarray]]


def paint_clip(
    stylizer: Stylizer,
    source: Path,
    target: Path,
    style: str | StyleMix | OwnStyle,
    *,
    strength: float = 1.0,
    preserve_colors: bool = False,
    method: str | None = None,
    output: Literal["mp4", "gif"] = "mp4",
    square: bool = False,
    limits: VideoLimits | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    painter: Painter | None = None,
    on_frame: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> ClipResult:
    """Paint ``source`` into ``target``. ``painter`` replaces the stylizer's frame
    painter (a list of frames in, their paintings out); ``on_frame(input, output)``
    sees each frame as written (the benchmark measures with it)."""
    started = time.perf_counter()
    limits = limits or VideoLimits()
    info = probe_clip(source, limits)
    chosen = method_of(method)
    rate = Fraction(min(info.fps, limits.max_fps)).limit_denominator(1001)
    _, size = output_geometry(info.width, info.height, limits.max_side, square)
    expected = max(1, round(info.duration * float(rate)) or info.frames)
    if painter is None:
        samples = (
            sample_frames(source, info, limits, square, STATS_SAMPLES)
            if chosen.shared_stats
            else None
        )
        painter = stylizer.frame_painter(
            style, strength=strength, preserve_colors=preserve_colors, stats_frames=samples
        ).batch
    blend = chosen.blend()
    try:
        with open_clip(source) as src, ClipWriter(target, output, rate, size) as writer:
            audio = src.streams.audio[0] if src.streams.audio else None
            copying = writer.audio_from(audio)
            frames = source_frames(src, info, limits, square, writer.remux if copying else None)
            pending: list[np.ndarray] = []

            def flush() -> None:
                # the method says first which frames it needs painted (all, or keyframes)
                wanted = [blend.wants(frame) for frame in pending]
                chosen = [frame for frame, want in zip(pending, wanted, strict=True) if want]
                paintings = iter(painter(chosen) if chosen else [])
                for frame, want in zip(pending, wanted, strict=True):
                    out = blend(frame, next(paintings) if want else None)
                    writer.write(out)
                    if on_frame is not None:
                        on_frame(frame, out)
                pending.clear()
                if progress is not None:
                    progress(min(1.0, writer.frames / expected))

            for frame in frames:
                if cancel is not None and cancel.is_set():
                    raise VideoCancelled()
                pending.append(frame)
                if len(pending) == FRAME_BATCH:
                    flush()
            if pending:
                flush()
            if writer.frames == 0:
                raise VideoRejected("no_frames")
        count = writer.frames
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise
    if progress is not None:
        progress(1.0)
    return ClipResult(
        width=size[0],
        height=size[1],
        fps=float(rate),
        duration=count / float(rate),
        frames=count,
        has_audio=copying,
        seconds=time.perf_counter() - started,
    )
