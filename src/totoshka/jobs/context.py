"""What a handler gets besides the payload: identity, attempt, checkpoints, CPU pool.

Checkpoints exist because execution is *at least once*: a worker can die after the
handler sent the photo but before the queue recorded the job as done, and the job
then runs again. The handler makes that re-run harmless by recording each external
side effect right after it happens and skipping it when the record is there::

    async def handle(payload, ctx):
        if "result_message_id" not in ctx.checkpoints:
            image = await ctx.run_blocking(stylizer.stylize, photo, style)
            msg = await bot.send_photo(...)
            await ctx.checkpoint("result_message_id", msg.message_id)
        if "status_deleted" not in ctx.checkpoints:
            await bot.delete_message(...)
            await ctx.checkpoint("status_deleted", True)

Checkpoints are persisted before `checkpoint` returns (SQLite row in the embedded
mode, a Redis hash in Celery mode) and are loaded into ``ctx.checkpoints`` before the
handler starts. The only window left is a crash between the side effect and its
checkpoint, which no queue can close without the remote side being idempotent.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MarkFn = Callable[[str, Any], Awaitable[None]]


class JobContext:
    """Per-run context handed to the handler with the payload."""

    def __init__(
        self,
        job_id: str,
        attempt: int,
        user_key: str,
        *,
        checkpoints: Mapping[str, Any] | None = None,
        mark: MarkFn | None = None,
        executor: Executor | None = None,
    ) -> None:
        """``mark`` persists a checkpoint (None: memory only, for tests of handlers);
        ``executor`` runs `run_blocking` calls (None: the loop's default executor)."""
        self.job_id = job_id
        #: 1 on the first run; counts every start, crashes and deferrals included.
        self.attempt = attempt
        self.user_key = user_key
        self._checkpoints: dict[str, Any] = dict(checkpoints or {})
        self._mark = mark
        self._executor = executor

    @property
    def checkpoints(self) -> Mapping[str, Any]:
        """Checkpoints recorded by earlier runs of this job and by this run so far."""
        return dict(self._checkpoints)

    async def checkpoint(self, key: str, value: Any = True) -> None:
        """Durably record ``key = value`` (JSON-serialisable) for this job.

        Returns only once the value is stored where any later run — in this process,
        after a restart, or on another Celery worker — will see it.
        """
        if self._mark is not None:
            await self._mark(key, value)
        self._checkpoints[key] = value

    async def run_blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run CPU-bound ``fn`` (inference) in the pool's CPU executor, off the event loop.

        The executor is small on purpose (about one thread per two cores): torch
        already parallelises each call internally, and more concurrent inferences
        would only oversubscribe the cores and slow every user down.
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, attempt={self.attempt}, user={self.user_key!r})"
