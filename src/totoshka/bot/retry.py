"""One policy for Telegram's temporary refusals, configured once at start-up.

429 waits exactly ``retry_after`` (Telegram's own figure), or hands the worker slot
back with `RetryLater` when the wait is long. 5xx, timeouts, garbled answers and
dropped connections back off along aiogram's own `Backoff` (the curve its polling
uses). Anything else (400, 403) is not temporary and is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import aiohttp
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.utils.backoff import Backoff, BackoffConfig

from totoshka.jobs.queue import RetryLater

log = logging.getLogger(__name__)

T = TypeVar("T")

# Worth another try (aiohttp errors come straight through from `Bot.download_file`).
TRANSIENT = (
    TelegramServerError,
    TelegramNetworkError,
    ClientDecodeError,
    asyncio.TimeoutError,
    aiohttp.ClientError,
)

DEFAULT_BACKOFF = BackoffConfig(min_delay=0.5, max_delay=10.0, factor=2.0, jitter=0.1)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one Bot API call tries. `brief` is the same policy for best-effort
    calls (a status line) that must not hold a worker for long."""

    retries: int = 6
    #: Longest flood wait sat out while holding the worker slot; beyond it, requeue.
    max_inline_wait: float = 30.0
    backoff: BackoffConfig = field(default=DEFAULT_BACKOFF)

    def brief(self, *, retries: int = 3, max_inline_wait: float = 5.0) -> RetryPolicy:
        return replace(self, retries=min(retries, self.retries), max_inline_wait=max_inline_wait)

    async def call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(self.backoff)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except TelegramRetryAfter as e:
                if e.retry_after > self.max_inline_wait:
                    raise RetryLater(e.retry_after, f"{what}: flood wait {e.retry_after}s") from e
                if attempt >= self.retries:
                    raise RetryLater(e.retry_after, f"{what}: still flood-limited") from e
                log.info("%s: 429, waiting %ss (attempt %d)", what, e.retry_after, attempt)
                await asyncio.sleep(e.retry_after)
            except TRANSIENT as e:
                if attempt >= self.retries:
                    raise
                delay = max(0.0, next(backoff))
                log.info("%s: %s, retrying in %.1fs", what, type(e).__name__, delay)
                await asyncio.sleep(delay)
