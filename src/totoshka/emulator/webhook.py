"""Webhook delivery: POST each pending update to the bot's URL, in order, until it answers 2xx.

Like Telegram, delivery is at-least-once: an update stays pending (and counts in
``getWebhookInfo.pending_update_count``) until the bot's server answers 2xx, and a
failure is reported in ``last_error_date`` / ``last_error_message`` and retried
after a pause. The secret given to ``setWebhook`` travels in the
``X-Telegram-Bot-Api-Secret-Token`` header. Retries are quick (``retry_delay``)
because the consumers are tests, not the open internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp

from totoshka.emulator.state import BotAccount, Webhook

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookDelivery:
    """One delivery task per bot with a webhook; owned by one server."""

    def __init__(self, *, retry_delay: float = 0.5, request_timeout: float = 10.0) -> None:
        self.retry_delay = retry_delay
        self.request_timeout = request_timeout
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def ensure_running(self, bot: BotAccount) -> None:
        task = self._tasks.get(bot.id)
        if task is None or task.done():
            self._tasks[bot.id] = asyncio.get_running_loop().create_task(
                self._deliver(bot), name=f"emulator-webhook-{bot.id}"
            )

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, bot: BotAccount) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        while (hook := bot.webhook) is not None:
            if not bot.updates:
                await bot.update_notifier.wait_for(
                    lambda hook=hook: bool(bot.updates) or bot.webhook is not hook, 30.0
                )
                continue
            update = bot.updates[0]
            error = await self._post(hook, update)
            if error is None:
                if bot.updates and bot.updates[0] is update:
                    bot.updates.pop(0)
                continue
            hook.last_error_date = int(time.time())
            hook.last_error_message = error
            log.info("webhook delivery to %s failed: %s", hook.url, error)
            await bot.update_notifier.wait_for(
                lambda hook=hook: bot.webhook is not hook, self.retry_delay
            )

    async def _post(self, hook: Webhook, update: dict[str, object]) -> str | None:
        """Deliver one update; None on success, else Telegram-style error text."""
        assert self._session is not None
        headers = {SECRET_HEADER: hook.secret_token} if hook.secret_token else {}
        try:
            async with self._session.post(
                hook.url,
                json=update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as error:
            return f"Connection error: {error}"
