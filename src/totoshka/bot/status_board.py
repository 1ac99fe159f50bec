"""The one status message per queued job, kept showing the job's place in line."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from totoshka.bot.texts import Texts
from totoshka.jobs.queue import JobQueue

log = logging.getLogger(__name__)


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
    the two, so a late "place 3" edit can never overwrite "working". In Celery mode
    the bot refreshes on a timer instead and the workers are other processes, so a
    "place 1" edit can land just after "working"; the worker's next edit (done, or
    a clip's progress) comes seconds later and puts it right.

    A job the queue no longer knows at all was lost with its store (Redis restarted
    without persistence): its user is told to send the photo again, rather than
    being left at "place N" for ever.
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

    def _lost(self, job_id: str) -> bool:
        """The queue no longer knows a job it accepted: its store was emptied (a Redis
        restart without persistence). Started or finished jobs keep their record."""
        return self.queue.get(job_id) is None

    async def _tell_lost(self, job_id: str, tracked: Tracked) -> None:
        log.warning("job %s vanished from the queue; its user is told", job_id)
        try:
            await self.bot.edit_message_text(
                text=self.texts.get(tracked.lang, "status_lost"),
                chat_id=tracked.chat_id,
                message_id=tracked.message_id,
            )
        except TelegramAPIError as e:
            log.warning("could not tell the user of lost job %s: %s", job_id, e)

    async def _update(self, job_id: str) -> None:
        async with self._lock(job_id):
            tracked = self._jobs.get(job_id)
            if tracked is None:
                return
            position = await asyncio.to_thread(self.queue.position, job_id)
            if position is None or position < 1:  # started, finished, cancelled... or lost
                self._jobs.pop(job_id, None)
                self._locks.pop(job_id, None)
                if await asyncio.to_thread(self._lost, job_id):
                    await self._tell_lost(job_id, tracked)
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
