"""Clips — GIFs, videos, round video notes — painted with any style, flicker kept down.

`probe_clip` reads a clip's header and applies the caps; `paint_clip` streams it
through a Stylizer's frame painter and a temporal consistency method into an MP4
(audio copied) or a GIF. Importing this package loads PyAV and OpenCV (not torch:
the Stylizer that paints is the caller's).
"""

from totoshka.engine.video.clip import ClipInfo, VideoLimits, probe_clip
from totoshka.engine.video.errors import VideoCancelled, VideoRejected
from totoshka.engine.video.paint import DEFAULT_METHOD, METHODS, ClipResult, paint_clip
from totoshka.engine.video.temporal import warping_error

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "ClipInfo",
    "ClipResult",
    "VideoCancelled",
    "VideoLimits",
    "VideoRejected",
    "paint_clip",
    "probe_clip",
    "warping_error",
]
