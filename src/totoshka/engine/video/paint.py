"""A clip in, a painted clip out, one frame at a time.

Streaming is the whole design: the source is demuxed packet by packet, each video
frame decoded, scaled to the caps, painted, passed through the consistency method
and encoded before the next is read, so memory stays the same for a 5-second GIF
and a 60-second video (the consistency method keeps one previous frame). Audio
packets are remuxed as they come — copied untouched, never re-encoded. Frames
above the rate cap are dropped on a regular grid (a 60-fps clip keeps every
other frame), so the output plays at the same speed.

Output: H.264 in MP4, yuv420p (what every phone and Telegram plays), ``+faststart``
(the index first, so it plays while it downloads), at the source's rate or the
cap. ``output="gif"`` writes an animated GIF instead (FFmpeg's GIF encoder), for
a GIF that should stay a GIF on disk.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
import cv2
import numpy as np

from totoshka.engine.errors import EngineError
from totoshka.engine.video.clip import ClipInfo, VideoLimits, open_clip, output_geometry, probe_clip
from totoshka.engine.video.errors import VideoCancelled, VideoRejected
from totoshka.engine.video.temporal import FlowBlend, PerFrame

if TYPE_CHECKING:
    from totoshka.engine.own_style import OwnStyle
    from totoshka.engine.stylizer import Stylizer

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]
METHODS: dict[str, Callable[[], Method]] = {"none": PerFrame, "flow": FlowBlend}
DEFAULT_METHOD = "flow"
# audio codecs the MP4 muxer takes as they are; others are left out (logged by the caller)
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"})


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
    return METHODS[name]()


def source_frames(
    container: Any,
    info: ClipInfo,
    limits: VideoLimits,
    square: bool,
    on_packet: Callable[[Any], None] | None = None,
) -> Iterator[np.ndarray]:
    """The clip's frames as HWC uint8 RGB at the output size and rate, one at a time;
    ``on_packet`` receives every non-video packet (the audio) as it is demuxed."""
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    box, size = output_geometry(info.width, info.height, limits.max_side, square)
    step = 1.0 / min(info.fps, limits.max_fps)
    next_t = 0.0
    streams = [video, *container.streams.audio[:1]] if on_packet else [video]
    for packet in container.demux(*streams):
        if packet.stream.type != "video":
            if on_packet is not None and packet.dts is not None:
                on_packet(packet)
            continue
        for frame in packet.decode():
            t = float(frame.time) if frame.time is not None else next_t
            if t + 1e-6 < next_t:
                continue  # above the rate cap: dropped on the grid
            next_t = max(next_t + step, t + step / 2)
            rgb = frame.to_ndarray(format="rgb24")
            x, y, w, h = box
            if (w, h) != (rgb.shape[1], rgb.shape[0]):
                rgb = rgb[y : y + h, x : x + w]
            if (rgb.shape[1], rgb.shape[0]) != size:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            yield np.ascontiguousarray(rgb)


def paint_clip(
    stylizer: Stylizer,
    source: Path,
    target: Path,
    style: str | OwnStyle,
    *,
    strength: float = 1.0,
    preserve_colors: bool = False,
    method: str | None = None,
    output: Literal["mp4", "gif"] = "mp4",
    square: bool = False,
    limits: VideoLimits | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    paint: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ClipResult:
    """Paint ``source`` into ``target``. ``paint`` replaces the stylizer's frame
    painter (the benchmark passes one that also records frames)."""
    started = time.perf_counter()
    limits = limits or VideoLimits()
    info = probe_clip(source, limits)
    blend = method_of(method)
    paint = paint or stylizer.frame_painter(
        style, strength=strength, preserve_colors=preserve_colors
    )
    rate = Fraction(min(info.fps, limits.max_fps)).limit_denominator(1001)
    _, size = output_geometry(info.width, info.height, limits.max_side, square)
    expected = max(1, round(info.duration * float(rate)) or info.frames)
    try:
        with (
            open_clip(source) as src,
            av.open(
                str(target),
                "w",
                format="gif" if output == "gif" else "mp4",
                options={"movflags": "+faststart"} if output == "mp4" else {},
            ) as out,
        ):
            stream = _video_stream(out, output, rate, size)
            audio_in = src.streams.audio[0] if src.streams.audio else None
            audio_out = None
            if (
                output == "mp4"
                and audio_in is not None
                and audio_in.codec_context.name in MP4_AUDIO
            ):
                audio_out = out.add_stream_from_template(audio_in)

            def remux(packet: Any) -> None:
                if audio_out is not None and packet.stream is audio_in:
                    packet.stream = audio_out
                    out.mux(packet)

            count = 0
            for frame in source_frames(src, info, limits, square, remux if audio_out else None):
                if cancel is not None and cancel.is_set():
                    raise VideoCancelled()
                painted = blend(frame, paint(frame))
                picture = av.VideoFrame.from_ndarray(painted, format="rgb24")
                picture.pts = count
                picture.time_base = 1 / rate
                out.mux(stream.encode(picture))
                count += 1
                if progress is not None:
                    progress(min(1.0, count / expected))
            if count == 0:
                raise VideoRejected("no_frames")
            out.mux(stream.encode(None))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise
    return ClipResult(
        width=size[0],
        height=size[1],
        fps=float(rate),
        duration=count / float(rate),
        frames=count,
        has_audio=audio_out is not None,
        seconds=time.perf_counter() - started,
    )


def _video_stream(out: Any, output: str, rate: Fraction, size: tuple[int, int]) -> Any:
    if output == "gif":
        stream = out.add_stream("gif", rate=rate)
        stream.pix_fmt = "rgb8"
    else:
        stream = out.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        # fast enough not to matter beside the painting; crf 20: no visible loss
        stream.options = {"crf": "20", "preset": "veryfast"}
    stream.width, stream.height = size
    stream.time_base = 1 / rate
    return stream
