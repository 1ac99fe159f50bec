"""Frames out of a clip, one at a time, already at the output's size and rate.

Decoding is streaming: `source_frames` is a generator over the demuxed packets,
so a 60-second clip never has more than one decoded frame alive here. Frames
above the rate cap are dropped on a regular grid (a 60-fps clip keeps every other
frame), so the output plays at the same speed. `sample_frames` seeks to a few
points of the clip for methods that look at the whole clip first (shared norm
statistics): a handful of seeks, not a second decode of the whole clip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from totoshka.engine.video.clip import ClipInfo, VideoLimits, open_clip, output_geometry


def fit(rgb: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Crop to `box` (x, y, w, h) and scale to `size` (w, h): INTER_AREA, no aliasing."""
    x, y, w, h = box
    if (w, h) != (rgb.shape[1], rgb.shape[0]):
        rgb = rgb[y : y + h, x : x + w]
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def source_frames(
    container: Any,
    info: ClipInfo,
    limits: VideoLimits,
    square: bool,
    on_packet: Callable[[Any], None] | None = None,
) -> Iterator[np.ndarray]:
    """The clip's frames as HWC uint8 RGB at the output size and rate, one at a time;
    ``on_packet`` receives every audio packet as it is demuxed."""
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
            yield fit(frame.to_ndarray(format="rgb24"), box, size)


def sample_frames(
    path: Any, info: ClipInfo, limits: VideoLimits, square: bool, count: int
) -> list[np.ndarray]:
    """`count` frames spread evenly over the clip (the first one included), at the
    output size; fewer for a clip with fewer frames."""
    box, size = output_geometry(info.width, info.height, limits.max_side, square)
    span = max(0.0, info.duration - 1.0 / max(info.fps, 1.0))
    times = [span * i / max(1, count - 1) for i in range(count)]
    found: list[np.ndarray] = []
    with open_clip(path) as container:
        video = container.streams.video[0]
        for t in times:
            if t > 0 and video.time_base is not None:
                try:
                    container.seek(int(t / video.time_base), stream=video, backward=True)
                except Exception:  # a stream that cannot seek: what was found so far
                    break
            frame = _first_at(container, video, t)
            if frame is None:
                break
            found.append(fit(frame.to_ndarray(format="rgb24"), box, size))
    return found


def _first_at(container: Any, video: Any, t: float) -> Any:
    """The first decoded frame at or after `t` (the last one before the end if none)."""
    last = None
    for frame in container.decode(video):
        last = frame
        if frame.time is None or frame.time + 1e-6 >= t:
            return frame
    return last
