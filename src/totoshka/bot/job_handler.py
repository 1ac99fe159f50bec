"""The job handler: fetch the photo through the Bot API, paint it, send the result.

A job is a small JSON payload (`totoshka.bot.job.JobPayload`), so the same handler
runs in the bot's process (embedded queue) or on a remote Celery worker: it needs
only a `Bot`, a stylizer factory, the texts and a `RetryPolicy`, never the
conversation that queued it. The composition root (`totoshka.bot.wiring`) builds it.

Photos, stickers and paintings' style vectors go through the engine
(`Engine.paint`, `Engine.style_vector`) when the handler knows it: a style whose IRs
are cached is then served without torch (`engine.coldpath`), each picture compiled
for its exact size, and a Celery worker that only meets such styles never loads
torch at all; anything else falls back to the engine's Stylizer, as before. Clips
take the Stylizer itself (frame by frame, one network per clip).

Execution is at least once, so every visible side effect is checkpointed right
after it happens and skipped on a re-run: the result photo (``result``) and the
final status edit (``status_done``). Telegram's temporary refusals are retried
around the one send (`RetryPolicy`), so the painted picture is not recomputed and
never sent twice; a long flood wait gives the worker slot back (`RetryLater`).

Inference, decoding and encoding run through ``ctx.run_blocking`` — never in the
event loop, which keeps answering other users while a picture is painted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, Message
from PIL import Image

from totoshka.bot import media_job
from totoshka.bot.cancel import cancel_key, cancel_requested
from totoshka.bot.job import CLIP_KINDS, DOWNLOAD_MAX_BYTES, JobFailed, JobPayload, photo_fits
from totoshka.bot.keyboards import result_keyboard
from totoshka.bot.media_job import ClipSettings
from totoshka.bot.prefs import PrefsStore
from totoshka.bot.retry import RetryPolicy
from totoshka.bot.texts import Texts, Translator
from totoshka.engine import imageio
from totoshka.engine.catalog import Catalog
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import Engine
from totoshka.engine.mixing import StyleMix, partners
from totoshka.engine.own_style import OwnStyle
from totoshka.observability import Metrics

log = logging.getLogger(__name__)


def reason_key(error: BaseException) -> str:
    """The texts key that explains ``error`` to a user."""
    if isinstance(error, JobFailed):
        return error.reason_key
    if isinstance(error, EngineError):
        code = getattr(error, "code", "")
        if code in {
            "bad_image",
            "image_too_large",
            "unknown_style",
            "model_missing",
            "mix_refused",
        }:
            return f"err_{code}"
        if code.startswith("image") or code.startswith("bad"):
            return "err_bad_image"
    return "err_generic"


def file_label(style: Any) -> str:
    """The style's part of a result's file name: its id, a mix's label, or "own"."""
    if isinstance(style, StyleMix):
        return style.label
    return style if isinstance(style, str) else "own"


class EnginePainter:
    """The engine as the handler's painter: the Stylizer's `stylize`, `style_vector` and
    `catalog`, served by `Engine.paint` and `Engine.style_vector` (no torch where the
    IRs are cached), so photos and stickers need no Stylizer unless one falls back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalog: Catalog = engine.catalog
        self.stylize = engine.paint
        self.style_vector = engine.style_vector


def engine_of(stylizer_factory: Callable[[], Any]) -> Engine | None:
    """The engine whose `stylizer` method is the factory (what the composition root
    passes), or None for any other factory (a test's shared Stylizer)."""
    engine = getattr(stylizer_factory, "__self__", None)
    return engine if isinstance(engine, Engine) else None


class JobHandler:
    """The job handler (``await handler(payload, ctx)``) and its failure callback.

    `engine`: what paints photos and stickers (`EnginePainter`); default: the engine
    of the stylizer factory when it is `Engine.stylizer`, else the factory's
    Stylizer paints them too."""

    def __init__(
        self,
        bot: Bot,
        stylizer_factory: Callable[[], Any],
        texts: Texts,
        *,
        prefs: PrefsStore | None = None,
        retry: RetryPolicy | None = None,
        full_output_cap: int = 4096,
        clips: ClipSettings | None = None,
        on_start: Callable[[str], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.bot = bot
        self._stylizer_factory = stylizer_factory
        self._stylizer: Any = None
        self._stylizer_lock = asyncio.Lock()
        engine = engine if engine is not None else engine_of(stylizer_factory)
        self._painter = EnginePainter(engine) if engine is not None else None
        self.texts = texts
        self.prefs = prefs
        self.retry = retry or RetryPolicy()
        self.full_output_cap = full_output_cap
        self.clips = clips or ClipSettings()
        self.on_start = on_start  # the status board stops showing "place N" from here
        self.metrics = metrics  # stage latencies and results (None: nothing counted)

    def _result(self, job: JobPayload, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.results.labels(job.kind, outcome).inc()

    async def stylizer(self, ctx: Any) -> Any:
        """Build the Stylizer on first use, off the loop (it reads the catalog)."""
        async with self._stylizer_lock:
            if self._stylizer is None:
                self._stylizer = await ctx.run_blocking(self._stylizer_factory)
        return self._stylizer

    async def painter(self, ctx: Any) -> Any:
        """What paints photos and stickers and computes style vectors: the engine
        (`EnginePainter`) when the handler has one, else the Stylizer."""
        if self._painter is not None:
            return self._painter
        return await self.stylizer(ctx)

    # -- the handler ---------------------------------------------------------------

    async def __call__(self, payload: dict[str, Any], ctx: Any) -> None:
        job = JobPayload.model_validate(payload)
        t = self.texts.for_language(job.lang)
        title = await self.style_title(job, t, ctx)
        if self.on_start is not None:
            await self.on_start(ctx.job_id)
        if "result" not in ctx.checkpoints:
            await self.edit_status(job, t("status_working", style=title))
            try:
                await self.produce_and_send(job, t, title, ctx)
            except (JobFailed, EngineError) as e:
                await self.apologise(job, t, reason_key(e), getattr(e, "params", {}))
                await ctx.checkpoint("result", "failed")
                self._result(job, "refused")
                return
            except TelegramForbiddenError:
                # The user blocked the bot: nobody to deliver to, and retrying cannot help.
                log.info("chat %s blocked the bot; job dropped", job.chat_id)
                await ctx.checkpoint("result", "forbidden")
                self._result(job, "blocked")
                return
            self._result(
                job, "cancelled" if ctx.checkpoints.get("result") == "cancelled" else "sent"
            )
        if "status_done" not in ctx.checkpoints:
            result = ctx.checkpoints.get("result")
            if result == "cancelled":
                await self.edit_status(job, t("status_cancelled"))
            elif result != "failed":
                await self.edit_status(job, t("status_done", style=title))
            await ctx.checkpoint("status_done", True)

    async def on_failed(self, payload: dict[str, Any], error: BaseException) -> None:
        """A job that used up its attempts (or killed its worker): a clear apology."""
        job = JobPayload.model_validate(payload)
        t = self.texts.for_language(job.lang)
        log.warning("job for chat %s failed: %s", job.chat_id, type(error).__name__)
        self._result(job, "failed")
        await self.apologise(job, t, reason_key(error))

    async def style_title(self, job: JobPayload, t: Translator, ctx: Any) -> str:
        if job.style is None:
            return t("own_style_title")
        stylizer = await self.painter(ctx)

        def title(style_id: str) -> str:
            try:
                return str(stylizer.catalog.style(style_id).title_in(t.lang))
            except EngineError:
                return style_id

        if job.mix_with:
            return t(
                "mix_title",
                first=title(job.style),
                second=title(job.mix_with),
                share=job.mix or 50,
            )
        return title(job.style)

    async def painted_style(self, job: JobPayload, stylizer: Any, ctx: Any) -> Any:
        """What the engine paints with: a catalog style, a mix of two, or the own style."""
        if job.style is None:
            return await self.own_style(job, stylizer, ctx)
        if job.mix_with:
            return StyleMix(job.style, job.mix_with, (job.mix or 50) / 100)
        return job.style

    @staticmethod
    def mixable(job: JobPayload, stylizer: Any) -> bool:
        """Whether the result gets a "mix with…" button (its style has partners)."""
        return job.style is not None and bool(partners(stylizer.catalog, job.style))

    async def produce_and_send(self, job: JobPayload, t: Translator, title: str, ctx: Any) -> None:
        await self.chat_action(job)
        if job.kind in CLIP_KINDS or job.kind == "sticker":
            if job.kind == "sticker":
                message = await media_job.paint_sticker(self, job, t, ctx)
            else:
                message = await media_job.paint_clip(self, job, t, title, ctx)
            await ctx.checkpoint("result", message.message_id if message else "cancelled")
            return
        stylizer = await self.painter(ctx)
        clock = time.perf_counter
        t0 = clock()
        max_side = job.max_side if job.max_side else self.full_output_cap
        photo = await self.fetch_image(job.photo, ctx, max_side)
        t1 = clock()
        style = await self.painted_style(job, stylizer, ctx)
        result: Image.Image = await ctx.run_blocking(
            lambda: stylizer.stylize(
                photo,
                style,
                max_side=max_side,
                strength=job.strength / 100,
                preserve_colors=job.preserve_colors,
            )
        )
        t2 = clock()
        quality = 95 if job.as_document else 92
        data: bytes = await ctx.run_blocking(imageio.encode_image, result, "jpeg", quality)
        t3 = clock()
        caption = t("result_caption", style=title, strength=job.strength)
        markup = (
            result_keyboard(t, job.ref, job.strength, mix=self.mixable(job, stylizer))
            if job.ref
            else None
        )
        as_document = job.as_document or not photo_fits(result.size, len(data))
        name = f"totoshka-{file_label(style)}-{result.width}x{result.height}.jpg"
        message = await self.send_result(job, data, name, caption, markup, as_document)
        t4 = clock()
        await ctx.checkpoint("result", message.message_id)
        if self.metrics is not None:
            for stage, seconds in (
                ("fetch", t1 - t0),
                ("paint", t2 - t1),
                ("encode", t3 - t2),
                ("send", t4 - t3),
            ):
                self.metrics.stage_seconds.labels(stage).observe(seconds)
        log.info(
            "job %s: fetch+decode %.2fs, paint %.2fs, encode %.2fs, send %.2fs (%dx%d)",
            ctx.job_id,
            t1 - t0,
            t2 - t1,
            t3 - t2,
            t4 - t3,
            result.width,
            result.height,
        )

    async def send_result(
        self,
        job: JobPayload,
        data: bytes,
        name: str,
        caption: str,
        markup: Any,
        as_document: bool,
    ) -> Message:
        common: dict[str, Any] = {
            "chat_id": job.chat_id,
            "caption": caption,
            "reply_markup": markup,
        }
        if job.reply_to:
            common["reply_parameters"] = {
                "message_id": job.reply_to,
                "allow_sending_without_reply": True,
            }
        if not as_document:
            try:
                return await self.retry.call(
                    "sendPhoto",
                    lambda: self.bot.send_photo(photo=BufferedInputFile(data, name), **common),
                )
            except TelegramBadRequest as e:
                # Telegram measures photos its own way; anything it refuses goes as a file.
                log.info("sendPhoto refused (%s); sending a document", e.message)
        return await self.retry.call(
            "sendDocument",
            lambda: self.bot.send_document(document=BufferedInputFile(data, name), **common),
        )

    async def fetch_image(self, file_id: str, ctx: Any, max_side: int | None = None) -> Image.Image:
        data = await self.fetch_bytes(file_id)
        return await ctx.run_blocking(lambda: imageio.load_image(data, max_side=max_side))

    async def fetch_bytes(self, file_id: str) -> bytes:
        """getFile + download, refusing files over the Bot API's 20 MB before fetching."""
        try:
            file = await self.retry.call("getFile", lambda: self.bot.get_file(file_id))
        except TelegramBadRequest as e:
            key = "err_image_too_large" if "too big" in e.message else "err_download"
            raise JobFailed(key) from e
        if file.file_size and file.file_size > DOWNLOAD_MAX_BYTES:
            raise JobFailed("err_image_too_large")
        if not file.file_path:
            raise JobFailed("err_download")
        path = file.file_path

        async def download() -> bytes:
            buffer = io.BytesIO()
            await self.bot.download_file(path, buffer, timeout=60)
            return buffer.getvalue()

        return await self.retry.call("download", download)

    async def cancel_requested(self, job: JobPayload, since: float) -> bool:
        """Whether the user sent /cancel after ``since`` (needs the shared storage)."""
        if self.prefs is None:
            return False
        key = cancel_key(self.prefs.bot_id, job.chat_id, job.user_id)
        try:
            return await cancel_requested(self.prefs.storage, key, since)
        except Exception:  # storage down: keep painting rather than fail the clip
            log.warning("could not read the cancel flag", exc_info=True)
            return False

    async def own_style(self, job: JobPayload, stylizer: Any, ctx: Any) -> Any:
        vector = job.vector
        if vector is None:
            if not job.painting:
                raise JobFailed("err_generic")
            painting = await self.fetch_image(job.painting, ctx)
            vector = list(await ctx.run_blocking(stylizer.style_vector, painting))
            if self.prefs is not None and job.painting_pid:
                try:
                    await self.prefs.set_painting_vector(
                        job.chat_id, job.user_id, job.painting_pid, vector
                    )
                except Exception:  # the storage is a cache here; the job goes on
                    log.warning("could not store the painting's style vector", exc_info=True)
        return OwnStyle(vectors=((tuple(vector), 1.0),))

    # -- small Telegram helpers: best effort, never fail the job ----------------------

    async def chat_action(self, job: JobPayload) -> None:
        action = {"sticker": "choose_sticker", "video_note": "upload_video_note"}.get(
            job.kind, "upload_video" if job.kind in CLIP_KINDS else "upload_photo"
        )
        if job.as_document and job.kind == "photo":
            action = "upload_document"
        try:
            await self.bot.send_chat_action(job.chat_id, action)
        except Exception:
            log.debug("sendChatAction failed", exc_info=True)

    async def edit_status(self, job: JobPayload, text: str) -> None:
        if not job.status_message_id:
            return
        message_id = job.status_message_id
        try:
            await self.retry.brief().call(
                "editMessageText",
                lambda: self.bot.edit_message_text(
                    text=text, chat_id=job.chat_id, message_id=message_id
                ),
            )
        except (TelegramBadRequest, TelegramForbiddenError) as e:
            log.debug("status edit skipped: %s", e.message)
        except Exception as e:  # a status line is not worth failing a painted picture
            log.info("status edit failed: %s", type(e).__name__)

    async def apologise(
        self, job: JobPayload, t: Translator, key: str, params: dict[str, Any] | None = None
    ) -> None:
        text = t("status_failed", reason=t(key, **(params or {})))
        if job.status_message_id:
            try:
                await self.bot.edit_message_text(
                    text=text, chat_id=job.chat_id, message_id=job.status_message_id
                )
                return
            except Exception:
                log.debug("could not edit the status into an apology", exc_info=True)
        try:
            await self.retry.brief(max_inline_wait=10.0).call(
                "sendMessage", lambda: self.bot.send_message(job.chat_id, text)
            )
        except Exception:
            log.warning("could not apologise to chat %s", job.chat_id, exc_info=True)
