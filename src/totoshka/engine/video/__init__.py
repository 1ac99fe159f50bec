"""Clips — GIFs, videos, round video notes — painted with any style, flicker kept down.

`probe_clip` reads a clip's header and applies the caps; `paint_clip` streams it
through a Stylizer's frame painter and a temporal consistency method (`METHODS`)
into an MP4 (audio copied) or a GIF. Modules: `clip` (facts and caps), `decode`,
`encode`, `temporal` (the methods), `metrics` (how flicker is measured), `paint`.
Importing this package loads PyAV and OpenCV (not torch: the Stylizer that paints
is the caller's).
"""

from totoshka.engine.video.clip import ClipInfo, VideoLimits, probe_clip
from totoshka.engine.video.errors import VideoCancelled, VideoRejected
from totoshka.engine.video.metrics import cosine, psnr, warping_error
from totoshka.engine.video.paint import DEFAULT_METHOD, ClipResult, paint_clip
from totoshka.engine.video.temporal import METHODS

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "ClipInfo",
    "ClipResult",
    "VideoCancelled",
    "VideoLimits",
    "VideoRejected",
    "cosine",
    "paint_clip",
    "probe_clip",
    "psnr",
    "warping_error",
]
