"""The job handler: fetch the photo through the Bot API, paint it, send the result.

A job is a small JSON payload (chat, message and file ids, style, settings,
language — see `JobPayload`), so the same handler runs in the bot's process
(embedded queue) or on a remote Celery worker: it needs only a `Bot`, a
`Stylizer` and the texts, never the conversation that queued it.

Execution is at least once, so every visible side effect is checkpointed right
after it happens and skipped on a re-run: the result photo (``result``) and the
final status edit (``status_done``). Telegram's temporary refusals are retried
here, around the one send, so the painted picture is not recomputed and never
sent twice: 429 waits ``retry_after``; 5xx, timeouts and connection errors back
off exponentially. A long flood wait gives the worker slot back (`RetryLater`).

Inference, decoding and encoding run through ``ctx.run_blocking`` — never in the
event loop, which keeps answering other users while a picture is painted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, Message
from PIL import Image

from totoshka.bot.keyboards import result_keyboard
from totoshka.bot.prefs import PrefsStore
from totoshka.bot.texts import Texts, Translator
from totoshka.engine.errors import EngineError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Telegram's limits for sendPhoto (https://core.telegram.org/bots/api#sendphoto).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20.0
DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024
# Longest flood wait we sit out while holding the worker slot; beyond it, requeue.
MAX_INLINE_WAIT = 30.0

# Worth another try: Telegram's 5xx, network trouble, a garbled answer, a file download
# cut off (aiohttp errors come straight through from `Bot.download_file`).
TRANSIENT = (
    TelegramServerError,
    TelegramNetworkError,
    ClientDecodeError,
    asyncio.TimeoutError,
    aiohttp.ClientError,
)


@dataclass
class JobPayload:
    """Everything a worker needs, JSON-serialisable (the queue stores it as is)."""

    chat_id: int
    user_id: int
    lang: str
    photo: str  # file_id of the photo (or image document)
    status_message_id: int | None
    reply_to: int | None = None
    style: str | None = None  # catalog style id; None for an own style
    painting: str | None = None  # file_id of the user's painting (own style)
    painting_pid: str | None = None  # its key in the user's recent paintings
    vector: list[float] | None = None  # its style vector, when already known
    strength: int = 100  # percent
    preserve_colors: bool = False
    max_side: int | None = 1280  # None = the photo's own size (capped by the engine)
    as_document: bool = False  # the "full resolution" file
    ref: str | None = None  # key of this result's settings, for the buttons under it
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobPayload:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class JobFailed(Exception):
    """A job that cannot succeed (bad input): the user gets ``reason_key``, no retry."""

    def __init__(self, reason_key: str) -> None:
        super().__init__(reason_key)
        self.reason_key = reason_key


def photo_fits(size: tuple[int, int], nbytes: int) -> bool:
    """Whether Telegram accepts the picture as a photo (else we send a document)."""
    w, h = size
    return (
        nbytes <= PHOTO_MAX_BYTES
        and w + h <= PHOTO_MAX_SIDES_SUM
        and max(w, h) / max(1, min(w, h)) <= PHOTO_MAX_RATIO
    )


def encode_jpeg(image: Image.Image, quality: int = 92) -> bytes:
    """JPEG through the engine's encoder (metadata stripped)."""
    from totoshka.engine.imageio import encode_image

    return encode_image(image, "jpeg", quality)


def decode_image(data: bytes, max_side: int | None = None) -> Image.Image:
    """Decode through the engine's imageio (limits, EXIF, colour profiles); a JPEG at
    the smallest scale that still covers `max_side`."""
    from totoshka.engine import imageio

    return imageio.load_image(data, max_side=max_side)


def reason_key(error: BaseException) -> str:
    """The texts key that explains ``error`` to a user."""
    if isinstance(error, JobFailed):
        return error.reason_key
    if isinstance(error, EngineError):
        code = getattr(error, "code", "")
        if code in {"bad_image", "image_too_large", "unknown_style", "model_missing"}:
            return f"err_{code}"
        if code.startswith("image") or code.startswith("bad"):
            return "err_bad_image"
    return "err_generic"


async def telegram_call(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    what: str,
    base_delay: float = 0.5,
    max_inline_wait: float = MAX_INLINE_WAIT,
) -> T:
    """Run one Bot API call, retrying Telegram's temporary refusals.

    429: wait exactly ``retry_after`` (Telegram's own figure), or hand the slot back
    with `RetryLater` if that is long. 5xx / timeouts / connection errors: back off
    exponentially with jitter. Anything else (400, 403) is not temporary and raised.
    """
    from totoshka.jobs.queue import RetryLater

    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except TelegramRetryAfter as e:
            if e.retry_after > max_inline_wait:
                raise RetryLater(e.retry_after, f"{what}: flood wait {e.retry_after}s") from e
            if attempt >= retries:
                raise RetryLater(e.retry_after, f"{what}: still flood-limited") from e
            log.info("%s: 429, waiting %ss (attempt %d)", what, e.retry_after, attempt)
            await asyncio.sleep(e.retry_after)
        except TRANSIENT as e:
            if attempt >= retries:
                raise
            delay = min(base_delay * 2 ** (attempt - 1), 10.0) * (1 + random.random() / 4)
            log.info("%s: %s, retrying in %.1fs", what, type(e).__name__, delay)
            await asyncio.sleep(delay)


class Delivery:
    """The job handler (``await delivery(payload, ctx)``) and its failure callback."""

    def __init__(
        self,
        bot: Bot,
        stylizer_factory: Callable[[], Any],
        texts: Texts,
        *,
        prefs: PrefsStore | None = None,
        retries: int = 6,
        full_output_cap: int = 4096,
        on_start: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.bot = bot
        self._stylizer_factory = stylizer_factory
        self._stylizer: Any = None
        self._stylizer_lock = asyncio.Lock()
        self.texts = texts
        self.prefs = prefs
        self.retries = retries
        self.full_output_cap = full_output_cap
        self.on_start = on_start  # the status board stops showing "place N" from here

    async def stylizer(self, ctx: Any) -> Any:
        """Build the Stylizer on first use, off the loop (it reads the catalog)."""
        async with self._stylizer_lock:
            if self._stylizer is None:
                self._stylizer = await ctx.run_blocking(self._stylizer_factory)
        return self._stylizer

    # -- the handler ---------------------------------------------------------------

    async def __call__(self, payload: dict[str, Any], ctx: Any) -> None:
        job = JobPayload.from_dict(payload)
        t = self.texts.for_language(job.lang)
        title = await self.style_title(job, t, ctx)
        if self.on_start is not None:
            await self.on_start(ctx.job_id)
        if "result" not in ctx.checkpoints:
            await self.edit_status(job, t("status_working", style=title))
            try:
                await self.produce_and_send(job, t, title, ctx)
            except (JobFailed, EngineError) as e:
                await self.apologise(job, t, reason_key(e))
                await ctx.checkpoint("result", "failed")
                return
            except TelegramForbiddenError:
                # The user blocked the bot: nobody to deliver to, and retrying cannot help.
                log.info("chat %s blocked the bot; job dropped", job.chat_id)
                await ctx.checkpoint("result", "forbidden")
                return
        if "status_done" not in ctx.checkpoints:
            if ctx.checkpoints.get("result") != "failed":
                await self.edit_status(job, t("status_done", style=title))
            await ctx.checkpoint("status_done", True)

    async def on_failed(self, payload: dict[str, Any], error: BaseException) -> None:
        """A job that used up its attempts (or killed its worker): a clear apology."""
        job = JobPayload.from_dict(payload)
        t = self.texts.for_language(job.lang)
        log.warning("job for chat %s failed: %s", job.chat_id, type(error).__name__)
        await self.apologise(job, t, reason_key(error))

    async def style_title(self, job: JobPayload, t: Translator, ctx: Any) -> str:
        if job.style is None:
            return t("own_style_title")
        stylizer = await self.stylizer(ctx)
        try:
            return str(stylizer.catalog.style(job.style).title_in(t.lang))
        except EngineError:
            return job.style

    async def produce_and_send(self, job: JobPayload, t: Translator, title: str, ctx: Any) -> None:
        await self.chat_action(job)
        stylizer = await self.stylizer(ctx)
        clock = time.perf_counter
        t0 = clock()
        max_side = job.max_side if job.max_side else self.full_output_cap
        photo = await self.fetch_image(job.photo, ctx, max_side)
        t1 = clock()
        if job.style is not None:
            style: Any = job.style
        else:
            style = await self.own_style(job, stylizer, ctx)
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
        data: bytes = await ctx.run_blocking(encode_jpeg, result, quality)
        t3 = clock()
        caption = t("result_caption", style=title, strength=job.strength)
        markup = result_keyboard(t, job.ref, job.strength) if job.ref else None
        as_document = job.as_document or not photo_fits(result.size, len(data))
        name = f"totoshka-{job.style or 'own'}-{result.width}x{result.height}.jpg"
        message = await self.send_result(job, data, name, caption, markup, as_document)
        await ctx.checkpoint("result", message.message_id)
        log.info(
            "job %s: fetch+decode %.2fs, paint %.2fs, encode %.2fs, send %.2fs (%dx%d)",
            ctx.job_id,
            t1 - t0,
            t2 - t1,
            t3 - t2,
            clock() - t3,
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
                return await telegram_call(
                    lambda: self.bot.send_photo(photo=BufferedInputFile(data, name), **common),
                    retries=self.retries,
                    what="sendPhoto",
                )
            except TelegramBadRequest as e:
                # Telegram measures photos its own way; anything it refuses goes as a file.
                log.info("sendPhoto refused (%s); sending a document", e.message)
        return await telegram_call(
            lambda: self.bot.send_document(document=BufferedInputFile(data, name), **common),
            retries=self.retries,
            what="sendDocument",
        )

    async def fetch_image(self, file_id: str, ctx: Any, max_side: int | None = None) -> Image.Image:
        """getFile + download, refusing files over the Bot API's 20 MB before fetching."""
        try:
            file = await telegram_call(
                lambda: self.bot.get_file(file_id), retries=self.retries, what="getFile"
            )
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

        data = await telegram_call(download, retries=self.retries, what="download")
        return await ctx.run_blocking(decode_image, data, max_side)

    async def own_style(self, job: JobPayload, stylizer: Any, ctx: Any) -> Any:
        from totoshka.engine.stylizer import OwnStyle

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
        action = "upload_document" if job.as_document else "upload_photo"
        try:
            await self.bot.send_chat_action(job.chat_id, action)
        except Exception:
            log.debug("sendChatAction failed", exc_info=True)

    async def edit_status(self, job: JobPayload, text: str) -> None:
        if not job.status_message_id:
            return
        message_id = job.status_message_id
        try:
            await telegram_call(
                lambda: self.bot.edit_message_text(
                    text=text, chat_id=job.chat_id, message_id=message_id
                ),
                retries=3,
                what="editMessageText",
                max_inline_wait=5.0,
            )
        except (TelegramBadRequest, TelegramForbiddenError) as e:
            log.debug("status edit skipped: %s", e.message)
        except Exception as e:  # a status line is not worth failing a painted picture
            log.info("status edit failed: %s", type(e).__name__)

    async def apologise(self, job: JobPayload, t: Translator, key: str) -> None:
        text = t("status_failed", reason=t(key))
        if job.status_message_id:
            try:
                await self.bot.edit_message_text(
                    text=text, chat_id=job.chat_id, message_id=job.status_message_id
                )
                return
            except Exception:
                log.debug("could not edit the status into an apology", exc_info=True)
        try:
            await telegram_call(
                lambda: self.bot.send_message(job.chat_id, text),
                retries=3,
                what="sendMessage",
                max_inline_wait=10.0,
            )
        except Exception:
            log.warning("could not apologise to chat %s", job.chat_id, exc_info=True)


async def make_handler() -> Any:
    """The Celery workers' handler factory (``totoshka.bot.delivery:make_handler``).

    Runs in the worker process's event loop: reads `Settings` from the environment,
    opens its own `Bot` session and (with ``TOTOSHKA_REDIS_URL``) the same FSM storage
    as the bot, so a painting's style vector computed here is reused by the bot.
    """
    from totoshka.bot.app import LazyStylizer, make_bot, make_storage
    from totoshka.bot.logs import install_redaction
    from totoshka.config import Settings
    from totoshka.jobs.celery_mode import JobHandlers

    settings = Settings()
    install_redaction(settings.token())
    bot = make_bot(settings)
    prefs = None
    storage = None
    if settings.redis_url:  # the bot's own storage, to save paintings' style vectors
        storage = make_storage(settings)
        prefs = PrefsStore(storage, bot.id)
    delivery = Delivery(
        bot,
        LazyStylizer(settings),
        Texts.load(),
        prefs=prefs,
        retries=settings.send_retries,
        full_output_cap=settings.full_output_cap,
    )

    async def close() -> None:
        if storage is not None:
            await storage.close()
        await bot.session.close()

    return JobHandlers(handler=delivery, on_failed=delivery.on_failed, close=close)
