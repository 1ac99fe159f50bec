"""Turning a file reference (upload, ``file_id`` or URL) into a message's media object.

Both directions use this: the bot's ``sendPhoto``/``sendDocument``/... and the
control API when a simulated user sends media. Photos go through Pillow
(:mod:`totoshka.emulator.media`) so that the bot receives Telegram's list of
JPEG ``PhotoSize`` variants; other media are stored as sent, with the minimal
shape the Bot API documents for them.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from typing import Any

from totoshka.emulator.errors import (
    URL_CONTENT_FAILED,
    WRONG_FILE_ID,
    bad_request,
    entity_too_large,
)
from totoshka.emulator.limits import Limits
from totoshka.emulator.media import image_size, photo_variants
from totoshka.emulator.params import Upload
from totoshka.emulator.state import FileStore, StoredFile

_TYPE_NAMES = {
    "photo": "Photo",
    "document": "Document",
    "sticker": "Sticker",
    "voice": "VoiceNote",
    "video": "Video",
    "audio": "Audio",
    "thumbnail": "Thumbnail",
}
_DEFAULT_MIME = {"voice": "audio/ogg", "video": "video/mp4", "audio": "audio/mpeg"}
_THUMBNAIL_BOX = (320,)


def clean_file_name(name: str | None) -> str | None:
    if not name:
        return None
    name = re.split(r"[\\/]", name)[-1].strip()
    return name or None


def guess_mime(file_name: str | None, fallback: str | None) -> str:
    if file_name:
        guessed, _ = mimetypes.guess_type(file_name, strict=False)
        if guessed:
            return guessed
    if fallback and fallback != "application/octet-stream" and "/" in fallback:
        return fallback
    return "application/octet-stream"


def _lookup(files: FileStore, reference: str, kind: str) -> StoredFile:
    stored = files.get(reference)
    if stored is None:
        if "://" in reference or "." in reference:
            raise bad_request(URL_CONTENT_FAILED)  # the emulator reaches no web servers
        raise bad_request(WRONG_FILE_ID)
    if stored.kind != kind:
        raise bad_request(
            f"can't use file of type {_TYPE_NAMES.get(stored.kind, stored.kind)} as "
            f"{_TYPE_NAMES.get(kind, kind)}"
        )
    return stored


class Attachments:
    """Stores incoming media in a :class:`FileStore` and renders Bot API media objects."""

    def __init__(self, files: FileStore, limits: Limits) -> None:
        self.files = files
        self.limits = limits

    async def photo(
        self, reference: Upload | str | None, *, boxes: tuple[int, ...] | None = None
    ) -> list[dict[str, Any]]:
        """``Message.photo``: the PhotoSize list, smallest first."""
        if reference is None:
            raise bad_request("there is no photo in the request")
        if isinstance(reference, str):
            sizes = self.files.photo_sizes(_lookup(self.files, reference, "photo"))
            return [size.photo_size_json() for size in sizes]
        data = reference.data
        if not data:
            raise bad_request("file must be non-empty")
        if len(data) > self.limits.photo_upload_bytes:
            raise bad_request(
                f"file of size {len(data)} bytes is too big for a photo; the maximum size is "
                f"{self.limits.photo_upload_bytes} bytes"
            )
        variants = await asyncio.to_thread(
            photo_variants, data, boxes or self.limits.bot_photo_boxes, self.limits
        )
        sizes = self.files.add_photo([(v.data, v.width, v.height) for v in variants])
        return [size.photo_size_json() for size in sizes]

    async def media(
        self, kind: str, reference: Upload | str | None, **attributes: Any
    ) -> dict[str, Any]:
        """A Document / Sticker / Voice / Video / Audio object for ``Message.<kind>``."""
        if reference is None:
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(reference, str):
            return await self.render(_lookup(self.files, reference, kind))
        if not reference.data:
            raise bad_request("file must be non-empty")
        if len(reference.data) > self.limits.upload_bytes:
            raise entity_too_large()
        file_name = clean_file_name(reference.filename)
        mime = guess_mime(file_name, reference.content_type or _DEFAULT_MIME.get(kind))
        if kind in _DEFAULT_MIME and not mime.startswith(_DEFAULT_MIME[kind].split("/")[0]):
            mime = _DEFAULT_MIME[kind]
        meta: dict[str, Any] = {"mime_type": mime}
        if kind in ("document", "video", "audio"):
            meta["file_name"] = file_name
        if kind == "sticker":
            meta["mime_type"] = None
            size = image_size(reference.data)
            meta["width"], meta["height"] = size or (512, 512)
        for name in ("width", "height", "duration"):
            if attributes.get(name) is not None:
                meta[name] = attributes[name]
        stored = self.files.add(kind, reference.data, **meta)
        return await self.render(stored, thumbnail_source=reference.data, **attributes)

    async def render(
        self, stored: StoredFile, *, thumbnail_source: bytes | None = None, **attributes: Any
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        kind = stored.kind
        if kind == "sticker":
            data.update(
                type="regular",
                width=stored.width or 512,
                height=stored.height or 512,
                is_animated=False,
                is_video=False,
            )
            if attributes.get("emoji"):
                data["emoji"] = attributes["emoji"]
        if kind in ("video", "voice", "audio"):
            data["duration"] = stored.duration or 0
        if kind == "video":
            data.update(width=stored.width or 0, height=stored.height or 0)
        if kind == "audio":
            for name in ("performer", "title"):
                if attributes.get(name):
                    data[name] = attributes[name]
        if stored.file_name and kind in ("document", "video", "audio"):
            data["file_name"] = stored.file_name
        if stored.mime_type and kind != "sticker":
            data["mime_type"] = stored.mime_type
        data["file_size"] = stored.size
        if kind == "document" and thumbnail_source is not None:
            thumb = await self._thumbnail(thumbnail_source, stored.mime_type)
            if thumb is not None:
                data["thumbnail"] = thumb
                data["thumb"] = thumb
        return data

    async def _thumbnail(self, data: bytes, mime: str | None) -> dict[str, Any] | None:
        """Telegram previews image documents with a ≤320 px JPEG thumbnail."""
        if not mime or not mime.startswith("image/") or len(data) > self.limits.photo_upload_bytes:
            return None
        try:
            variants = await asyncio.to_thread(photo_variants, data, _THUMBNAIL_BOX, self.limits)
        except Exception:  # any unreadable image simply gets no preview, as in Telegram
            return None
        variant = variants[-1]
        stored = self.files.add(
            "thumbnail",
            variant.data,
            width=variant.width,
            height=variant.height,
            mime_type="image/jpeg",
        )
        return stored.photo_size_json()
