"""The job-queue contract shared by the embedded SQLite queue and Celery mode.

A job is a small JSON-serialisable ``payload`` (a dict) plus a fairness key
(``user_key``, the Telegram user). The bot codes against `JobQueue` only, so it
does not care whether jobs run in-process (`SQLiteJobQueue` + `WorkerPool`) or on
Celery workers elsewhere (`totoshka.jobs.celery_mode.CeleryJobQueue`).

Nothing here knows of Telegram or tensors; that is the point of the package.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from totoshka.jobs.context import JobContext
    from totoshka.observability import Metrics


class JobState(enum.StrEnum):
    """Life of a job: queued → running → done / failed / cancelled.

    A retry puts a running job back to ``queued`` (with a ``not_before``).
    """

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


PENDING_STATES: tuple[JobState, ...] = (JobState.QUEUED, JobState.RUNNING)
FINAL_STATES: tuple[JobState, ...] = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class TooManyPending(Exception):
    """The user already has ``limit`` jobs queued or running; the bot says "wait"."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many pending jobs (limit {limit})")
        self.limit = limit


class RetryLater(Exception):
    """Raised by a handler for an expected, temporary refusal (e.g. Telegram flood wait).

    The job is requeued to run again after ``delay`` seconds. It does not use up the
    error budget (``max_attempts``) — only a separate, larger ``max_deferrals`` budget,
    so a handler that keeps deferring forever still ends up failed.
    """

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:g}s")
        self.delay = max(0.0, float(delay))


class QueueUnavailable(Exception):
    """``ping()`` found a part of the queue not answering: ``part`` names it (the job
    store, the broker) and the cause's type is all the message says — a broker URL
    may carry a password."""

    def __init__(self, part: str, cause: BaseException) -> None:
        super().__init__(f"{part} unreachable ({type(cause).__name__})")
        self.part = part


class WorkerLost(Exception):
    """The process running a job died (SIGKILL, OOM, power) before completing it.

    Passed to ``on_failed`` when such a job has used up its attempts: a job that
    kills its worker every time is a poison job and must stop looping.
    """


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What `JobQueue.submit` returns.

    ``position``: 1 = next to run; 0 = the job is no longer queued (only possible
    for a ``duplicate`` returned by dedupe: it is already running or finished).
    """

    job_id: str
    position: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: the queue's view of it, for status pages and tests."""

    job_id: str
    user_key: str
    payload: dict[str, Any]
    state: JobState
    attempt: int
    deferrals: int
    created_at: float
    updated_at: float
    not_before: float
    started_at: float | None
    finished_at: float | None
    last_error: str | None
    dedupe_key: str | None = None
    checkpoints: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class JobQueue(Protocol):
    """What the bot needs from a queue, whichever backend runs the jobs."""

    def submit(
        self,
        user_key: str,
        payload: dict[str, Any],
        *,
        max_pending: int | None = None,
        dedupe_key: str | None = None,
    ) -> SubmitResult:
        """Accept a job (durably) or raise `TooManyPending`.

        The same ``dedupe_key`` twice returns the existing job (``duplicate=True``)
        instead of creating a new one, so a redelivered Telegram update is harmless.
        """
        ...

    def cancel_user(self, user_key: str) -> list[str]:
        """Cancel the user's *queued* jobs (running ones finish); return their ids."""
        ...

    def position(self, job_id: str) -> int | None:
        """Place in line among queued jobs under the fair order; None if not queued."""
        ...

    def pending_count(self, user_key: str) -> int:
        """Jobs of this user that are queued or running."""
        ...

    def stats(self) -> dict[str, int]:
        """Number of jobs per state (every `JobState` value is a key)."""
        ...

    def get(self, job_id: str) -> JobRecord | None:
        """The job's record, finished ones included; None for a job the queue does
        not know (never accepted, expired, or lost with its store)."""
        ...


Handler = Callable[[dict[str, Any], "JobContext"], Awaitable[None]]
"""Executes one payload. Returns normally = done; raises `RetryLater` / anything else."""

FailedCallback = Callable[[dict[str, Any], BaseException], Awaitable[None]]
"""Called once when a job is marked failed (its payload and the last exception)."""

ChangeCallback = Callable[[], Awaitable[None]]
"""Called (coalesced) when places in line may have changed."""


@dataclass
class JobHandlers:
    """What a worker needs from the bot: the handler plus optional lifecycle hooks.

    A Celery handler factory may return this instead of a bare handler; it lives here
    (not in `celery_mode`) so the bot can build one without importing Celery.
    """

    handler: Handler
    on_failed: FailedCallback | None = None
    #: Awaited when the worker process exits (close the Bot session...).
    close: Callable[[], Awaitable[None]] | None = None
    #: Threads for ``ctx.run_blocking``: the handler knows what its work needs
    #: (one per two cores for CPU inference); None = the worker's default.
    cpu_workers: int | None = None
    #: Where the Celery task counts its runs, as the embedded pool does (attempts,
    #: done, failed, retried, running: per lane). One per worker process, the one the
    #: handler counts its stages in: the factory may run again in the same process
    #: (after a soft time limit) and must hand back the same object. None: not counted.
    metrics: Metrics | None = None
