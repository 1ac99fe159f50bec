"""Generic job infrastructure: persistent fair queue, worker pool, Celery mode.

Knows nothing of Telegram and nothing of tensors: a job is a JSON payload plus a
user key, executed by a handler the bot provides. See `queue` for the contract,
`sqlite_queue` + `pool` for the embedded default, `celery_mode` for scale-out.
"""

from totoshka.jobs.context import JobContext
from totoshka.jobs.pool import WorkerPool
from totoshka.jobs.queue import (
    FINAL_STATES,
    PENDING_STATES,
    ChangeCallback,
    FailedCallback,
    Handler,
    JobHandlers,
    JobQueue,
    JobRecord,
    JobState,
    RetryLater,
    SubmitResult,
    TooManyPending,
    WorkerLost,
)
from totoshka.jobs.sqlite_queue import SQLiteJobQueue

__all__ = [
    "FINAL_STATES",
    "PENDING_STATES",
    "ChangeCallback",
    "FailedCallback",
    "Handler",
    "JobContext",
    "JobHandlers",
    "JobQueue",
    "JobRecord",
    "JobState",
    "RetryLater",
    "SQLiteJobQueue",
    "SubmitResult",
    "TooManyPending",
    "WorkerLost",
    "WorkerPool",
]
