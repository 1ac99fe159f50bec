"""Why a clip is not painted: a refusal the user can act on, or their own /cancel."""

from __future__ import annotations

from typing import Any

from totoshka.engine.errors import EngineError

REASONS = {
    "not_video": "the file is not a clip FFmpeg can read",
    "no_frames": "the clip has no picture in it",
    "too_long": "the clip is {seconds:.0f} s long; the limit is {limit:.0f} s",
}


class VideoRejected(EngineError):
    """A clip refused before or while painting; ``reason`` is one of `REASONS`."""

    code = "bad_clip"

    def __init__(self, reason: str, **values: Any) -> None:
        super().__init__(REASONS[reason].format(**values))
        self.reason = reason
        self.values = values


class VideoCancelled(EngineError):
    """The caller's cancel event was set: the painting stopped, the target removed."""

    code = "cancelled"

    def __init__(self) -> None:
        super().__init__("cancelled")
