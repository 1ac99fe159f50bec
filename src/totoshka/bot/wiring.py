"""The composition root: every object a running bot or worker needs, built from settings.

This is the one place that knows how the parts fit — the aiogram `Bot` and its
session, the FSM storage, the job queue, the engine (through its factory, which
loads no torch until a picture is painted) and the job handler — so the handlers,
the job handler and the jobs layer each depend only on what they are given.
`BotApp` (``totoshka.bot.app``) runs what this builds; `worker_handlers` is what
a Celery worker process calls to build its side.
"""

from __future__ import annotations

import functools
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation

from totoshka.bot.job_handler import JobHandler
from totoshka.bot.logs import install_redaction
from totoshka.bot.media_job import ClipSettings
from totoshka.bot.prefs import PrefsStore
from totoshka.bot.retry import RetryPolicy
from totoshka.bot.texts import Texts
from totoshka.config import Settings
from totoshka.engine.backends.hardware import inference_threads
from totoshka.engine.factory import Engine, open_engine
from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.jobs.queue import JobHandlers, JobQueue
from totoshka.jobs.sqlite_queue import SQLiteJobQueue
from totoshka.observability import Metrics

#: The Celery workers' handler factory, by dotted path (resolved in each worker process).
WORKER_HANDLERS = "totoshka.bot.wiring:worker_handlers"


def make_bot(settings: Settings) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.api_url), timeout=settings.request_timeout
    )
    return Bot(settings.token(), session=session, default=DefaultBotProperties())


def make_storage(settings: Settings) -> BaseStorage:
    """Memory by default; Redis when ``TOTOSHKA_REDIS_URL`` is set (state survives restarts).

    The key builder must include the *destiny*: preferences live under their own
    destiny (see `totoshka.bot.prefs`), which aiogram's default builder refuses.

    The connections heal after a Redis restart: a pooled connection idle for a while
    is pinged before use, and a dropped one is retried with backoff, so the updates
    right after the restart are answered instead of failing one per stale
    connection. A frozen server times out in seconds (the update then fails and
    Telegram, or the user, sends it again).
    """
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage  # needs the optional redis package
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        keys = DefaultKeyBuilder(prefix=settings.redis_prefix, with_bot_id=True, with_destiny=True)
        healing = {
            "health_check_interval": 10,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "retry": Retry(
                ExponentialBackoff(cap=1.0, base=0.1),
                retries=4,
                supported_errors=(RedisConnectionError,),
            ),
        }
        url = settings.redis_url
        return RedisStorage.from_url(url, connection_kwargs=healing, key_builder=keys)
    return MemoryStorage()


def make_state_locks(storage: BaseStorage) -> BaseEventIsolation:
    """Locks for FSM data edits that hold wherever the state lives: a Redis lock (in
    the storage's own Redis, under its key builder) when replicas share Redis state,
    an asyncio lock per conversation in memory."""
    redis = getattr(storage, "redis", None)
    if redis is not None:
        from aiogram.fsm.storage.redis import RedisEventIsolation

        return RedisEventIsolation(redis, key_builder=storage.key_builder)  # type: ignore[attr-defined]
    return SimpleEventIsolation()


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(retries=settings.send_retries)


def make_queue(
    settings: Settings, celery: CeleryConfig | None = None, lane: str = "photos"
) -> JobQueue:
    """The queue of a lane (`celery_mode.LANES`): in the embedded mode an SQLite file,
    the photos' one and another beside it per lane; else Celery's broker queue."""
    if settings.jobs_backend != "embedded":
        from totoshka.jobs.celery_mode import CeleryJobQueue  # imports celery: scale-out only

        return CeleryJobQueue(celery or CeleryConfig.for_bot(settings), lane=lane)
    path = settings.queue_path
    if lane != "photos":
        path = path.with_name(f"{path.stem}-{lane}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteJobQueue(path)


def make_clip_queue(settings: Settings, celery: CeleryConfig | None = None) -> JobQueue | None:
    """The clips' own lane (`Settings.clip_lane`; off: clips share the one queue),
    served by its own workers."""
    return make_queue(settings, celery, lane="clips") if settings.clip_lane else None


def clip_settings(settings: Settings) -> ClipSettings:
    return ClipSettings(
        max_side=settings.video_max_side,
        max_seconds=settings.video_max_seconds,
        max_fps=settings.video_max_fps,
        consistency=settings.video_consistency,
        progress_every=settings.clip_progress_every,
    )


def make_job_handler(
    settings: Settings,
    bot: Bot,
    engine: Engine,
    texts: Texts,
    *,
    storage: BaseStorage | None = None,
    retry: RetryPolicy | None = None,
    stylizer_factory: Any = None,
    on_start: Any = None,
    metrics: Metrics | None = None,
) -> JobHandler:
    return JobHandler(
        bot,
        stylizer_factory or engine.stylizer,
        texts,
        prefs=PrefsStore(storage, bot.id) if storage is not None else None,
        retry=retry or retry_policy(settings),
        full_output_cap=settings.full_output_cap,
        clips=clip_settings(settings),
        on_start=on_start,
        metrics=metrics,
    )


@functools.cache
def _worker_metrics() -> Metrics:
    """The one `Metrics` of a worker process (see `worker_handlers`)."""
    return Metrics()


async def worker_handlers() -> JobHandlers:
    """A Celery worker process's handler (`WORKER_HANDLERS`).

    The worker process is an edge of its own: it reads `Settings` from the
    environment, opens its own `Bot` session and (with ``TOTOSHKA_REDIS_URL``) the
    bot's FSM storage, so a painting's style vector computed here is reused by the bot.

    Its `Metrics` (the task's run counts, the handler's stages and results) is one per
    process however often this runs (again after a soft time limit): under
    ``totoshka worker`` they are files its main process adds up, and two objects would
    write the same series of one file.
    """
    settings = Settings()
    install_redaction(settings.token())
    bot = make_bot(settings)
    storage = make_storage(settings) if settings.redis_url else None
    metrics = _worker_metrics()
    handler = make_job_handler(
        settings, bot, open_engine(settings), Texts.load(), storage=storage, metrics=metrics
    )

    async def close() -> None:
        if storage is not None:
            await storage.close()
        await bot.session.close()

    return JobHandlers(
        handler=handler,
        on_failed=handler.on_failed,
        close=close,
        cpu_workers=inference_threads(),
        metrics=metrics,
    )
