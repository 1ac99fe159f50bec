"""Scale-out mode: the same payloads and the same handler, run by Celery workers.

Bot side: `CeleryJobQueue` implements `JobQueue`. Worker side::

    TOTOSHKA_BROKER_URL=redis://host:6379/0 \\
    TOTOSHKA_REDIS_URL=redis://host:6379/0 \\
    TOTOSHKA_JOB_HANDLER=totoshka.bot.delivery:make_handler \\
    celery -A totoshka.jobs.celery_mode worker -c 2 --prefetch-multiplier 1

or ``run_worker()`` from Python (what ``totoshka worker`` calls).

How it follows Celery's advice for long jobs:

* ``acks_late=True`` + ``worker_prefetch_multiplier=1`` + ``task_reject_on_worker_lost``:
  a worker that dies mid-job leaves the message to be redelivered, and a worker
  holds no more than the job it runs.
* Brokers do not count redeliveries, so the attempt counter lives in the job record
  (Redis, see `redis_store`): a job whose runs keep dying or failing is marked
  ``failed`` after ``max_attempts`` and stops looping.
* Expected errors: `RetryLater` → ``Task.retry(countdown=delay)``; other exceptions →
  ``Task.retry`` with exponential backoff, up to ``max_attempts``.
* Soft and hard time limits on the task. The soft limit raises inside the handler
  and counts as a failed attempt (retried with backoff); the hard limit kills the
  process and the message is requeued (``acks_on_timeout=False``), so the attempt
  counter ends a job that always hangs. Redis ``visibility_timeout`` (default 4 h)
  is longer than the longest queue wait + work, so Redis does not redeliver live jobs.
* Tasks carry no arguments — they are *tokens*. The worker asks the Redis store for
  the next job in fair order (round-robin between users), re-reads the record,
  skips jobs already finished or cancelled, and gives the handler the job's
  checkpoints, kept in a Redis hash both sides can read (`JobContext.checkpoint`).
  A Redis server for this state is required even when the broker is RabbitMQ.

The handler seam: the worker builds its handler once per worker process by calling
a factory named by dotted path (``TOTOSHKA_JOB_HANDLER`` or `set_handler_factory`).
The factory takes no arguments, may be async, and returns either the handler
``async (payload, ctx) -> None`` or a `JobHandlers` (handler + ``on_failed`` +
``close``). It runs inside the worker process's event loop, so it may create an
aiogram ``Bot`` / aiohttp session there.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown

from totoshka.jobs.context import JobContext
from totoshka.jobs.pool import backoff_delay, default_cpu_workers
from totoshka.jobs.queue import (
    JobHandlers,
    JobRecord,
    JobState,
    RetryLater,
    SubmitResult,
    WorkerLost,
)
from totoshka.jobs.redis_store import RedisJobStore

log = logging.getLogger(__name__)

TASK_NAME = "totoshka.jobs.run"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class CeleryConfig:
    """Everything both sides must agree on. `from_env` reads ``TOTOSHKA_*`` variables."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Job records, fair lines, counters and checkpoints (must be Redis).
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "totoshka:jobs"
    queue: str = "totoshka"
    #: ``"package.module:factory"``; may stay None on the bot side.
    handler_factory: str | None = None
    max_attempts: int = 5
    max_deferrals: int = 50
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    soft_time_limit: float = 600.0
    time_limit: float = 660.0
    #: Redis broker only: must exceed the longest queue wait + work, or jobs run twice.
    visibility_timeout: float = 4 * 3600.0
    cpu_workers: int = field(default_factory=default_cpu_workers)

    @classmethod
    def from_env(cls) -> CeleryConfig:
        broker = os.environ.get("TOTOSHKA_BROKER_URL", cls.broker_url)
        default_redis = broker if broker.startswith(("redis://", "rediss://")) else cls.redis_url
        return cls(
            broker_url=broker,
            redis_url=os.environ.get("TOTOSHKA_REDIS_URL", default_redis),
            prefix=os.environ.get("TOTOSHKA_JOBS_PREFIX", cls.prefix),
            queue=os.environ.get("TOTOSHKA_JOBS_QUEUE", cls.queue),
            handler_factory=os.environ.get("TOTOSHKA_JOB_HANDLER") or None,
            max_attempts=int(_env_float("TOTOSHKA_JOBS_MAX_ATTEMPTS", cls.max_attempts)),
            max_deferrals=int(_env_float("TOTOSHKA_JOBS_MAX_DEFERRALS", cls.max_deferrals)),
            backoff_base=_env_float("TOTOSHKA_JOBS_BACKOFF_BASE", cls.backoff_base),
            backoff_max=_env_float("TOTOSHKA_JOBS_BACKOFF_MAX", cls.backoff_max),
            soft_time_limit=_env_float("TOTOSHKA_JOBS_SOFT_TIME_LIMIT", cls.soft_time_limit),
            time_limit=_env_float("TOTOSHKA_JOBS_TIME_LIMIT", cls.time_limit),
            visibility_timeout=_env_float(
                "TOTOSHKA_JOBS_VISIBILITY_TIMEOUT", cls.visibility_timeout
            ),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> CeleryConfig:
        """Build from the bot's ``Settings`` (duck-typed: this package imports no bot code).

        Uses ``broker_url``, ``redis_url`` (falls back to the broker when that is Redis),
        ``max_attempts`` and, if present, ``job_handler``; the rest from `from_env`.
        """
        base = cls.from_env()
        broker = getattr(settings, "broker_url", None) or base.broker_url
        redis_url = getattr(settings, "redis_url", None)
        if not redis_url:
            redis_url = broker if broker.startswith(("redis://", "rediss://")) else base.redis_url
        return replace(
            base,
            broker_url=broker,
            redis_url=redis_url,
            max_attempts=getattr(settings, "max_attempts", None) or base.max_attempts,
            handler_factory=getattr(settings, "job_handler", None) or base.handler_factory,
        )


HandlerFactory = Callable[[], Any]

_config = CeleryConfig.from_env()
_factory: HandlerFactory | str | None = _config.handler_factory


def _apply(app: Celery, config: CeleryConfig) -> None:
    app.conf.update(
        broker_url=config.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": int(config.visibility_timeout)},
        task_default_queue=config.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_soft_time_limit=config.soft_time_limit,
        task_time_limit=config.time_limit,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )


def make_app(config: CeleryConfig | None = None) -> Celery:
    """A Celery app configured for long, at-least-once jobs."""
    app = Celery("totoshka")
    _apply(app, config or _config)
    return app


app = make_app(_config)


def configure(config: CeleryConfig) -> None:
    """Use ``config`` in this process (call before `run_worker` / creating queues)."""
    global _config, _factory
    _config = config
    if config.handler_factory is not None:
        _factory = config.handler_factory
    _apply(app, config)
    _runtime.reset()


def set_handler_factory(factory: HandlerFactory | str) -> None:
    """Register the worker's handler factory: a callable or ``"module:attr"``.

    A dotted path is resolved inside each worker process, so nothing Telegram-specific
    is imported by this package. Set it before the worker starts (prefork children
    inherit it) or via ``TOTOSHKA_JOB_HANDLER``.
    """
    global _factory
    _factory = factory
    _runtime.reset()


def _resolve(factory: HandlerFactory | str) -> HandlerFactory:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    if not attr:
        module, _, attr = factory.rpartition(".")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"handler factory {factory!r} is not callable")
    return obj


class _Runtime:
    """Per worker process: an event loop, the handler, the store, the CPU executor."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handlers: JobHandlers | None = None
        self.store: RedisJobStore | None = None
        self.cpu: ThreadPoolExecutor | None = None
        self.pid = 0

    def reset(self) -> None:
        """Drop everything (another config, another factory, a task killed mid-loop)."""
        if self.loop is not None and self.pid == os.getpid():
            # A soft time limit interrupts the loop mid-step: cancel what it left behind.
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if self.handlers is not None and self.handlers.close is not None:
                with contextlib.suppress(Exception):
                    self.loop.run_until_complete(self.handlers.close())
            with contextlib.suppress(Exception):
                self.loop.close()
        if self.cpu is not None and self.pid == os.getpid():
            self.cpu.shutdown(wait=False, cancel_futures=True)
        self._clear()

    def ensure(self) -> tuple[asyncio.AbstractEventLoop, JobHandlers, RedisJobStore]:
        if self.pid != os.getpid():  # first use in this (forked) process
            self._clear()
            self.pid = os.getpid()
        if self.store is None:
            self.store = RedisJobStore.from_url(_config.redis_url, _config.prefix)
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        if self.cpu is None:
            self.cpu = ThreadPoolExecutor(_config.cpu_workers, thread_name_prefix="totoshka-cpu")
        if self.handlers is None:
            if _factory is None:
                raise RuntimeError(
                    "no job handler: set TOTOSHKA_JOB_HANDLER or call set_handler_factory()"
                )
            made = _resolve(_factory)()
            if inspect.isawaitable(made):
                made = self.loop.run_until_complete(made)
            self.handlers = made if isinstance(made, JobHandlers) else JobHandlers(made)
        return self.loop, self.handlers, self.store


_runtime = _Runtime()


@worker_process_shutdown.connect
def _on_process_shutdown(**_: Any) -> None:
    _runtime.reset()


def _notify_failed(
    loop: asyncio.AbstractEventLoop,
    handlers: JobHandlers,
    payload: dict[str, Any],
    exc: BaseException,
) -> None:
    if handlers.on_failed is None:
        return
    try:
        loop.run_until_complete(handlers.on_failed(payload, exc))
    except Exception:
        log.exception("jobs: on_failed callback failed")


@app.task(
    bind=True,
    name=TASK_NAME,
    acks_late=True,
    reject_on_worker_lost=True,
    # Hard time limit: requeue, so the attempt counter (not a silent ack) ends it.
    acks_on_timeout=False,
    max_retries=None,
    ignore_result=True,
)
def run_job(self: Task) -> str:
    """A token: run the next job in fair order (or resume the one this token holds)."""
    loop, handlers, store = _runtime.ensure()
    token = self.request.id
    job_id = store.claim(token)
    if job_id is None:
        return "idle"  # its job was cancelled: tokens outnumber jobs then
    state, attempt, deferrals = store.start(job_id)
    if state != JobState.RUNNING.value:
        store.release_token(token)
        return f"skipped {job_id}: {state}"
    job = store.get(job_id)
    if job is None:  # the record expired under a very late redelivery
        store.release_token(token)
        return f"skipped {job_id}: missing"
    failures_before = attempt - 1 - deferrals
    if failures_before >= _config.max_attempts:
        # Earlier runs died without recording an outcome (worker lost): poison job.
        exc = WorkerLost(f"worker died on every attempt of job {job_id}")
        store.finish(job_id, JobState.FAILED, exc)
        _notify_failed(loop, handlers, job.payload, exc)
        return f"failed {job_id}"
    ctx = JobContext(
        job_id,
        attempt,
        job.user_key,
        checkpoints=job.checkpoints,
        mark=lambda key, value: loop.run_in_executor(None, store.mark, job_id, key, value),
        executor=_runtime.cpu,
    )
    try:
        loop.run_until_complete(handlers.handler(job.payload, ctx))
    except RetryLater as exc:
        if deferrals + 1 > _config.max_deferrals:
            store.finish(job_id, JobState.FAILED, exc)
            _notify_failed(loop, handlers, job.payload, exc)
            return f"failed {job_id}"
        store.finish(job_id, JobState.QUEUED, exc, deferral=True)
        raise self.retry(countdown=exc.delay, exc=exc, max_retries=None) from exc
    except Exception as exc:
        if isinstance(exc, SoftTimeLimitExceeded):
            _runtime.reset()  # the loop was interrupted mid-step; start clean next time
            loop, handlers, store = _runtime.ensure()
        failures = attempt - deferrals
        if failures >= _config.max_attempts:
            store.finish(job_id, JobState.FAILED, exc)
            _notify_failed(loop, handlers, job.payload, exc)
            return f"failed {job_id}"
        store.finish(job_id, JobState.QUEUED, exc)
        delay = backoff_delay(failures, _config.backoff_base, _config.backoff_max)
        raise self.retry(
            countdown=delay,
            exc=exc,
            max_retries=_config.max_attempts + _config.max_deferrals,
        ) from exc
    store.finish(job_id, JobState.DONE)
    return f"done {job_id}"


class CeleryJobQueue:
    """`JobQueue` for the bot when jobs run on Celery workers.

    ``submit`` stores the job in Redis and sends one token task. ``position`` is
    *approximate*: the round-robin place among jobs still waiting in the Redis lines
    (exact for those), ignoring that several workers start jobs in parallel; a job
    waiting for its retry countdown reports 1. There is no ``on_change`` push in this
    mode — poll ``position`` to refresh status messages.
    """

    def __init__(self, config: CeleryConfig | None = None, *, celery_app: Celery | None = None):
        self.config = config or _config
        self.app = celery_app or make_app(self.config)
        self.store = RedisJobStore.from_url(self.config.redis_url, self.config.prefix)

    @classmethod
    def from_settings(cls, settings: Any) -> CeleryJobQueue:
        """The bot's entry: ``CeleryJobQueue.from_settings(settings)``."""
        return cls(CeleryConfig.from_settings(settings))

    def submit(
        self,
        user_key: str,
        payload: dict[str, Any],
        *,
        max_pending: int | None = None,
        dedupe_key: str | None = None,
    ) -> SubmitResult:
        job_id, duplicate = self.store.submit(
            user_key, payload, max_pending=max_pending, dedupe_key=dedupe_key
        )
        if not duplicate:
            try:
                self.app.send_task(TASK_NAME, queue=self.config.queue)
            except Exception as exc:
                self.store.cancel_job(job_id, f"broker unavailable: {exc}")
                raise
        return SubmitResult(job_id, self.store.position(job_id) or 0, duplicate=duplicate)

    def cancel_user(self, user_key: str) -> list[str]:
        return self.store.cancel_user(user_key)

    def kick(self, tokens: int | None = None) -> int:
        """Send extra tokens (default: one per job waiting in line); returns how many.

        Repair tool for when the broker lost messages (a purge, a flushed Redis): the
        jobs are still in Redis but nothing would start them. Surplus tokens are
        harmless — a token that finds no job returns at once.
        """
        n = self.store.waiting() if tokens is None else tokens
        for _ in range(n):
            self.app.send_task(TASK_NAME, queue=self.config.queue)
        return n

    def position(self, job_id: str) -> int | None:
        return self.store.position(job_id)

    def pending_count(self, user_key: str) -> int:
        return self.store.pending_count(user_key)

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def get(self, job_id: str) -> JobRecord | None:
        """The `JobRecord` (with checkpoints) or None; finished jobs expire after a week."""
        return self.store.get(job_id)

    def mark(self, job_id: str, key: str, value: Any) -> None:
        self.store.mark(job_id, key, value)

    def job_state(self, job_id: str) -> dict[str, Any]:
        return self.store.job_state(job_id)


def run_worker(
    config: CeleryConfig | None = None,
    *,
    handler_factory: HandlerFactory | str | None = None,
    concurrency: int | None = None,
    loglevel: str = "INFO",
    extra_args: list[str] | None = None,
) -> None:
    """Run a Celery worker in this process until it is stopped (``totoshka worker``).

    ``concurrency`` = worker processes; by default one per two cores, since each
    process runs one inference at a time. (Batching same-style jobs on one GPU
    needs them in one process: that is the embedded pool's job, not Celery's.)
    """
    if config is not None:
        configure(config)
    if handler_factory is not None:
        set_handler_factory(handler_factory)
    argv = [
        "worker",
        f"--queues={_config.queue}",
        f"--concurrency={concurrency or max(1, (os.cpu_count() or 1) // 2)}",
        "--prefetch-multiplier=1",
        f"--loglevel={loglevel}",
        *(extra_args or []),
    ]
    app.worker_main(argv)
