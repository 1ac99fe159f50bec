"""The in-process asyncio worker pool that consumes the embedded queue.

Two kinds of concurrency, sized separately on purpose:

* ``concurrency`` async slots: a job spends much of its life waiting on the network
  (download the photo, upload the result), so several jobs may be in flight;
* ``cpu_workers`` threads in a `ThreadPoolExecutor` for `JobContext.run_blocking`:
  inference is CPU-bound and torch parallelises every call itself, so by default
  only one inference per two cores runs at a time.

Queue calls (SQLite) run on a small private executor too, so a busy disk never
stalls the event loop that also serves Telegram updates.

Outcomes: the handler returns → ``done``; raises `RetryLater` → requeued after its
delay (a deferral, separate budget); raises anything else → requeued with
exponential backoff until ``max_attempts`` runs have failed, then ``failed`` and
``on_failed(payload, exc)``. A pool stopped mid-job gives the job back with the
attempt refunded; a *killed* pool's jobs are recovered by the next pool to start
(or by a live pool once the lease runs out), the attempt counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from totoshka.jobs.context import JobContext
from totoshka.jobs.queue import (
    ChangeCallback,
    FailedCallback,
    Handler,
    JobRecord,
    RetryLater,
    WorkerLost,
)
from totoshka.jobs.sqlite_queue import SQLiteJobQueue, make_owner_id
from totoshka.observability import JOB_ID, USER_ID, Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


def default_cpu_workers() -> int:
    """One thread per two cores: one CPU inference already uses the cores through its
    own thread pool. The composition root passes the engine's own figure instead."""
    return max(1, (os.cpu_count() or 1) // 2)


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """``base * 2**(failures-1)`` capped: 1st retry after ``base``, then doubling."""
    if base <= 0:
        return 0.0
    return float(min(cap, base * (2 ** max(0, failures - 1))))


class WorkerPool:
    """Runs queued jobs with ``handler`` until stopped. Start/stop from the event loop."""

    def __init__(
        self,
        queue: SQLiteJobQueue,
        handler: Handler,
        *,
        concurrency: int | None = None,
        cpu_workers: int | None = None,
        max_attempts: int = 5,
        on_change: ChangeCallback | None = None,
        on_failed: FailedCallback | None = None,
        max_deferrals: int = 50,
        backoff_base: float = 2.0,
        backoff_max: float = 300.0,
        poll_interval: float = 1.0,
        lease_s: float = 60.0,
        metrics: Metrics | None = None,
        lane: str = "photos",
    ) -> None:
        """``metrics`` counts this pool's runs under ``lane`` (None: nothing counted)."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.queue = queue
        self.handler = handler
        self.cpu_workers = cpu_workers or default_cpu_workers()
        self.concurrency = concurrency or self.cpu_workers * 2 + 2
        self.max_attempts = max_attempts
        self.max_deferrals = max_deferrals
        self.on_change = on_change
        self.on_failed = on_failed
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.lease_s = lease_s
        self.metrics = metrics
        self.lane = lane
        if metrics is not None:
            metrics.lane(lane)
        self.owner = make_owner_id()
        self._active: dict[str, JobRecord] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._service: list[asyncio.Task[None]] = []
        self._stopping = False
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._changed_evt: asyncio.Event | None = None
        self._cpu: ThreadPoolExecutor | None = None
        self._db: ThreadPoolExecutor | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs of dead workers, then start the slots. Returns at once."""
        if self._started:
            raise RuntimeError("WorkerPool already started")
        self._started = True
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._changed_evt = asyncio.Event()
        self._cpu = ThreadPoolExecutor(self.cpu_workers, thread_name_prefix="totoshka-cpu")
        self._db = ThreadPoolExecutor(2, thread_name_prefix="totoshka-jobs-db")
        await self._recover()
        self.queue.add_listener(self._wake_threadsafe)
        self._service = [
            asyncio.create_task(self._notifier(), name="jobs-notifier"),
            asyncio.create_task(self._heartbeat(), name="jobs-heartbeat"),
        ]
        self._tasks = [
            asyncio.create_task(self._slot(), name=f"jobs-slot-{i}")
            for i in range(self.concurrency)
        ]

    async def stop(self, *, graceful: bool = True, timeout: float = 30) -> None:
        """Stop taking jobs; let running ones finish (up to ``timeout``) if ``graceful``.

        Jobs still running afterwards are cancelled and given back to the queue with
        their attempt refunded — stopping is not the job's fault.
        """
        if not self._started:
            return
        self._stopping = True
        self.queue.remove_listener(self._wake_threadsafe)
        assert self._wake is not None
        self._wake.set()
        if graceful and self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for job_id in list(self._active):
            with contextlib.suppress(Exception):
                await self._call(self.queue.release, job_id, self.owner)
            self._active.pop(job_id, None)
        # One last notification so status messages reflect given-back jobs.
        if self.on_change is not None:
            await self._safe(self.on_change())
        for task in self._service:
            task.cancel()
        await asyncio.gather(*self._service, return_exceptions=True)
        self._tasks, self._service = [], []
        assert self._cpu is not None and self._db is not None
        self._cpu.shutdown(wait=False, cancel_futures=True)
        self._db.shutdown(wait=True)
        self._started = False

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- internals ----------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, functools.partial(fn, *args, **kwargs))

    def _wake_threadsafe(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _changed(self) -> None:
        if self._changed_evt is not None:
            self._changed_evt.set()

    @staticmethod
    async def _safe(awaitable: Any) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("jobs: callback failed")

    async def _notifier(self) -> None:
        """Coalesce position changes: one `on_change` call covers any number of them."""
        assert self._changed_evt is not None
        while True:
            await self._changed_evt.wait()
            self._changed_evt.clear()
            if self.on_change is not None:
                await self._safe(self.on_change())

    async def _heartbeat(self) -> None:
        """Renew our leases; now and then take back jobs of workers that died."""
        beat = max(0.05, self.lease_s / 3)
        last_recover = time.monotonic()
        while True:
            await asyncio.sleep(beat)
            try:
                await self._call(self.queue.renew, self.owner, self.lease_s)
                if time.monotonic() - last_recover >= self.lease_s:
                    last_recover = time.monotonic()
                    await self._recover()
            except Exception:
                log.exception("jobs: heartbeat failed")

    async def _recover(self) -> None:
        requeued, failed = await self._call(self.queue.recover, self.max_attempts)
        for job in requeued:
            log.warning("jobs: requeued %s (attempt %d): its worker died", job.job_id, job.attempt)
            if self.metrics is not None:
                self.metrics.jobs_retried.labels(self.lane, "worker_lost").inc()
        for job in failed:
            log.error("jobs: %s failed: its worker died on every attempt", job.job_id)
            if self.metrics is not None:
                self.metrics.jobs_failed.labels(self.lane).inc()
            if self.on_failed is not None:
                exc = WorkerLost(f"worker died while running job {job.job_id}")
                await self._safe(self.on_failed(job.payload, exc))
        if requeued or failed:
            self._changed()
            self._wake_threadsafe()

    async def _idle(self) -> None:
        assert self._wake is not None
        timeout = self.poll_interval
        try:
            ready_at = await self._call(self.queue.next_ready_at)
        except Exception:
            ready_at = None
        if ready_at is not None:
            timeout = min(timeout, max(0.0, ready_at - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.01))

    async def _slot(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            try:
                job = await self._call(self.queue.claim, self.owner, self.lease_s)
            except Exception:
                log.exception("jobs: claim failed")
                job = None
            if job is None:
                await self._idle()
                continue
            self._changed()
            await self._run(job)

    async def _run(self, job: JobRecord) -> None:
        # what the handler logs, in its threads too, names the job and its user
        tokens = JOB_ID.set(job.job_id), USER_ID.set(job.user_key)
        try:
            await self._run_job(job)
        finally:
            JOB_ID.reset(tokens[0])
            USER_ID.reset(tokens[1])

    async def _run_job(self, job: JobRecord) -> None:
        self._active[job.job_id] = job
        metrics = self.metrics
        if metrics is not None:
            metrics.job_started(
                self.lane, job.attempt, job.created_at, job.started_at or job.created_at
            )
        ctx = JobContext(
            job.job_id,
            job.attempt,
            job.user_key,
            checkpoints=job.checkpoints,
            mark=functools.partial(self._call, self.queue.mark, job.job_id),
            executor=self._cpu,
        )
        try:
            await self.handler(job.payload, ctx)
        except RetryLater as exc:
            await self._after_deferral(job, exc)
        except asyncio.CancelledError:
            raise  # stop(): the job stays in _active and is released there
        except Exception as exc:
            await self._after_error(job, exc)
        else:
            if await self._call(self.queue.complete, job.job_id, self.owner):
                if metrics is not None:
                    metrics.jobs_done.labels(self.lane).inc()
            else:
                log.warning("jobs: %s finished after its lease was taken over", job.job_id)
        finally:
            if metrics is not None:
                metrics.job_stopped(self.lane)
        self._active.pop(job.job_id, None)
        self._changed()

    async def _after_deferral(self, job: JobRecord, exc: RetryLater) -> None:
        if job.deferrals + 1 > self.max_deferrals:
            await self._give_up(job, exc)
            return
        log.info("jobs: %s deferred %.3gs: %s", job.job_id, exc.delay, exc)
        if self.metrics is not None:
            self.metrics.jobs_retried.labels(self.lane, "deferred").inc()
        await self._call(self.queue.retry, job.job_id, self.owner, exc.delay, exc, deferral=True)

    async def _after_error(self, job: JobRecord, exc: Exception) -> None:
        failures = job.attempt - job.deferrals
        if failures >= self.max_attempts:
            await self._give_up(job, exc)
            return
        delay = backoff_delay(failures, self.backoff_base, self.backoff_max)
        log.warning(
            "jobs: %s attempt %d failed (%s); retry in %.3gs", job.job_id, job.attempt, exc, delay
        )
        await self._call(self.queue.retry, job.job_id, self.owner, delay, exc)
        if self.metrics is not None:
            self.metrics.jobs_retried.labels(self.lane, "error").inc()

    async def _give_up(self, job: JobRecord, exc: BaseException) -> None:
        log.error("jobs: %s failed after %d attempts: %r", job.job_id, job.attempt, exc)
        await self._call(self.queue.fail, job.job_id, self.owner, exc)
        if self.metrics is not None:
            self.metrics.jobs_failed.labels(self.lane).inc()
        if self.on_failed is not None:
            await self._safe(self.on_failed(job.payload, exc))
