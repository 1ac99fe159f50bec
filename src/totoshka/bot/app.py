"""Assembling the bot and running it: long polling, webhook, or a Celery worker.

`BotApp` owns everything one running bot needs — `Bot`, `Dispatcher`, storage,
queue, worker pool, stylizer — built from a `Settings`, with no module-level
state, so tests can run several in one process. Dependencies reach handlers via
the dispatcher's workflow data (``services``, ``settings``, ``texts``).

Shutdown order matters for "never lose a photo": stop taking updates first,
then stop the worker pool gracefully (running jobs finish or go back to the
queue), then close the HTTP session. A job accepted before the stop is in
SQLite and is delivered by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

from totoshka.bot.delivery import Delivery
from totoshka.bot.handlers import build_routers
from totoshka.bot.handlers.commands import register_commands
from totoshka.bot.logs import setup_logging
from totoshka.bot.middlewares import PrefsMiddleware
from totoshka.bot.prefs import PrefsStore
from totoshka.bot.services import Gallery, Services, StatusBoard, Tracked
from totoshka.bot.texts import Texts
from totoshka.config import Settings

log = logging.getLogger(__name__)


class LazyStylizer:
    """One `Stylizer` per app, built on first use from any thread (it loads the catalog)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stylizer: Any = None

    def __call__(self) -> Any:
        with self._lock:
            if self._stylizer is None:
                from totoshka.engine.stylizer import build_stylizer

                s = self.settings
                self._stylizer = build_stylizer(
                    cache_dir=s.cache_dir, mirror=s.model_mirror, data_dir=s.data_dir
                )
            return self._stylizer


def make_bot(settings: Settings) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.api_url), timeout=settings.request_timeout
    )
    return Bot(settings.token(), session=session, default=DefaultBotProperties())


def make_storage(settings: Settings) -> BaseStorage:
    """Memory by default; Redis when ``TOTOSHKA_REDIS_URL`` is set (state survives restarts).

    The key builder must include the *destiny*: preferences live under their own
    destiny (see `totoshka.bot.prefs`), which aiogram's default builder refuses.
    """
    if settings.redis_url:
        from aiogram.fsm.storage.base import DefaultKeyBuilder
        from aiogram.fsm.storage.redis import RedisStorage

        keys = DefaultKeyBuilder(prefix=settings.redis_prefix, with_bot_id=True, with_destiny=True)
        return RedisStorage.from_url(settings.redis_url, key_builder=keys)
    return MemoryStorage()


def offered_styles(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """Catalog styles whose weights can be had: cached, in a local mirror, or online."""
    from totoshka.engine.catalog import load_catalog
    from totoshka.engine.store import ModelStore

    catalog = load_catalog(settings.data_dir) if settings.data_dir else load_catalog()
    store = ModelStore(
        cache_dir=settings.cache_dir,
        mirror=settings.model_mirror,
        data_dir=settings.data_dir,
        catalog=catalog,
    )
    offered = []
    for style in catalog.styles():
        model = catalog.model(style.model)
        available = store.is_present(model)
        if not available:
            if store.mirror is None or not isinstance(store.mirror, Path):
                available = True  # fetched from the URL on first use
            else:
                available = all(Path(store.source(f)).exists() for f in model.files)
        if available:
            offered.append((style.id, dict(style.title)))
    return offered


def previews_folder(settings: Settings) -> Path:
    from totoshka.engine import paths

    base = settings.cache_dir or paths.cache_dir()
    return Path(base).parent / "previews" if base.name == "models" else Path(base) / "previews"


class BotApp:
    """One bot: build with a `Settings`, then ``await start()`` / ``await stop()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        stylizer_factory: Callable[[], Any] | None = None,
        storage: BaseStorage | None = None,
        with_workers: bool = True,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        # where the start-up inference line goes (the CLI: straight to stderr)
        self.announce = announce or log.info
        self._warm_task: asyncio.Task[None] | None = None
        self.texts = Texts.load()
        self.bot = make_bot(settings)
        self.storage = storage or make_storage(settings)
        self.stylizer_factory = stylizer_factory or LazyStylizer(settings)
        self.queue = self._make_queue()
        self.board = StatusBoard(self.bot, self.queue, self.texts) if self.embedded else None
        styles = offered_styles(settings)
        self.gallery = Gallery(
            previews_folder(settings), self.stylizer_factory, styles, settings.preview_size
        )
        self.services = Services(
            settings=settings,
            texts=self.texts,
            queue=self.queue,
            styles=styles,
            gallery=self.gallery,
            board=self.board,
        )
        self.delivery = Delivery(
            self.bot,
            self.stylizer_factory,
            self.texts,
            prefs=PrefsStore(self.storage, self.bot.id),
            retries=settings.send_retries,
            full_output_cap=settings.full_output_cap,
            on_start=self.board.claim if self.board else None,
        )
        self.pool: Any = None
        if self.embedded and with_workers:
            from totoshka.jobs.pool import WorkerPool

            self.pool = WorkerPool(
                self.queue,  # type: ignore[arg-type]
                self.delivery,
                concurrency=settings.workers,
                max_attempts=settings.max_attempts,
                on_change=self.board.refresh if self.board else None,
                on_failed=self.delivery.on_failed,
            )
        self.dispatcher = self._make_dispatcher()

    @property
    def embedded(self) -> bool:
        return self.settings.jobs_backend == "embedded"

    def _make_queue(self) -> Any:
        if self.embedded:
            from totoshka.jobs.sqlite_queue import SQLiteJobQueue

            self.settings.queue_path.parent.mkdir(parents=True, exist_ok=True)
            return SQLiteJobQueue(self.settings.queue_path)
        from totoshka.jobs.celery_mode import CeleryJobQueue  # type: ignore[import-not-found]

        return CeleryJobQueue.from_settings(self.settings)

    def _make_dispatcher(self) -> Dispatcher:
        dp = Dispatcher(
            storage=self.storage,
            services=self.services,
            settings=self.settings,
            texts=self.texts,
        )
        prefs = PrefsMiddleware(self.texts, self.storage)
        dp.message.outer_middleware(prefs)
        dp.callback_query.outer_middleware(prefs)
        dp.include_routers(*build_routers(self.settings.album_wait))
        dp.startup.register(self._on_startup)
        dp.shutdown.register(self._on_shutdown)
        return dp

    async def _on_startup(self) -> None:
        try:
            await register_commands(self.bot, self.texts)
        except Exception:
            log.warning("setMyCommands failed; the menu stays as it was", exc_info=True)
        if self.pool is not None:
            # polling starts now; the workers once the engine is warm and measured
            self._warm_task = asyncio.create_task(self._warm_then_start_workers())
        await self._resume_status_lines()

    async def _warm_then_start_workers(self) -> None:
        await asyncio.to_thread(self._warm_up)
        if self.pool is not None:
            await self.pool.start()

    def _warm_up(self) -> None:
        """Convert, compile and time the serving path once, before the first job: the
        operator sees what serves (``inference: openvino-bf16 (AMX), ml5 0.52 s at
        1280×960``) and one warning if it is slower than the machine supports."""
        try:
            stylizer = self.stylizer_factory()
            probe = getattr(stylizer, "startup_probe", None)
            if probe is None:
                return
            result = probe([style_id for style_id, _ in self.services.styles])
        except Exception as exc:  # the workers start anyway; a job will say what is wrong
            log.warning("inference: not measured (%s: %s)", type(exc).__name__, exc)
            return
        self.announce(result.line)
        if result.warning:
            log.warning("%s", result.warning)

    async def _resume_status_lines(self) -> None:
        """After a restart, keep updating "place in line" for jobs accepted before it."""
        jobs = getattr(self.queue, "jobs", None)
        if self.board is None or jobs is None:
            return
        from totoshka.jobs.queue import JobState

        purge = getattr(self.queue, "purge", None)
        if purge is not None:  # finished jobs are history: keep a week of it
            await asyncio.to_thread(purge, time.time() - 7 * 86400)
        for record in await asyncio.to_thread(jobs):
            payload = record.payload
            if record.state == JobState.QUEUED and payload.get("status_message_id"):
                tracked = Tracked(
                    payload["chat_id"], payload["status_message_id"], payload.get("lang", "en")
                )
                await self.board.track(record.job_id, tracked)

    async def _stop_warm_up(self) -> None:
        task, self._warm_task = self._warm_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_shutdown(self) -> None:
        await self._stop_warm_up()
        if self.pool is not None:
            await self.pool.stop(graceful=True)

    # -- run modes ----------------------------------------------------------------

    async def run_polling(self) -> None:
        """Long polling until SIGINT/SIGTERM; then a graceful stop."""
        await self.bot.delete_webhook(drop_pending_updates=False)
        try:
            await self.dispatcher.start_polling(
                self.bot, handle_signals=True, close_bot_session=True, polling_timeout=10
            )
        finally:
            await self.close()

    async def close(self) -> None:
        await self._stop_warm_up()
        if self.pool is not None:
            await self.pool.stop(graceful=True)
        close = getattr(self.queue, "close", None)
        if close is not None:
            close()
        await self.storage.close()
        await self.bot.session.close()

    async def start_webhook(self) -> Any:
        """Serve updates over HTTP and register the webhook; returns the aiohttp runner.

        aiogram's `SimpleRequestHandler` answers 401 to any request without the
        ``X-Telegram-Bot-Api-Secret-Token`` we gave to setWebhook.
        """
        from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
        from aiohttp import web

        s = self.settings
        if not s.webhook_url:
            raise ValueError("TOTOSHKA_WEBHOOK_URL is required in webhook mode")
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else None
        app = web.Application()
        SimpleRequestHandler(self.dispatcher, self.bot, secret_token=secret).register(
            app, path=s.webhook_path
        )
        setup_application(app, self.dispatcher, bot=self.bot)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, s.webhook_host, s.webhook_port)
        await site.start()
        url = s.webhook_url.rstrip("/")
        if not url.endswith(s.webhook_path):
            url += s.webhook_path
        await self.bot.set_webhook(url, secret_token=secret, drop_pending_updates=False)
        log.info("webhook listening on %s:%s%s", s.webhook_host, s.webhook_port, s.webhook_path)
        return runner

    async def run_webhook(self) -> None:
        """Webhook mode until SIGINT/SIGTERM; then a graceful stop."""
        import signal

        runner = await self.start_webhook()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()  # runs the dispatcher's shutdown: the pool stops
            await self.close()


def configure_logging(settings: Settings) -> None:
    setup_logging(settings.log_level, settings.token())


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_polling(settings: Settings) -> None:
    configure_logging(settings)
    asyncio.run(BotApp(settings, announce=_to_stderr).run_polling())


def run_webhook(settings: Settings) -> None:
    configure_logging(settings)
    asyncio.run(BotApp(settings, announce=_to_stderr).run_webhook())
