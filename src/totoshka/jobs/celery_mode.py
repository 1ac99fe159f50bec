"""Scale-out mode: the same payloads and the same handler, run by Celery workers.

Bot side: `CeleryJobQueue` implements `JobQueue`. Worker side::

    TOTOSHKA_BROKER_URL=redis://host:6379/0 \\
    TOTOSHKA_REDIS_URL=redis://host:6379/0 \\
    TOTOSHKA_JOB_HANDLER=totoshka.bot.wiring:worker_handlers \\
    celery -A totoshka.jobs.celery_worker worker -c 2 --prefetch-multiplier 1

or ``run_worker(config)`` from Python (what ``totoshka worker`` calls). Nothing is
built at import time: `make_app` is the factory of the Celery app and of the
per-process runtime its task uses, from a `CeleryConfig` the caller read.

How it follows Celery's advice for long jobs:

* ``acks_late=True`` + ``worker_prefetch_multiplier=1`` + ``task_reject_on_worker_lost``:
  a worker that dies mid-job leaves the message to be redelivered, and a worker
  holds no more than the job it runs.
* Brokers do not count redeliveries, so the attempt counter lives in the job record
  (Redis, see `redis_store`): a job whose runs keep dying or failing is marked
  ``failed`` after ``max_attempts`` and stops looping.
* Expected errors: `RetryLater` → ``Task.retry(countdown=delay)``; other exceptions →
  ``Task.retry`` with exponential backoff, up to ``max_attempts``.
* A worker killed outright (SIGKILL, its host gone) would strand its job for the
  Redis broker's ``visibility_timeout`` (4 h). So a running job holds a *lease* of
  a few seconds in the store, renewed by a heartbeat thread; every worker and bot
  runs a reconciler (`Reconciler`) that puts jobs with a lapsed lease back at the
  head of their user's line and sends tokens for jobs that have none (those, and
  jobs whose bot died between storing them and sending their token). RabbitMQ
  redelivers a dead worker's token by itself; the lease covers that too.
* Soft and hard time limits on the task. The soft limit raises inside the handler
  and counts as a failed attempt (retried with backoff); the hard limit kills the
  process and the message is requeued (``acks_on_timeout=False``), so the attempt
  counter ends a job that always hangs. Redis ``visibility_timeout`` (default 4 h)
  is longer than the longest queue wait + work, so Redis does not redeliver live jobs.
* Each run is counted in the handlers' `Metrics` (`JobHandlers.metrics`), as the
  embedded pool counts its runs: attempts, done, failed, retried by reason (error,
  deferred, worker_lost), running, per lane. ``totoshka worker`` adds up its pool
  children's figures on its /metrics (prometheus_client's multiprocess mode).
* Tasks carry no arguments — they are *tokens*. The worker asks the Redis store for
  the next job in fair order (round-robin between users), re-reads the record,
  skips jobs already finished or cancelled, and gives the handler the job's
  checkpoints, kept in a Redis hash both sides can read (`JobContext.checkpoint`).
  A Redis server for this state is required even when the broker is RabbitMQ.

The handler seam: the worker builds its handler once per worker process by calling
a factory named by dotted path (``TOTOSHKA_JOB_HANDLER``) or given to `make_app`.
The factory takes no arguments, may be async, and returns either the handler
``async (payload, ctx) -> None`` or a `JobHandlers` (handler + ``on_failed`` +
``close``). It runs inside the worker process's event loop, so it may create an
aiogram ``Bot`` / aiohttp session there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import pkgutil
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.jobs.context import JobContext
from totoshka.jobs.pool import backoff_delay, default_cpu_workers
from totoshka.jobs.queue import (
    JobHandlers,
    JobRecord,
    JobState,
    QueueUnavailable,
    RetryLater,
    SubmitResult,
    WorkerLost,
)
from totoshka.jobs.redis_store import RedisJobStore
from totoshka.observability import JOB_ID, USER_ID, Metrics

log = logging.getLogger(__name__)

TASK_NAME = "totoshka.jobs.run"
#: Each lane has its own broker queue, token task and Redis lines: a worker process
#: painting a minute-long clip holds no photo's token, and a worker started for one
#: lane (``totoshka worker --lane photos``) never takes the other's jobs.
LANES = ("photos", "clips")


def lane_config(config: CeleryConfig, lane: str) -> CeleryConfig:
    """The photos' lane is `config` itself; the clips' has ``-clips`` and ``:clips``."""
    if lane == "photos":
        return config
    return config.model_copy(
        update={"queue": f"{config.queue}-{lane}", "prefix": f"{config.prefix}:{lane}"}
    )


def lane_task(lane: str) -> str:
    return TASK_NAME if lane == "photos" else f"{TASK_NAME}_{lane}"


HandlerFactory = Callable[[], Any]


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


def _resolve(factory: HandlerFactory | str) -> HandlerFactory:
    obj = factory if callable(factory) else pkgutil.resolve_name(factory)  # "mod:attr", "mod.attr"
    if not callable(obj):
        raise TypeError(f"handler factory {factory!r} is not callable")
    return obj


class _Runtime:
    """Per worker process: an event loop, the handler, the store, the CPU executor."""

    def __init__(self, config: CeleryConfig, factory: HandlerFactory | str | None) -> None:
        self.config = config
        self.factory = factory
        self._clear()

    def _clear(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handlers: JobHandlers | None = None
        self.stores: dict[str, RedisJobStore] = {}  # one per lane's prefix
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

    def ensure(self, prefix: str) -> tuple[asyncio.AbstractEventLoop, JobHandlers, RedisJobStore]:
        if self.pid != os.getpid():  # first use in this (forked) process
            self._clear()
            self.pid = os.getpid()
        if prefix not in self.stores:
            self.stores[prefix] = RedisJobStore.from_url(self.config.redis_url, prefix)
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        if self.handlers is None:
            if self.factory is None:
                raise RuntimeError("no job handler: set TOTOSHKA_JOB_HANDLER or give make_app one")
            made = _resolve(self.factory)()
            if inspect.isawaitable(made):
                made = self.loop.run_until_complete(made)
            self.handlers = made if isinstance(made, JobHandlers) else JobHandlers(made)
        if self.cpu is None:
            threads = self.config.cpu_workers or self.handlers.cpu_workers or default_cpu_workers()
            self.cpu = ThreadPoolExecutor(threads, thread_name_prefix="totoshka-cpu")
        return self.loop, self.handlers, self.stores[prefix]


def _fail(
    loop: asyncio.AbstractEventLoop,
    handlers: JobHandlers,
    store: RedisJobStore,
    job: JobRecord,
    exc: BaseException,
) -> str:
    """Mark the job failed for good and tell the handler's ``on_failed``."""
    store.finish(job.job_id, JobState.FAILED, exc)
    if handlers.on_failed is not None:
        try:
            loop.run_until_complete(handlers.on_failed(job.payload, exc))
        except Exception:
            log.exception("jobs: on_failed callback failed")
    return f"failed {job.job_id}"


class _Heartbeat:
    """Renews a run's lease from a thread of its own while the job runs.

    A thread, not a task on the job's event loop: inference blocks that loop (or
    holds it in a long await), and the lease must lapse only when the process is
    gone. A failed renewal (Redis restarting) is retried at the next beat."""

    def __init__(self, store: RedisJobStore, job_id: str, run: str, lease: float) -> None:
        self.store, self.job_id, self.run, self.lease = store, job_id, run, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="totoshka-lease", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 4):
            try:
                if not self.store.renew(self.job_id, self.run, self.lease):
                    log.warning("jobs: lost the lease of job %s (reclaimed)", self.job_id)
                    return
            except Exception as exc:
                log.warning("jobs: lease of job %s not renewed: %s", self.job_id, exc)


class Reconciler:
    """The repairs no broker makes for us, for every lane: jobs whose worker died
    (lapsed lease) go back in line, and jobs without a token get one.

    Safe to run in any number of processes at once (each step is one atomic script
    in Redis), so every worker runs one in a thread and the bot another: the repair
    happens while anything of the deployment is alive."""

    def __init__(self, app: Celery, config: CeleryConfig, lanes: tuple[str, ...] = LANES) -> None:
        self.app, self.config, self.lanes = app, config, lanes
        self.stores = {
            lane: RedisJobStore.from_url(config.redis_url, lane_config(config, lane).prefix)
            for lane in lanes
        }

    def once(self) -> dict[str, tuple[list[str], int]]:
        """One pass: per lane, the jobs put back and the tokens sent."""
        done = {}
        for lane, store in self.stores.items():
            reclaimed = store.reclaim()
            for job_id in reclaimed:
                log.warning("jobs: job %s lost its worker; back in line", job_id)
            need = store.take_deficit(self.config.token_grace)
            sent = 0
            try:
                for _ in range(need):
                    self.app.send_task(lane_task(lane), queue=lane_config(self.config, lane).queue)
                    sent += 1
            finally:
                if sent < need:
                    store.tokens_sent(sent - need)
            if sent:
                log.warning("jobs: sent %d token(s) for %s jobs that had none", sent, lane)
            done[lane] = (reclaimed, sent)
        return done

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.config.reconcile_every):
            try:
                self.once()
            except Exception as exc:  # Redis or the broker away: the next pass retries
                log.warning("jobs: reconcile failed: %s", exc)


def make_app(config: CeleryConfig, handler_factory: HandlerFactory | str | None = None) -> Celery:
    """A Celery app configured for long, at-least-once jobs, with its task.

    The bot side needs no handler (it only sends tokens); a worker gets one here or
    by ``config.handler_factory``, built once in each worker process on first use
    and shared by the lanes' tasks.
    """
    app = Celery("totoshka")
    _apply(app, config)
    runtime = _Runtime(config, handler_factory or config.handler_factory)
    # The handler closes its Bot session when the pool process exits (held strongly:
    # the receiver is a closure).
    worker_process_shutdown.connect(lambda **_: runtime.reset(), weak=False)
    _reconcile_in_worker(app, config)

    for lane in LANES:
        _token_task(app, config, runtime, lane)
    return app


def _reconcile_in_worker(app: Celery, config: CeleryConfig) -> None:
    """A reconciler thread in the worker's main process, from ready to shutdown."""
    stop = threading.Event()

    def started(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return  # another app's worker in this process
        reconciler = Reconciler(app, config)
        threading.Thread(
            target=reconciler.run_forever, args=(stop,), name="totoshka-reconcile", daemon=True
        ).start()

    worker_ready.connect(started, weak=False)
    worker_shutdown.connect(lambda **_: stop.set(), weak=False)


def _token_task(app: Celery, config: CeleryConfig, runtime: _Runtime, lane: str) -> None:
    prefix = lane_config(config, lane).prefix

    @app.task(  # type: ignore[untyped-decorator]
        bind=True,
        name=lane_task(lane),
        acks_late=True,
        reject_on_worker_lost=True,
        # Hard time limit: requeue, so the attempt counter (not a silent ack) ends it.
        acks_on_timeout=False,
        max_retries=None,
        ignore_result=True,
    )
    def run_job(self: Task) -> str:
        """A token: run the next job in fair order (or resume the one this token holds)."""
        loop, handlers, store = runtime.ensure(prefix)
        token = self.request.id
        job_id = store.claim(token)
        if job_id is None:
            return "idle"  # its job was cancelled: tokens outnumber jobs then
        tally = _Tally(handlers.metrics, lane)
        # read before the start overwrites it: a previous run that left its job running
        # (or a reclaim's mark) is a worker lost; only the counts need it
        before = store.get(job_id) if tally.metrics is not None else None
        run = uuid.uuid4().hex
        worker = self.request.hostname or ""
        state, attempt, deferrals = store.start(job_id, token, run, config.lease, worker)
        if state != JobState.RUNNING.value:
            store.release_token(token)
            return f"skipped {job_id}: {state}"
        job = store.get(job_id)
        if job is None:  # the record expired under a very late redelivery
            store.release_token(token)
            return f"skipped {job_id}: missing"
        with _about(job):  # what the task and the handler log names the job and its user
            failures_before = attempt - 1 - deferrals
            if failures_before >= config.max_attempts:
                # Earlier runs died without recording an outcome (worker lost): poison job.
                log.error("jobs: %s failed: its worker died on every attempt", job_id)
                tally.failed()
                exc = WorkerLost(f"worker died on every attempt of job {job_id}")
                return _fail(loop, handlers, store, job, exc)
            if _lost(before):
                log.warning("jobs: %s lost its worker; attempt %d now", job_id, attempt)
                tally.retried("worker_lost")
            ctx = JobContext(
                job_id,
                attempt,
                job.user_key,
                checkpoints=job.checkpoints,
                mark=lambda key, value: loop.run_in_executor(
                    None, store.mark, job_id, key, value, config.lease
                ),
                executor=runtime.cpu,
            )
            tally.started(job, attempt)
            try:
                with _Heartbeat(store, job_id, run, config.lease):
                    loop.run_until_complete(handlers.handler(job.payload, ctx))
            except RetryLater as exc:
                if deferrals + 1 > config.max_deferrals:
                    log.error("jobs: %s failed after %d deferrals: %r", job_id, deferrals, exc)
                    tally.failed()
                    return _fail(loop, handlers, store, job, exc)
                log.info("jobs: %s deferred %.3gs: %s", job_id, exc.delay, exc)
                hold = exc.delay + config.lease
                store.finish(job_id, JobState.QUEUED, exc, deferral=True, hold=hold)
                tally.retried("deferred")
                raise self.retry(countdown=exc.delay, exc=exc, max_retries=None) from exc
            except Exception as exc:
                if isinstance(exc, SoftTimeLimitExceeded):
                    runtime.reset()  # the loop was interrupted mid-step; start clean next time
                    loop, handlers, store = runtime.ensure(prefix)
                failures = attempt - deferrals
                if failures >= config.max_attempts:
                    log.error("jobs: %s failed after %d attempts: %r", job_id, attempt, exc)
                    tally.failed()
                    return _fail(loop, handlers, store, job, exc)
                delay = backoff_delay(failures, config.backoff_base, config.backoff_max)
                log.warning(
                    "jobs: %s attempt %d failed (%s); retry in %.3gs", job_id, attempt, exc, delay
                )
                store.finish(job_id, JobState.QUEUED, exc, hold=delay + config.lease)
                tally.retried("error")
                raise self.retry(
                    countdown=delay,
                    exc=exc,
                    max_retries=config.max_attempts + config.max_deferrals,
                ) from exc
            finally:
                tally.stopped()
            store.finish(job_id, JobState.DONE)
            tally.done()
            log.info("jobs: %s done (attempt %d)", job_id, attempt)
            return f"done {job_id}"


@contextlib.contextmanager
def _about(job: JobRecord) -> Iterator[None]:
    """`JOB_ID` and `USER_ID` for the JSON log lines of a run (the CPU threads copy them)."""
    names = JOB_ID.set(job.job_id), USER_ID.set(job.user_key)
    try:
        yield
    finally:
        JOB_ID.reset(names[0])
        USER_ID.reset(names[1])


def _lost(before: JobRecord | None) -> bool:
    """Whether the run before this one died with its job: the record still says
    running (a redelivered token: its prefork child was killed, or the hard time
    limit), or a reclaim put it back (its lease lapsed). Retries and deferrals finish
    their run as queued, with their own error."""
    if before is None:
        return False
    if before.state is JobState.RUNNING:
        return True
    return before.state is JobState.QUEUED and (before.last_error or "").startswith("WorkerLost")


class _Tally:
    """A run's figures in `JobHandlers.metrics`, as the embedded pool counts them
    (labels: the lane, a retry's reason); nothing when the handlers bring none."""

    def __init__(self, metrics: Metrics | None, lane: str) -> None:
        self.metrics, self.lane = metrics, lane
        if metrics is not None:
            metrics.lane(lane)  # zeros from the first scrape

    def started(self, job: JobRecord, attempt: int) -> None:
        if self.metrics is not None:
            started = job.started_at or job.created_at
            self.metrics.job_started(self.lane, attempt, job.created_at, started)

    def stopped(self) -> None:
        if self.metrics is not None:
            self.metrics.job_stopped(self.lane)

    def done(self) -> None:
        if self.metrics is not None:
            self.metrics.jobs_done.labels(self.lane).inc()

    def failed(self) -> None:
        if self.metrics is not None:
            self.metrics.jobs_failed.labels(self.lane).inc()

    def retried(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.jobs_retried.labels(self.lane, reason).inc()


class CeleryJobQueue:
    """`JobQueue` for the bot when jobs run on Celery workers.

    ``submit`` stores the job in Redis and sends one token task. ``position`` is
    *approximate*: the round-robin place among jobs still waiting in the Redis lines
    (exact for those), ignoring that several workers start jobs in parallel; a job
    waiting for its retry countdown reports 1. There is no ``on_change`` push in this
    mode — poll ``position`` to refresh status messages.
    """

    def __init__(
        self, config: CeleryConfig, *, celery_app: Celery | None = None, lane: str = "photos"
    ):
        self.config = lane_config(config, lane)
        self.task = lane_task(lane)
        self.app = celery_app or make_app(config)
        self.store = RedisJobStore.from_url(config.redis_url, self.config.prefix)
        self._void: dict[str, str] = {}  # refused submits not yet withdrawn
        self._reconciler = Reconciler(self.app, config, (lane,))

    def submit(
        self,
        user_key: str,
        payload: dict[str, Any],
        *,
        max_pending: int | None = None,
        dedupe_key: str | None = None,
    ) -> SubmitResult:
        """Fully queued, or refused with `QueueUnavailable`: never half.

        A submit that times out (Redis frozen) may still run on the server once it
        thaws, so the job is withdrawn by its id, now or by the next `reconcile`
        in this process, well inside the grace before any reconciler would send it
        a token. The token is counted once sent; a bot dying just before that
        leaves a tokenless job, which a reconciler repairs."""
        job_id = uuid.uuid4().hex
        try:
            job_id, duplicate = self.store.submit(
                user_key, payload, max_pending=max_pending, dedupe_key=dedupe_key, job_id=job_id
            )
        except redis.RedisError as exc:
            self._withdraw(job_id, f"job store unavailable: {type(exc).__name__}")
            raise QueueUnavailable("job store", exc) from exc
        if not duplicate:
            try:
                self.app.send_task(self.task, queue=self.config.queue)
            except Exception as exc:
                self._withdraw(job_id, f"broker unavailable: {type(exc).__name__}")
                raise QueueUnavailable("broker", exc) from exc
            with contextlib.suppress(redis.RedisError):  # uncounted: one extra token later
                self.store.tokens_sent(1)
        try:
            position = self.store.position(job_id) or 0
        except redis.RedisError:
            position = 0
        return SubmitResult(job_id, position, duplicate=duplicate)

    def _withdraw(self, job_id: str, why: str) -> None:
        try:
            self.store.cancel_job(job_id, why)
        except redis.RedisError:
            self._void[job_id] = why  # Redis still away: the next reconcile withdraws it

    def reconcile(self) -> dict[str, tuple[list[str], int]]:
        """Withdraw refused submits, then the `Reconciler` pass (the bot runs this)."""
        for job_id, why in list(self._void.items()):
            self.store.cancel_job(job_id, why)
            del self._void[job_id]
        return self._reconciler.once()

    def cancel_user(self, user_key: str) -> list[str]:
        return self.store.cancel_user(user_key)

    def position(self, job_id: str) -> int | None:
        return self.store.position(job_id)

    def pending_count(self, user_key: str) -> int:
        return self.store.pending_count(user_key)

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def ping(self, timeout: float = 2.0) -> None:
        """Raise `QueueUnavailable` unless both the job store (Redis) and the broker
        answer: a bot that can store a job but not send its token loses none, but
        serves nobody either (the /readyz check)."""
        try:
            self.store.r.ping()
        except Exception as exc:
            raise QueueUnavailable("job store", exc) from exc
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=timeout
                )
        except Exception as exc:
            raise QueueUnavailable("broker", exc) from exc

    def get(self, job_id: str) -> JobRecord | None:
        """The `JobRecord` (with checkpoints) or None; finished jobs expire after a week."""
        return self.store.get(job_id)

    def mark(self, job_id: str, key: str, value: Any) -> None:
        self.store.mark(job_id, key, value)

    def job_state(self, job_id: str) -> dict[str, Any]:
        return self.store.job_state(job_id)


def run_worker(
    config: CeleryConfig,
    *,
    handler_factory: HandlerFactory | str | None = None,
    concurrency: int | None = None,
    loglevel: str = "INFO",
    extra_args: list[str] | None = None,
    lanes: tuple[str, ...] = LANES,
    hostname: str | None = None,
    quiet: bool = False,
) -> None:
    """Run a Celery worker in this process until it is stopped (``totoshka worker``),
    taking the jobs of `lanes` (both by default; one worker per lane keeps a clip
    from ever holding up a photo).

    ``concurrency`` = worker processes; by default one per two cores, since each
    process runs one inference at a time. (Batching same-style jobs on one GPU
    needs them in one process: that is the embedded pool's job, not Celery's.)

    ``quiet``: no start-up banner (Celery prints it past the log, as plain text).
    """
    app = make_app(config, handler_factory)
    try:
        warning = RedisJobStore.from_url(config.redis_url, config.prefix).persistence_warning()
    except Exception as exc:  # Redis not up yet: the worker waits for it, as Celery does
        warning = f"job store: persistence not checked ({type(exc).__name__})"
    if warning:
        log.warning("%s", warning)
    # unique per process: two workers on one host must not share RabbitMQ's pidbox
    node = hostname or f"totoshka-{'-'.join(lanes)}-{os.getpid()}@%h"
    argv = [
        *(["--quiet"] if quiet else []),  # an option of `celery` itself, before the command
        "worker",
        "--queues=" + ",".join(lane_config(config, lane).queue for lane in lanes),
        f"--hostname={node}",
        f"--concurrency={concurrency or default_cpu_workers()}",
        "--prefetch-multiplier=1",
        f"--loglevel={loglevel}",
        *(extra_args or []),
    ]
    app.worker_main(argv)
