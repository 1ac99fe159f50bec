"""The style gallery: previews the project renders itself, once, and keeps on disk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.types import FSInputFile, InputMediaPhoto
from PIL import Image

from totoshka.assets import sample_photo
from totoshka.engine.imageio import encode_image

log = logging.getLogger(__name__)


class Gallery:
    """Style previews the project renders itself, once, and keeps on disk.

    The source is a public-domain photograph (NASA's astronaut portrait of Eileen
    Collins, from scikit-image's samples; a 384 px copy ships in this package) so
    the gallery needs no third-party art and shows every style on the same picture.
    `painter_factory` gives what paints them (its `stylize`, as a Stylizer's: the bot
    passes the engine's torch-free painter where IRs are cached, so a missing preview
    does not load torch into a bot that otherwise never needs it).
    Rendering runs in a thread, never in the event loop; Telegram file ids of
    uploaded previews are remembered so later /styles calls resend without
    uploading again.
    """

    def __init__(
        self,
        folder: Path,
        painter_factory: Callable[[], Any],
        styles: list[tuple[str, dict[str, str]]],
        size: int = 384,
    ) -> None:
        self.folder = folder
        self._painter_factory = painter_factory
        self.styles = styles
        self.size = size
        self._lock = asyncio.Lock()
        self.file_ids: dict[str, str] = {}

    def path(self, style_id: str) -> Path:
        return self.folder / f"{style_id}-{self.size}.jpg"

    @staticmethod
    def source_image() -> Image.Image:
        """The astronaut portrait, shipped in the package (384 px, from scikit-image's
        public-domain sample) so previews need no extra dependency."""
        return sample_photo()

    def missing(self, only: list[str] | None = None) -> list[str]:
        return [
            sid
            for sid, _ in self.styles
            if (only is None or sid in only) and not self.path(sid).exists()
        ]

    async def ensure(self, only: list[str] | None = None) -> list[str]:
        """Render the previews (of `only`, else all) not yet on disk; return the ids
        that have one, in the picker's order."""
        async with self._lock:
            todo = self.missing(only)
            if todo:
                await asyncio.to_thread(self._render, todo)
        return [
            sid
            for sid, _ in self.styles
            if (only is None or sid in only) and self.path(sid).exists()
        ]

    def _render(self, style_ids: list[str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        painter = self._painter_factory()
        source = self.source_image()
        for sid in style_ids:
            try:
                image = painter.stylize(source, sid, max_side=self.size)
            except Exception as e:  # a style whose weights are absent has no preview
                log.warning("no preview for %s: %s", sid, e)
                continue
            target = self.path(sid)
            tmp = target.with_suffix(".partial")
            tmp.write_bytes(encode_image(image, "jpeg", 88))
            tmp.replace(target)

    async def send(self, bot: Bot, chat_id: int, lang: str, only: list[str] | None = None) -> int:
        """Send the previews (of the styles in `only`, else all) as albums of up to
        ten, each captioned with its title."""
        ready = await self.ensure(only)
        titles = dict(self.styles)
        sent = 0
        for start in range(0, len(ready), 10):
            chunk = ready[start : start + 10]
            media = [
                InputMediaPhoto(
                    media=self.file_ids.get(sid) or FSInputFile(self.path(sid)),
                    caption=titles[sid].get(lang) or titles[sid]["en"],
                )
                for sid in chunk
            ]
            if len(media) == 1:
                messages = [await bot.send_photo(chat_id, media[0].media, caption=media[0].caption)]
            else:
                messages = await bot.send_media_group(chat_id, media)
            for sid, message in zip(chunk, messages, strict=False):
                if message.photo:
                    self.file_ids[sid] = message.photo[-1].file_id
            sent += len(chunk)
        return sent
