"""What a message brings to paint: a photo, an image file, a clip or a sticker.

Telegram hands the same thing over in several shapes — a GIF arrives as a silent
MP4 ``animation`` (with a ``document`` beside it), a file sent "as a document"
keeps only its MIME type — so the handlers ask this module for one `Subject`
with the kind that decides how the result goes back. Limits that Telegram's
message already tells us about (the size, a clip's duration) are checked here,
before any download, so the user hears why at once.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

from aiogram.types import Message

from totoshka.bot.job import DOWNLOAD_MAX_BYTES, MediaKind

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic"})
# documents painted as clips: what the engine's decoder (FFmpeg) is asked to read
CLIP_TYPES: dict[str, MediaKind] = {
    "image/gif": "animation",
    "video/mp4": "video",
    "video/webm": "video",
    "video/quicktime": "video",
}
CLIP_EXTENSIONS: dict[str, MediaKind] = {
    ".gif": "animation",
    ".mp4": "video",
    ".webm": "video",
    ".mov": "video",
}


@dataclass(frozen=True)
class Subject:
    """One thing to paint: its ``file_id``, size (when Telegram says) and kind."""

    file_id: str
    size: int | None
    kind: MediaKind
    duration: int | None = None  # seconds, for clips whose message says


def _document_kind(message: Message) -> MediaKind | None:
    doc = message.document
    assert doc is not None
    name = (doc.file_name or "").lower()
    ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    mime = (doc.mime_type or mimetypes.guess_type(name)[0] or "").lower()
    if mime in CLIP_TYPES:
        return CLIP_TYPES[mime]
    if ext in CLIP_EXTENSIONS and not mime.startswith("image/"):
        return CLIP_EXTENSIONS[ext]
    if mime.startswith("image/") or ext in IMAGE_EXTENSIONS:
        return "photo"
    return None


def subject_of(message: Message, max_seconds: float | None = None) -> Subject | str | None:
    """The message's subject, a texts key saying why it cannot be painted, or None
    (nothing paintable: the message is someone else's business)."""
    if message.photo:
        largest = message.photo[-1]
        subject = Subject(largest.file_id, largest.file_size, "photo")
    elif message.animation:
        a = message.animation
        subject = Subject(a.file_id, a.file_size, "animation", a.duration)
    elif message.video:
        v = message.video
        subject = Subject(v.file_id, v.file_size, "video", v.duration)
    elif message.video_note:
        n = message.video_note
        subject = Subject(n.file_id, n.file_size, "video_note", n.duration)
    elif message.sticker:
        sticker = message.sticker
        if sticker.is_animated or sticker.is_video:
            return "sticker_animated"
        subject = Subject(sticker.file_id, sticker.file_size, "sticker")
    elif message.document:
        kind = _document_kind(message)
        if kind is None:
            return "not_an_image"
        doc = message.document
        subject = Subject(doc.file_id, doc.file_size, kind)
    else:
        return None
    if subject.size is not None and subject.size > DOWNLOAD_MAX_BYTES:
        return "file_too_big"
    too_long = max_seconds is not None and (subject.duration or 0) > max_seconds
    if too_long:
        return "clip_too_long"
    return subject


def file_size_of(message: Message) -> int | None:
    """The size Telegram gives for the message's file (for the "too big" text)."""
    for media in (message.document, message.animation, message.video, message.video_note):
        if media is not None:
            return media.file_size
    if message.sticker is not None:
        return message.sticker.file_size
    return message.photo[-1].file_size if message.photo else None
