"""Assembling the bot and running it: long polling, webhook, or a Celery worker.

`BotApp` owns everything one running bot needs — `Bot`, `Dispatcher`, storage,
queue, worker pool, stylizer — built from a `Settings`, with no module-level
state, so tests can run several in one process. Dependencies reach handlers via
the dispatcher's workflow data (``services``, ``settings``, ``texts``).

Shutdown order matters for "never lose a photo": stop taking updates first,
then stop the worker pool gracefully (running jobs finish or go back to the
queue), then close the HTTP session. A job accepted before the stop is in
SQLite and is delivered by the next start.

The operator's view (`totoshka.bot.ops`): one `Metrics` per app, fed by the
update middleware, the worker pools and the job handler; ``/readyz`` is 200 once
the warm-up has run and the workers started, while the queues and the state
storage answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiohttp import web

from totoshka.bot import ops, wiring
from totoshka.bot.gallery import Gallery
from totoshka.bot.handlers import build_routers
from totoshka.bot.handlers.commands import register_commands
from totoshka.bot.job_handler import EnginePainter, engine_of
from totoshka.bot.logs import setup_logging
from totoshka.bot.middlewares import PrefsMiddleware, UpdateMetricsMiddleware
from totoshka.bot.services import Services
from totoshka.bot.status_board import StatusBoard, Tracked
from totoshka.bot.texts import Texts
from totoshka.config import Settings
from totoshka.engine.backends.hardware import inference_threads
from totoshka.engine.factory import open_engine
from totoshka.engine.mixing import mix_partners
from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.jobs.pool import WorkerPool
from totoshka.jobs.queue import JobState, QueueUnavailable
from totoshka.observability import Metrics

log = logging.getLogger(__name__)

#: Seconds a /readyz check waits for a queue or the state storage to answer.
READY_TIMEOUT = 3.0


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
        self._serving = False  # the warm-up has run and the workers started
        self._warm_note: str | None = None  # why the warm-up measured nothing
        self._ops_runner: web.AppRunner | None = None
        self.metrics = Metrics()
        self.texts = Texts.load()
        self.bot = wiring.make_bot(settings)
        self.storage = storage or wiring.make_storage(settings)
        self.engine = open_engine(settings)
        self.stylizer_factory = stylizer_factory or self.engine.stylizer
        self.queue: Any = wiring.make_queue(settings, celery)
        self.board = StatusBoard(self.bot, self.queue, self.texts)
        self.clip_queue: Any = wiring.make_clip_queue(settings, celery)
        self.clip_board = (
            StatusBoard(self.bot, self.clip_queue, self.texts) if self.clip_queue else None
        )
        self._lines_task: asyncio.Task[None] | None = None
        self.retry = wiring.retry_policy(settings)  # one policy for every Bot API call
        styles = self.engine.offered_styles()
        # previews paint as photos do: through `Engine.paint` (no torch where the IR is
        # cached) when the factory is the engine's own, else through that factory
        previews: Callable[[], Any] = (
            partial(EnginePainter, self.engine)
            if engine_of(self.stylizer_factory) is self.engine
            else self.stylizer_factory
        )
        self.gallery = Gallery(self.engine.previews_dir(), previews, styles, settings.preview_size)
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
            metrics=self.metrics,
        )
        for lane in self.services.lanes():
            self.metrics.lane(lane.name)
        self.metrics.watch_queues({lane.name: lane.queue.stats for lane in self.services.lanes()})
        self.handler = wiring.make_job_handler(
            settings,
            self.bot,
            self.engine,
            self.texts,
            storage=self.storage,
            retry=self.retry,
            stylizer_factory=self.stylizer_factory,
            on_start=self._claim,
            metrics=self.metrics,
        )
        self.pools: list[WorkerPool] = []
        if self.embedded and with_workers:
            # (queue, board, concurrency, cpu_workers): photos get the engine's figure of
            # threads (GPU batches: more), clips one thread per clip worker
            clips = settings.clip_workers
            lanes = [("photos", self.queue, self.board, settings.workers, inference_threads())]
            if self.clip_queue is not None:
                lanes.append(("clips", self.clip_queue, self.clip_board, clips, clips))
            for name, queue, board, concurrency, cpu_workers in lanes:
                self.pools.append(
                    WorkerPool(
                        queue,
                        self.handler,
                        concurrency=concurrency,
                        cpu_workers=cpu_workers,
                        max_attempts=settings.max_attempts,
                        on_change=board.refresh if board else None,
                        on_failed=self.handler.on_failed,
                        metrics=self.metrics,
                        lane=name,
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
        # after aiogram's own update middlewares: inside the errors one, with the user known
        dp.update.outer_middleware(UpdateMetricsMiddleware(self.metrics))
        prefs = PrefsMiddleware(self.texts, self.storage)
        dp.message.outer_middleware(prefs)
        dp.callback_query.outer_middleware(prefs)
        dp.include_routers(*build_routers(self.settings.album_wait))
        dp.startup.register(self._on_startup)
        dp.shutdown.register(self._on_shutdown)
        return dp

    async def _on_startup(self) -> None:
        if self.settings.metrics_port is not None and self._ops_runner is None:
            s = self.settings
            self._ops_runner = await ops.serve(
                s.metrics_host, s.metrics_port, self.metrics, self.readiness
            )
            log.info("metrics on http://%s:%s/metrics", s.metrics_host, s.metrics_port)
        await self._check_persistence()
        try:
            await register_commands(self.bot, self.texts)
        except Exception:
            log.warning("setMyCommands failed; the menu stays as it was", exc_info=True)
        if self.pools:
            # polling starts now; the workers once the engine is warm and measured
            self._warm_task = asyncio.create_task(self._warm_then_start_workers())
        await self._resume_status_lines()
        if not self.embedded and self._lines_task is None:
            self._lines_task = asyncio.create_task(self._keep_lines())

    async def _keep_lines(self) -> None:
        """Celery mode, every few seconds: the store's repairs (jobs whose worker died,
        jobs with no token: `CeleryJobQueue.reconcile`, which the workers run too, so
        either side alive is enough) and the status lines (places moved, jobs lost
        with the store). A Redis outage only skips a round."""
        while True:
            await asyncio.sleep(self.settings.line_refresh_every)
            for lane in self.services.lanes():
                try:
                    reconcile = getattr(lane.queue, "reconcile", None)
                    if reconcile is not None:
                        await asyncio.to_thread(reconcile)
                    if lane.board is not None:
                        await lane.board.refresh()
                except Exception as exc:
                    log.warning("%s line not kept this round: %s", lane.name, exc)

    async def _warm_then_start_workers(self) -> None:
        await asyncio.to_thread(self._warm_up)
        for pool in self.pools:
            await pool.start()
        self._serving = True

    async def _check_persistence(self) -> None:
        """One warning at start when the Redis job store would lose queued jobs on a
        restart (Celery mode): the operator learns it now, not from users."""
        seen: set[int] = set()
        for lane in self.services.lanes():
            store = getattr(lane.queue, "store", None)
            check = getattr(store, "persistence_warning", None)
            if check is None or id(store.r) in seen:  # type: ignore[union-attr]
                continue
            seen.add(id(store.r))  # type: ignore[union-attr]
            try:
                warning = await asyncio.to_thread(check)
            except Exception as exc:  # an unreachable store is /readyz's business
                log.warning("job store: persistence not checked (%s)", type(exc).__name__)
                continue
            if warning:
                log.warning("%s", warning)

    def _warm_up(self) -> None:
        """Convert, compile and time the serving path once, before the first job: the
        operator sees what serves (``inference: openvino-bf16 (AMX), ml5 0.52 s at
        1280×960``) and one warning if it is slower than the machine supports."""
        styles = [style_id for style_id, _ in self.services.styles]
        try:
            result = self._cold_probe(styles)
            if result is None:  # a cold cache, or something to explain: the torch probe
                from totoshka.engine.diagnose import startup_probe  # imports torch: lazily

                result = startup_probe(self.stylizer_factory(), styles)
        except Exception as exc:  # the workers start anyway; a job will say what is wrong
            log.warning("inference: not measured (%s: %s)", type(exc).__name__, exc)
            self._warm_note = f"inference not measured ({type(exc).__name__})"
            return
        self.announce(result.line)
        if result.warning:
            log.warning("%s", result.warning)

    def _cold_probe(self, styles: list[str]) -> Any:
        """The start-up line from the torch-free path, and the serving IR warmed (what
        `startup_probe` does through torch), or None. Only where jobs paint through
        `Engine.paint`, i.e. the engine's own Stylizer: a bot given another factory
        (tests sharing one) paints through that, so its probe measures that."""
        if getattr(self.stylizer_factory, "__self__", None) is not self.engine:
            return None
        from totoshka.engine.cold_probe import cold_startup_probe  # numpy, Pillow, OpenVINO

        result = cold_startup_probe(self.engine, styles)
        if result is not None:
            try:
                self.engine.warm_up(styles)
            except Exception as exc:  # the first job then pays the compile, as before
                log.warning("serving path not warmed: %s: %s", type(exc).__name__, exc)
        return result

    async def readiness(self) -> tuple[list[str], list[str]]:
        """Why this bot cannot serve now (empty: it can), and notes for the operator.

        Models: only where this process paints (embedded workers); a failed start-up
        measurement is a note, not a refusal, since the workers serve anyway. Queues:
        every lane's `ping` (Celery: its Redis store and its broker). State: Redis
        when the conversation state lives there."""
        reasons: list[str] = []
        notes = [self._warm_note] if self._warm_note else []
        if self.pools and not self._serving:
            reasons.append("models: warming up")
        for lane in self.services.lanes():
            ping = getattr(lane.queue, "ping", None) or lane.queue.stats
            try:
                await asyncio.wait_for(asyncio.to_thread(ping), READY_TIMEOUT)
            except QueueUnavailable as exc:
                reasons.append(f"{lane.name} queue: {exc}")
            except Exception as exc:
                reasons.append(f"{lane.name} queue: unreachable ({type(exc).__name__})")
        redis = getattr(self.storage, "redis", None)
        if redis is not None:
            try:
                await asyncio.wait_for(redis.ping(), READY_TIMEOUT)
            except Exception as exc:
                reasons.append(f"state storage: unreachable ({type(exc).__name__})")
        return reasons, notes

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
        lines, self._lines_task = self._lines_task, None
        if lines is not None:
            lines.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lines
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
        runner, self._ops_runner = self._ops_runner, None
        if runner is not None:
            await runner.cleanup()
        for queue in (self.queue, self.clip_queue):
            close = getattr(queue, "close", None)
            if close is not None:
                close()
        await self.storage.close()
        await self.bot.session.close()

    async def start_webhook(self) -> Any:
        """Serve updates over HTTP and register the webhook; returns the aiohttp runner.

        An update is answered 200 only once it has been handled (`HandleThenAnswer`,
        aiogram's ``handle_in_background=False``; album items aside): Telegram forgets
        an update at the 200, so a replica killed after an early answer would lose
        it, while one killed before the answer gets it sent again, to a survivor.
        Hence at-least-once: a press delivered twice is queued once (dedupe keys)
        and its second answerCallbackQuery is let through (`AnsweredQueryIsFine`).
        See `totoshka.bot.webhook` for why, and for the two exceptions.

        aiogram's `SimpleRequestHandler` answers 401 to any request without the
        ``X-Telegram-Bot-Api-Secret-Token`` we gave to setWebhook. ``/metrics``,
        ``/healthz`` and ``/readyz`` are served here too, unless
        ``TOTOSHKA_METRICS_PORT`` gives them a server of their own (to keep them
        off a public listener).
        """
        from aiogram.webhook.aiohttp_server import setup_application

        from totoshka.bot.webhook import AnsweredQueryIsFine, HandleThenAnswer

        s = self.settings
        if not s.webhook_url:
            raise ValueError("TOTOSHKA_WEBHOOK_URL is required in webhook mode")
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else None
        app = web.Application()
        self.bot.session.middleware(AnsweredQueryIsFine())
        HandleThenAnswer(self.dispatcher, self.bot, secret_token=secret).register(
            app, path=s.webhook_path
        )
        if s.metrics_port is None:
            ops.add_routes(app, self.metrics, self.readiness)
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
    setup_logging(settings.log_level, settings.token(), fmt=settings.log_format)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _announce(settings: Settings) -> Callable[[str], None] | None:
    """The inference line: bare on stderr, or a log record when every line is JSON."""
    return _to_stderr if settings.log_format == "text" else None


def run_polling(settings: Settings) -> None:
    configure_logging(settings)
    asyncio.run(BotApp(settings, announce=_announce(settings)).run_polling())


def run_webhook(settings: Settings) -> None:
    configure_logging(settings)
    asyncio.run(BotApp(settings, announce=_announce(settings)).run_webhook())
