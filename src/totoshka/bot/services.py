"""What the handlers use besides Telegram: the offered styles, the gallery and the queue.

One `Services` object is built at start-up by the composition root and reaches
handlers through the dispatcher's workflow data (by parameter name), so nothing
here is module-level state and two bots in one process (tests) never share anything.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.fsm.storage.memory import SimpleEventIsolation

from totoshka.bot.gallery import Gallery
from totoshka.bot.job import CLIP_KINDS, JobPayload
from totoshka.bot.retry import RetryPolicy
from totoshka.bot.status_board import StatusBoard, Tracked
from totoshka.bot.texts import Texts, Translator
from totoshka.config import Settings
from totoshka.jobs.queue import JobQueue, JobState, QueueUnavailable, TooManyPending
from totoshka.observability import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lane:
    """A queue and the board that shows places in it: photos have one, clips another
    (in the embedded mode), so a minute-long clip never holds up anyone's photo."""

    queue: JobQueue
    board: StatusBoard | None
    name: str = "photos"  # the lane's label in metrics and /readyz


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
    retry: RetryPolicy
    board: StatusBoard | None = None
    clip_queue: JobQueue | None = None  # the clips' lane; None: they share the queue
    clip_board: StatusBoard | None = None
    # style id -> the offered styles it mixes with (one shared network: see engine.mixing)
    partners: dict[str, list[str]] = field(default_factory=dict)
    # per-conversation locks for FSM data edits (see `Conversation.edit_data`)
    state_locks: BaseEventIsolation = field(default_factory=SimpleEventIsolation)
    metrics: Metrics | None = None  # counts accepted jobs per lane

    def lanes(self) -> list[Lane]:
        lanes = [Lane(self.queue, self.board)]
        if self.clip_queue is not None:
            lanes.append(Lane(self.clip_queue, self.clip_board, "clips"))
        return lanes

    def lane_for(self, kind: str) -> Lane:
        if kind in CLIP_KINDS and self.clip_queue is not None:
            return Lane(self.clip_queue, self.clip_board, "clips")
        return Lane(self.queue, self.board)

    async def clip_running(self, job_id: str | None) -> bool:
        """Whether the user's last clip (its job id, from the conversation) is painting."""
        if not job_id:
            return False
        get = getattr(self.lane_for("video").queue, "get", None)
        record = await asyncio.to_thread(get, job_id) if get else None
        return record is not None and record.state == JobState.RUNNING

    def style_buttons(self, lang: str) -> list[tuple[str, str]]:
        return [(sid, titles.get(lang) or titles["en"]) for sid, titles in self.styles]

    def mix_partners(self, style_id: str, lang: str) -> list[tuple[str, str]]:
        """(id, title) of the offered styles `style_id` mixes with, in picker order."""
        titles = dict(self.style_buttons(lang))
        return [(sid, titles[sid]) for sid in self.partners.get(style_id, []) if sid in titles]

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
        dedupe_key: str | None,
        reply_to: int | None = None,
    ) -> Submitted:
        """Queue a job behind ONE status message that the job then keeps editing.

        Order matters: the status message exists before the job is durable (the
        payload carries its id), and a refused job turns it into the explanation.
        """
        limit = self.settings.max_pending
        user_key = str(job.user_id)
        lane = self.lane_for(job.kind)
        pending = sum(
            [await asyncio.to_thread(each.queue.pending_count, user_key) for each in self.lanes()]
        )
        if pending >= limit:
            await bot.send_message(job.chat_id, t("too_many_pending", limit=limit))
            return Submitted(None, refused=True)
        reply = {"message_id": reply_to, "allow_sending_without_reply": True} if reply_to else None
        # The photo is only safe once the job is queued: ride out a brief flood wait here.
        status = await self.retry.brief().call(
            "sendMessage",
            lambda: bot.send_message(job.chat_id, t("status_accepted"), reply_parameters=reply),
        )
        job.status_message_id = status.message_id
        try:
            result = await asyncio.to_thread(
                lane.queue.submit,
                user_key,
                job.model_dump(),
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
        except QueueUnavailable as exc:  # refused whole (the queue withdrew it): say so
            log.warning("job not queued: %s", exc)
            await bot.edit_message_text(
                text=t("status_unqueued"), chat_id=job.chat_id, message_id=status.message_id
            )
            return Submitted(None, refused=True)
        if result.duplicate:
            await bot.delete_message(job.chat_id, status.message_id)
            return Submitted(result.job_id)
        if self.metrics is not None:
            self.metrics.jobs_queued.labels(lane.name).inc()
        tracked = Tracked(job.chat_id, status.message_id, t.lang)
        if lane.board is not None:
            await lane.board.track(result.job_id, tracked)
        elif result.position >= 1:
            await bot.edit_message_text(
                text=t("status_queued", position=result.position),
                chat_id=job.chat_id,
                message_id=status.message_id,
            )
        return Submitted(result.job_id)
