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
import time
from collections.abc import Callable
from typing import Any

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage

from totoshka.bot import wiring
from totoshka.bot.gallery import Gallery
from totoshka.bot.handlers import build_routers
from totoshka.bot.handlers.commands import register_commands
from totoshka.bot.logs import setup_logging
from totoshka.bot.middlewares import PrefsMiddleware
from totoshka.bot.services import Services
from totoshka.bot.status_board import StatusBoard, Tracked
from totoshka.bot.texts import Texts
from totoshka.config import Settings
from totoshka.engine.backends.hardware import inference_threads
from totoshka.engine.factory import open_engine
from totoshka.engine.mixing import mix_partners
from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.jobs.pool import WorkerPool
from totoshka.jobs.queue import JobState

log = logging.getLogger(__name__)


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
        celery: CeleryConfig | None = None,
    ) -> None:
        self.settings = settings
        # where the start-up inference line goes (the CLI: straight to stderr)
        self.announce = announce or log.info
        self._warm_task: asyncio.Task[None] | None = None
        self.texts = Texts.load()
        self.bot = wiring.make_bot(settings)
        self.storage = storage or wiring.make_storage(settings)
        self.engine = open_engine(settings)
        self.stylizer_factory = stylizer_factory or self.engine.stylizer
        self.queue: Any = wiring.make_queue(settings, celery)
        self.board = StatusBoard(self.bot, self.queue, self.texts) if self.embedded else None
        self.clip_queue: Any = wiring.make_clip_queue(settings, celery)
        self.clip_board = (
            StatusBoard(self.bot, self.clip_queue, self.texts)
            if self.clip_queue and self.embedded
            else None
        )
        self.retry = wiring.retry_policy(settings)  # one policy for every Bot API call
        styles = self.engine.offered_styles()
        self.gallery = Gallery(
            self.engine.previews_dir(), self.stylizer_factory, styles, settings.preview_size
        )
        self.services = Services(
            settings=settings,
            texts=self.texts,
            queue=self.queue,
            styles=styles,
            gallery=self.gallery,
            retry=self.retry,
            board=self.board,
            clip_queue=self.clip_queue,
            clip_board=self.clip_board,
            partners=mix_partners(self.engine.catalog, [sid for sid, _ in styles]),
            state_locks=wiring.make_state_locks(self.storage),
        )
        self.handler = wiring.make_job_handler(
            settings,
            self.bot,
            self.engine,
            self.texts,
            storage=self.storage,
            retry=self.retry,
            stylizer_factory=self.stylizer_factory,
            on_start=self._claim,
        )
        self.pools: list[WorkerPool] = []
        if self.embedded and with_workers:
            # (queue, board, concurrency, cpu_workers): photos get the engine's figure of
            # threads (GPU batches: more), clips one thread per clip worker
            clips = settings.clip_workers
            lanes = [(self.queue, self.board, settings.workers, inference_threads())]
            if self.clip_queue is not None:
                lanes.append((self.clip_queue, self.clip_board, clips, clips))
            for queue, board, concurrency, cpu_workers in lanes:
                self.pools.append(
                    WorkerPool(
                        queue,
                        self.handler,
                        concurrency=concurrency,
                        cpu_workers=cpu_workers,
                        max_attempts=settings.max_attempts,
                        on_change=board.refresh if board else None,
                        on_failed=self.handler.on_failed,
                    )
                )
        self.dispatcher = self._make_dispatcher()

    @property
    def pool(self) -> WorkerPool | None:
        """The photos' worker pool (None without workers)."""
        return self.pools[0] if self.pools else None

    async def _claim(self, job_id: str) -> None:
        for board in (self.board, self.clip_board):
            if board is not None:
                await board.claim(job_id)

    @property
    def embedded(self) -> bool:
        return self.settings.jobs_backend == "embedded"

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
        if self.pools:
            # polling starts now; the workers once the engine is warm and measured
            self._warm_task = asyncio.create_task(self._warm_then_start_workers())
        await self._resume_status_lines()

    async def _warm_then_start_workers(self) -> None:
        await asyncio.to_thread(self._warm_up)
        for pool in self.pools:
            await pool.start()

    def _warm_up(self) -> None:
        """Convert, compile and time the serving path once, before the first job: the
        operator sees what serves (``inference: openvino-bf16 (AMX), ml5 0.52 s at
        1280×960``) and one warning if it is slower than the machine supports."""
        try:
            from totoshka.engine.diagnose import startup_probe  # imports torch: lazily

            stylizer = self.stylizer_factory()
            result = startup_probe(stylizer, [style_id for style_id, _ in self.services.styles])
        except Exception as exc:  # the workers start anyway; a job will say what is wrong
            log.warning("inference: not measured (%s: %s)", type(exc).__name__, exc)
            return
        self.announce(result.line)
        if result.warning:
            log.warning("%s", result.warning)

    async def _resume_status_lines(self) -> None:
        """After a restart, keep updating "place in line" for jobs accepted before it."""
        for lane in self.services.lanes():
            await self._resume_lane(lane.queue, lane.board)

    async def _resume_lane(self, queue: Any, board: StatusBoard | None) -> None:
        jobs = getattr(queue, "jobs", None)
        if board is None or jobs is None:
            return
        purge = getattr(queue, "purge", None)
        if purge is not None:  # finished jobs are history: keep a week of it
            await asyncio.to_thread(purge, time.time() - 7 * 86400)
        for record in await asyncio.to_thread(jobs):
            payload = record.payload
            if record.state == JobState.QUEUED and payload.get("status_message_id"):
                tracked = Tracked(
                    payload["chat_id"], payload["status_message_id"], payload.get("lang", "en")
                )
                await board.track(record.job_id, tracked)

    async def _stop_warm_up(self) -> None:
        task, self._warm_task = self._warm_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_shutdown(self) -> None:
        await self._stop_warm_up()
        for pool in self.pools:
            await pool.stop(graceful=True)

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
        await self._on_shutdown()  # again: a pool that already stopped returns at once
        for queue in (self.queue, self.clip_queue):
            close = getattr(queue, "close", None)
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
