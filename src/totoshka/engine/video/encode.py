"""The painted clip on disk: H.264 MP4 with the source's sound, or an animated GIF.

MP4: H.264, yuv420p (what every phone and Telegram plays), ``+faststart`` (the
index first, so it plays while it downloads), at the source's rate or the cap.
The audio stream is remuxed packet by packet — copied untouched, never
re-encoded — when MP4 can hold its codec. ``gif``: FFmpeg's GIF encoder at the
clip's rate, for a GIF that should stay a GIF on disk.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import numpy as np

# audio codecs the MP4 muxer takes as they are; others are left out
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"})


class ClipWriter:
    """A context manager: `audio_from(stream)`, then `write(frame)` per frame, then
    `close()` flushes the encoder (on leaving the block without an error)."""

    def __init__(
        self,
        target: Path,
        output: Literal["mp4", "gif"],
        rate: Fraction,
        size: tuple[int, int],
    ) -> None:
        self.output = output
        self.rate = rate
        options = {"movflags": "+faststart"} if output == "mp4" else {}
        self.container = av.open(str(target), "w", format=output, options=options)
        self.stream = self._video_stream(size)
        self.frames = 0
        self._audio_in: Any = None
        self._audio_out: Any = None

    def _video_stream(self, size: tuple[int, int]) -> Any:
        if self.output == "gif":
            stream = self.container.add_stream("gif", rate=self.rate)
            stream.pix_fmt = "rgb8"
        else:
            stream = self.container.add_stream("libx264", rate=self.rate)
            stream.pix_fmt = "yuv420p"
            # fast enough not to matter beside the painting; crf 20: no visible loss
            stream.options = {"crf": "20", "preset": "veryfast"}
        stream.width, stream.height = size
        stream.time_base = 1 / self.rate
        return stream

    @property
    def has_audio(self) -> bool:
        return self._audio_out is not None

    def audio_from(self, stream: Any) -> bool:
        """Copy `stream`'s packets into the output (MP4 only); whether it will."""
        if self.output != "mp4" or stream is None or stream.codec_context.name not in MP4_AUDIO:
            return False
        self._audio_in = stream
        self._audio_out = self.container.add_stream_from_template(stream)
        return True

    def remux(self, packet: Any) -> None:
        if self._audio_out is not None and packet.stream is self._audio_in:
            packet.stream = self._audio_out
            self.container.mux(packet)

    def write(self, frame: np.ndarray) -> None:
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        picture.pts = self.frames
        picture.time_base = 1 / self.rate
        self.container.mux(self.stream.encode(picture))
        self.frames += 1

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the error that got here is the one to see
            self.close(flush=False)
