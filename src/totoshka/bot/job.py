"""What one painting job is: its payload, the picture it asks for, and Telegram's limits.

Both sides of the queue read this module — the handlers that build a job and the
job handler that runs it, possibly on another machine — so it depends on neither.
The payload travels as JSON (SQLite or Redis), and a record written by an older
version must still load: unknown keys are ignored and every added field has a default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Telegram's limits for sendPhoto (https://core.telegram.org/bots/api#sendphoto).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20.0
# getFile: the Bot API refuses to hand out files above 20 MB.
DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024
# sendVideo, sendAnimation, sendDocument...: a bot uploads at most 50 MB.
UPLOAD_MAX_BYTES = 50 * 1024 * 1024

# What the user sent, and so what comes back: each kind is answered with its own
# send method (sendPhoto, sendAnimation, sendVideo, sendVideoNote, sendSticker).
MediaKind = Literal["photo", "animation", "video", "video_note", "sticker"]
# The kinds painted frame by frame: they take a lane of their own (see wiring).
CLIP_KINDS = frozenset({"animation", "video", "video_note"})


class PaintSpec(BaseModel):
    """What to paint, as the buttons under a result can repeat it with one change.

    It is kept in the conversation's FSM data under the result's ref, so a field
    left out means "the user's preference at the time the job is queued".
    """

    model_config = ConfigDict(extra="ignore")

    photo: str  # file_id of the photo (or image document, clip, sticker)
    kind: MediaKind = "photo"
    style: str | None = None  # catalog style id; None for an own style
    mix_with: str | None = None  # a second catalog style of the same network, mixed in
    mix: int | None = None  # its share in percent (with mix_with)
    painting: str | None = None  # file_id of the user's painting (own style)
    painting_pid: str | None = None  # its key in the user's recent paintings
    strength: int | None = None  # percent
    preserve_colors: bool | None = None
    max_side: int | None = None  # 0 = the photo's own size
    as_document: bool = False  # the "full resolution" file


class JobPayload(BaseModel):
    """Everything a worker needs to paint and deliver one picture, and nothing more."""

    model_config = ConfigDict(extra="ignore")

    chat_id: int
    user_id: int
    lang: str
    photo: str
    status_message_id: int | None
    kind: MediaKind = "photo"
    reply_to: int | None = None
    style: str | None = None
    mix_with: str | None = None
    mix: int | None = None
    painting: str | None = None
    painting_pid: str | None = None
    vector: list[float] | None = None  # the painting's style vector, when already known
    strength: int = 100
    preserve_colors: bool = False
    max_side: int | None = 1280  # None = the photo's own size (capped by the engine)
    as_document: bool = False
    ref: str | None = None  # key of this result's spec, for the buttons under it
    extra: dict[str, Any] = Field(default_factory=dict)


class JobRequest(BaseModel):
    """A handler's request to queue one picture for a user in a chat."""

    model_config = ConfigDict(frozen=True)

    chat_id: int
    user_id: int
    spec: PaintSpec
    dedupe_key: str | None  # the update that asked, so a redelivered update is not painted twice
    reply_to: int | None = None  # message id the result answers


class JobFailed(Exception):
    """A job that cannot succeed (bad input): the user gets ``reason_key``, no retry."""

    def __init__(self, reason_key: str, **params: Any) -> None:
        super().__init__(reason_key)
        self.reason_key = reason_key
        self.params = params  # the values the text names (a limit, a size)


def photo_fits(size: tuple[int, int], nbytes: int) -> bool:
    """Whether Telegram accepts the picture as a photo (else we send a document)."""
    w, h = size
    return (
        nbytes <= PHOTO_MAX_BYTES
        and w + h <= PHOTO_MAX_SIDES_SUM
        and max(w, h) / max(1, min(w, h)) <= PHOTO_MAX_RATIO
    )
