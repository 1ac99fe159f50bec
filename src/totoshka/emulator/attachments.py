"""Turning a file reference (upload, ``file_id`` or URL) into a message's media object.

Both directions use this: the bot's ``sendPhoto``/``sendDocument``/... and the
control API when a simulated user sends media. Photos go through Pillow
(:mod:`totoshka.emulator.media`) so that the bot receives Telegram's list of
JPEG ``PhotoSize`` variants; clips and stickers are looked into
(:mod:`totoshka.emulator.clips`: sizes, length, a JPEG preview, GIF animations
re-encoded as MP4); other media are stored as sent.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from typing import Any

from totoshka.emulator import clips
from totoshka.emulator.errors import (
    URL_CONTENT_FAILED,
    WRONG_FILE_ID,
    bad_request,
    entity_too_large,
)
from totoshka.emulator.limits import Limits
from totoshka.emulator.media import photo_variants
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
    "animation": "Animation",
    "video_note": "VideoNote",
}
_DEFAULT_MIME = {
    "voice": "audio/ogg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "video_note": "video/mp4",
}
_THUMBNAIL_BOX = (320,)
_CLIP_SIZES = ("width", "height", "duration")
# Kinds whose files Telegram looks into for their sizes, length and a preview.
_LOOKED_INTO = ("animation", "video", "video_note", "sticker")
# Documents that are clips get the same look (a GIF or MP4 sent "as a file").
_CLIP_DOCUMENTS = frozenset({clips.GIF, clips.MP4, clips.WEBM, "video/quicktime"})
_NAMED = ("document", "video", "audio", "animation")


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

    async def content(
        self, kind: str, reference: Upload | str | None, **attributes: Any
    ) -> dict[str, Any]:
        """The message fields one file of ``kind`` becomes.

        An animation comes twice, as ``animation`` and as ``document`` (without its
        sizes), because the Bot API keeps serving bots that predate animations.
        """
        media = await self.media(kind, reference, **attributes)
        content: dict[str, Any] = {kind: media}
        if kind == "animation":
            content["document"] = {k: v for k, v in media.items() if k not in _CLIP_SIZES}
        return content

    async def media(
        self, kind: str, reference: Upload | str | None, **attributes: Any
    ) -> dict[str, Any]:
        """A Document / Sticker / Voice / Video / VideoNote / Animation / Audio object."""
        if reference is None:
            raise bad_request(f"there is no {kind.replace('_', ' ')} in the request")
        if isinstance(reference, str):
            return await self.render(_lookup(self.files, reference, kind), **attributes)
        data = reference.data
        if not data:
            raise bad_request("file must be non-empty")
        if len(data) > self.limits.upload_bytes:
            raise entity_too_large()
        file_name = clean_file_name(reference.filename)
        mime = guess_mime(file_name, reference.content_type or _DEFAULT_MIME.get(kind))
        if kind in _DEFAULT_MIME and not mime.startswith(_DEFAULT_MIME[kind].split("/")[0]):
            mime = _DEFAULT_MIME[kind]
        info = None
        if kind in _LOOKED_INTO or (kind == "document" and mime in _CLIP_DOCUMENTS):
            info = await asyncio.to_thread(clips.facts, data, mime)
            if kind == "animation" and info.mime_type == clips.GIF:
                converted = await asyncio.to_thread(clips.gif_to_mp4, data)
                if converted is not None:  # what Telegram does to every GIF animation
                    data, file_name = converted, f"{file_name or 'animation.gif'}.mp4"
                    info = await asyncio.to_thread(clips.facts, data, clips.MP4)
            if kind != "document" and info.mime_type:
                mime = info.mime_type
        meta: dict[str, Any] = {"mime_type": mime}
        if kind in _NAMED:
            meta["file_name"] = file_name
        if info is not None:
            meta.update(width=info.width, height=info.height, duration=info.duration)
        if kind == "sticker":
            meta["sticker_format"] = _sticker_format(mime, attributes)
        if kind == "video_note":  # round: the given length, else the file's shorter side
            sides = [side for side in (meta.get("width"), meta.get("height")) if side]
            meta["width"] = meta["height"] = attributes.get("length") or min(sides, default=None)
        for name in _CLIP_SIZES:
            if attributes.get(name) is not None:  # the sender's word counts, as in Telegram
                meta[name] = attributes[name]
        stored = self.files.add(kind, data, **meta)
        if kind != "sticker":
            frame = info.thumbnail if info is not None else None
            stored.thumbnail = await self._thumbnail(frame or data, "image/png" if frame else mime)
        return await self.render(stored, **attributes)

    async def render(self, stored: StoredFile, **attributes: Any) -> dict[str, Any]:
        """The Bot API object of a stored file (a ``file_id`` sent again renders the same)."""
        data: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        kind = stored.kind
        if kind == "sticker":
            sticker_format = stored.sticker_format or "static"
            data.update(
                width=stored.width or 512,
                height=stored.height or 512,
                type="regular",
                is_animated=sticker_format == "animated",
                is_video=sticker_format == "video",
            )
            if attributes.get("emoji"):
                data["emoji"] = attributes["emoji"]
        if kind in ("video", "voice", "audio", "animation", "video_note"):
            data["duration"] = stored.duration or 0
        if kind in ("video", "animation"):
            data.update(width=stored.width or 0, height=stored.height or 0)
        if kind == "video_note":
            data["length"] = stored.width or 0
        if kind == "audio":
            for name in ("performer", "title"):
                if attributes.get(name):
                    data[name] = attributes[name]
        if stored.file_name and kind in _NAMED:
            data["file_name"] = stored.file_name
        if stored.mime_type and kind not in ("sticker", "video_note"):
            data["mime_type"] = stored.mime_type
        if stored.thumbnail is not None:
            data["thumbnail"] = data["thumb"] = stored.thumbnail.photo_size_json()
        data["file_size"] = stored.size
        return data

    async def _thumbnail(self, data: bytes, mime: str | None) -> StoredFile | None:
        """Telegram previews images and clips (their first frame) with a ≤320 px JPEG."""
        if not mime or not mime.startswith("image/") or len(data) > self.limits.photo_upload_bytes:
            return None
        try:
            variants = await asyncio.to_thread(photo_variants, data, _THUMBNAIL_BOX, self.limits)
        except Exception:  # any unreadable image simply gets no preview, as in Telegram
            return None
        variant = variants[-1]
        return self.files.add(
            "thumbnail",
            variant.data,
            width=variant.width,
            height=variant.height,
            mime_type="image/jpeg",
        )


def _sticker_format(mime: str, attributes: dict[str, Any]) -> str:
    """Telegram tells a sticker's format from the file: WebP, Lottie .tgs or WebM."""
    if mime == clips.TGS or attributes.get("is_animated"):
        return "animated"
    if mime.startswith("video/") or attributes.get("is_video"):
        return "video"
    return "static"
