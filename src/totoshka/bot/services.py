"""What the handlers use besides Telegram: queueing jobs, the status line, the gallery.

One `Services` object is built at start-up and reaches handlers through the
dispatcher's workflow data (by parameter name), so nothing here is module-level
state and two bots in one process (tests) never share anything.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import FSInputFile, InputMediaPhoto, Message
from PIL import Image

from totoshka.assets import sample_photo
from totoshka.bot.delivery import JobPayload, telegram_call
from totoshka.bot.texts import Texts, Translator
from totoshka.config import Settings
from totoshka.jobs.queue import JobQueue, TooManyPending

log = logging.getLogger(__name__)

PHOTOS_KEPT = 10  # photos a conversation remembers (for "another style")
RESULTS_KEPT = 20  # results whose buttons still work


def new_ref() -> str:
    """A short random key; fits callback data many times over."""
    return secrets.token_hex(4)


@dataclass
class Tracked:
    chat_id: int
    message_id: int
    lang: str
    position: int | None = None


class StatusBoard:
    """Keeps each queued job's status message showing its current place in line.

    The worker pool calls `refresh` when places may have moved (``on_change``); the
    delivery calls `claim` before its first "working" edit. A lock per job orders
    the two, so a late "place 3" edit can never overwrite "working".
    """

    def __init__(self, bot: Bot, queue: JobQueue, texts: Texts) -> None:
        self.bot = bot
        self.queue = queue
        self.texts = texts
        self._jobs: dict[str, Tracked] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

    async def track(self, job_id: str, tracked: Tracked) -> None:
        self._jobs[job_id] = tracked
        await self._update(job_id)

    def forget(self, job_id: str) -> Tracked | None:
        """Stop tracking (the job was cancelled); returns what was tracked."""
        self._locks.pop(job_id, None)
        return self._jobs.pop(job_id, None)

    async def claim(self, job_id: str) -> None:
        """The job has started: stop editing its status from here."""
        async with self._lock(job_id):
            self._jobs.pop(job_id, None)
        self._locks.pop(job_id, None)

    async def refresh(self) -> None:
        for job_id in list(self._jobs):
            await self._update(job_id)

    async def _update(self, job_id: str) -> None:
        async with self._lock(job_id):
            tracked = self._jobs.get(job_id)
            if tracked is None:
                return
            position = await asyncio.to_thread(self.queue.position, job_id)
            if position is None or position < 1:  # started, finished or cancelled
                self._jobs.pop(job_id, None)
                self._locks.pop(job_id, None)
                return
            if position == tracked.position:
                return
            tracked.position = position
            text = self.texts.get(tracked.lang, "status_queued", position=position)
            try:
                await self.bot.edit_message_text(
                    text=text, chat_id=tracked.chat_id, message_id=tracked.message_id
                )
            except TelegramAPIError as e:  # a status line is best effort
                log.debug("status refresh skipped: %s", e)


@dataclass
class Submitted:
    job_id: str | None
    refused: bool = False


@dataclass
class Services:
    settings: Settings
    texts: Texts
    queue: JobQueue
    styles: list[tuple[str, dict[str, str]]]  # (id, titles) offered in the picker
    gallery: Gallery
    board: StatusBoard | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def style_buttons(self, lang: str) -> list[tuple[str, str]]:
        return [(sid, titles.get(lang) or titles["en"]) for sid, titles in self.styles]

    def style_title(self, style_id: str, lang: str) -> str | None:
        for sid, titles in self.styles:
            if sid == style_id:
                return titles.get(lang) or titles["en"]
        return None

    async def submit(
        self,
        bot: Bot,
        t: Translator,
        job: JobPayload,
        *,
        user_key: str,
        dedupe_key: str | None,
        reply_to: Message | None = None,
    ) -> Submitted:
        """Queue a job behind ONE status message that the job then keeps editing.

        Order matters: the status message exists before the job is durable (the
        payload carries its id), and a refused job turns it into the explanation.
        """
        limit = self.settings.max_pending
        pending = await asyncio.to_thread(self.queue.pending_count, user_key)
        if pending >= limit:
            await bot.send_message(job.chat_id, t("too_many_pending", limit=limit))
            return Submitted(None, refused=True)
        reply = (
            {"message_id": reply_to.message_id, "allow_sending_without_reply": True}
            if reply_to
            else None
        )
        # The photo is only safe once the job is queued: ride out a brief flood wait here.
        status = await telegram_call(
            lambda: bot.send_message(job.chat_id, t("status_accepted"), reply_parameters=reply),
            retries=3,
            what="sendMessage",
            max_inline_wait=5.0,
        )
        job.status_message_id = status.message_id
        try:
            result = await asyncio.to_thread(
                self.queue.submit,
                user_key,
                job.to_dict(),
                max_pending=limit,
                dedupe_key=dedupe_key,
            )
        except TooManyPending:
            await bot.edit_message_text(
                text=t("too_many_pending", limit=limit),
                chat_id=job.chat_id,
                message_id=status.message_id,
            )
            return Submitted(None, refused=True)
        if result.duplicate:
            await bot.delete_message(job.chat_id, status.message_id)
            return Submitted(result.job_id)
        tracked = Tracked(job.chat_id, status.message_id, t.lang)
        if self.board is not None:
            await self.board.track(result.job_id, tracked)
        elif result.position >= 1:
            await bot.edit_message_text(
                text=t("status_queued", position=result.position),
                chat_id=job.chat_id,
                message_id=status.message_id,
            )
        return Submitted(result.job_id)


class Gallery:
    """Style previews the project renders itself, once, and keeps on disk.

    The source is a public-domain photograph (NASA's astronaut portrait of Eileen
    Collins, from scikit-image's samples; a 384 px copy ships in this package) so
    the gallery needs no third-party art and shows every style on the same picture.
    Rendering runs in a thread, never in the event loop; Telegram file ids of
    uploaded previews are remembered so later /styles calls resend without
    uploading again.
    """

    def __init__(
        self,
        folder: Path,
        stylizer_factory: Callable[[], Any],
        styles: list[tuple[str, dict[str, str]]],
        size: int = 384,
    ) -> None:
        self.folder = folder
        self._stylizer_factory = stylizer_factory
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

    def missing(self) -> list[str]:
        return [sid for sid, _ in self.styles if not self.path(sid).exists()]

    async def ensure(self) -> list[str]:
        """Render the previews not yet on disk; return the ids that have one."""
        async with self._lock:
            todo = self.missing()
            if todo:
                await asyncio.to_thread(self._render, todo)
        return [sid for sid, _ in self.styles if self.path(sid).exists()]

    def _render(self, style_ids: list[str]) -> None:
        from totoshka.engine.imageio import encode_image

        self.folder.mkdir(parents=True, exist_ok=True)
        stylizer = self._stylizer_factory()
        source = self.source_image()
        for sid in style_ids:
            try:
                image = stylizer.stylize(source, sid, max_side=self.size)
            except Exception as e:  # a style whose weights are absent has no preview
                log.warning("no preview for %s: %s", sid, e)
                continue
            target = self.path(sid)
            tmp = target.with_suffix(".partial")
            tmp.write_bytes(encode_image(image, "jpeg", 88))
            tmp.replace(target)

    async def send(self, bot: Bot, chat_id: int, lang: str) -> int:
        """Send the previews as albums of up to ten, each captioned with its title."""
        ready = await self.ensure()
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
