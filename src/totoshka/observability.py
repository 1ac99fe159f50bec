"""What the operator sees of a running bot or worker: Prometheus metrics and log context.

Every figure lives in a `Metrics` object that owns its own `CollectorRegistry`:
nothing is registered in prometheus_client's global default registry, so several
bots in one process (the tests) never collide over a metric name, and each
scrape shows one bot's figures only. The composition root builds one `Metrics`
per process and hands it to whatever counts something: the update middleware,
the worker pool (or the Celery task), the job handler.

The queue's depth is not counted as jobs come and go (a Celery bot never sees
its jobs start); it is read from the queue itself when Prometheus scrapes
(`QueueDepthCollector`), so it is right after a restart too.

Labels are lanes, update types, stages and outcomes — small fixed sets, never a
user, a chat, a job id or anything secret. Who a log line is about travels in the
context variables `JOB_ID` and `USER_ID`, which the JSON log formatter reads.

A Celery worker paints in its prefork pool's children, and one scrape must show
them all: ``totoshka worker`` runs them in prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, a private folder it sets before prometheus_client is
first imported, since the library picks its mode at import). Each child writes its
figures into that folder and the main process serves their sum (`PoolMetrics`).
That is why `Metrics` names a ``multiprocess_mode`` for its gauge, and why a worker
process builds one `Metrics` only: two in one process would write the same series
of the same file.

This module sits beside `config`: the jobs layer and the bot both use it, and it
imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: The job a log record is about (set while a worker runs it), for JSON logs.
JOB_ID: ContextVar[str | None] = ContextVar("totoshka_job_id", default=None)
#: The Telegram user a log record is about (an update being handled, a job running).
USER_ID: ContextVar[str | None] = ContextVar("totoshka_user_id", default=None)

#: Seconds; from a cached photo's fetch (tens of ms) to a minute-long clip's paint.
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Where a job's time goes: wait = queued → started; fetch = getFile, download and
#: decode; paint = inference; encode = JPEG; send = upload of the result.
STAGES = ("wait", "fetch", "paint", "encode", "send")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One process's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            "totoshka_updates",
            "Telegram updates handled, by type and outcome (error: a handler raised).",
            ["type", "outcome"],
            registry=r,
        )
        self.jobs_queued = Counter(
            "totoshka_jobs_queued", "Jobs accepted into a lane's queue.", ["lane"], registry=r
        )
        self.jobs_running = Gauge(
            "totoshka_jobs_running",
            "Jobs this process (a worker: its pool) is running now.",
            ["lane"],
            registry=r,
            # a worker's pool: the sum over its live children (ignored in one process)
            multiprocess_mode="livesum",
        )
        self.job_attempts = Counter(
            "totoshka_job_attempts",
            "Job runs started here (first runs, retries and deferred runs alike).",
            ["lane"],
            registry=r,
        )
        self.jobs_done = Counter(
            "totoshka_jobs_done", "Jobs finished for good here.", ["lane"], registry=r
        )
        self.jobs_failed = Counter(
            "totoshka_jobs_failed",
            "Jobs that used up their attempts here (the user got an apology).",
            ["lane"],
            registry=r,
        )
        self.jobs_retried = Counter(
            "totoshka_jobs_retried",
            "Runs that put their job back in line: error (backoff), deferred (a flood "
            "wait) or worker_lost (its worker died).",
            ["lane", "reason"],
            registry=r,
        )
        self.results = Counter(
            "totoshka_results",
            "What a job ended with for the user: sent, refused (a clear reason: a bad "
            "file, too big...), blocked (the user blocked the bot), cancelled, failed "
            "(attempts used up).",
            ["kind", "outcome"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "totoshka_job_stage_seconds",
            "Seconds a job spends in each stage: wait (queued to started, first run), "
            "fetch (download and decode), paint, encode, send (photos).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage)  # present, at zero, from the first scrape

    def lane(self, lane: str) -> None:
        """Show a lane's job figures at zero before its first job (a rate needs them)."""
        self.jobs_queued.labels(lane)
        self.jobs_running.labels(lane)
        self.job_attempts.labels(lane)
        self.jobs_done.labels(lane)
        self.jobs_failed.labels(lane)

    def watch_queues(self, lanes: Mapping[str, Callable[[], Mapping[str, int]]]) -> None:
        """Read each lane's depth from ``stats()`` (`JobQueue.stats`) at scrape time."""
        self.registry.register(QueueDepthCollector(dict(lanes)))

    def job_started(self, lane: str, attempt: int, created_at: float, started_at: float) -> None:
        """A run began: counted, and on the job's first run its wait in line."""
        self.job_attempts.labels(lane).inc()
        self.jobs_running.labels(lane).inc()
        if attempt == 1:
            # clocks of two hosts (bot and Celery worker) may disagree by a little
            self.stage_seconds.labels("wait").observe(max(0.0, started_at - created_at))

    def job_stopped(self, lane: str) -> None:
        self.jobs_running.labels(lane).dec()

    def render(self) -> bytes:
        """The text exposition format. Reads the queues: call it off the event loop."""
        return generate_latest(self.registry)


class Exposition(Protocol):
    """What the /metrics route serves: `Metrics` (one process) or `PoolMetrics`."""

    def render(self) -> bytes: ...


#: A live gauge's file in a multiprocess folder: ``gauge_livesum_<pid>.db``.
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


class PoolMetrics:
    """A Celery worker's figures, served by its main process: the sum of what its pool
    children (each with its own `Metrics`) wrote into the multiprocess folder `path`.

    The registry holds the folder's collector only, as prometheus_client's multiprocess
    rules ask (a metric registered beside it would be exported twice). Counters of a
    child that died stay in the sum, as they should; its share of the live gauges
    (jobs running) is handed back by `process_exited`, which the pool's shutdown
    signal calls, and at each scrape for a child that never got to send it (killed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=self.path)

    def process_exited(self, pid: int) -> None:
        """Drop a finished process's live gauges (they would count its jobs for ever)."""
        with contextlib.suppress(FileNotFoundError):  # the child and a scrape both did
            mark_process_dead(pid, self.path)

    def sweep(self) -> list[int]:
        """`process_exited` for every process with live gauges that is gone; their pids."""
        gone = []
        for name in os.listdir(self.path):
            match = _LIVE_FILE.fullmatch(name)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid not in gone and not _alive(pid):
                self.process_exited(pid)
                gone.append(pid)
        return gone

    def render(self) -> bytes:
        """The text exposition format of the pool's sum; reads files: off the event loop."""
        self.sweep()
        return generate_latest(self.registry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process has the number now: ours is gone
        return False
    return True


class QueueDepthCollector(Collector):
    """``totoshka_queue_depth``, ``_jobs`` and ``_up`` per lane, asked of the queue at
    each scrape. A queue that does not answer shows ``up 0`` and no depth: a made-up
    zero would look like an idle bot.

    ``totoshka_queue_jobs{state}`` is the queue's own record, whoever ran the jobs:
    in Celery mode the done and failed counts of every worker (cumulative in Redis),
    in the embedded mode the jobs the SQLite file holds (a week of history)."""

    def __init__(self, lanes: dict[str, Callable[[], Mapping[str, int]]]) -> None:
        self.lanes = lanes

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "totoshka_queue_depth", "Jobs waiting in a lane's queue.", labels=["lane"]
            ),
            GaugeMetricFamily(
                "totoshka_queue_jobs",
                "Jobs of a lane by state, as the queue records them (any worker).",
                labels=["lane", "state"],
            ),
            GaugeMetricFamily(
                "totoshka_queue_up",
                "1 when the lane's queue answered this scrape.",
                labels=["lane"],
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        depth, jobs, up = self._families()
        for lane, stats in self.lanes.items():
            try:
                counts = stats()
            except Exception as exc:  # the reason is for the log; the scrape goes on
                log.warning("queue %s: no stats (%s)", lane, type(exc).__name__)
                up.add_metric([lane], 0)
                continue
            up.add_metric([lane], 1)
            depth.add_metric([lane], counts.get("queued", 0))
            for state, count in sorted(counts.items()):
                jobs.add_metric([lane, state], count)
        yield depth
        yield jobs
        yield up
