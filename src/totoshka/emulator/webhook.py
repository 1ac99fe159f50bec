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
from collections.abc import Awaitable, Callable

import aiohttp

from totoshka.emulator.errors import BotApiError
from totoshka.emulator.params import Params, read_multipart
from totoshka.emulator.state import BotAccount, Webhook

ReplyMethod = Callable[[str, str, Params], Awaitable[None]]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookDelivery:
    """One delivery task per bot with a webhook; owned by one server."""

    def __init__(self, *, retry_delay: float = 0.5, request_timeout: float = 10.0) -> None:
        # Runs a method the bot put in its webhook answer (aiogram does with
        # handle_in_background=False); set by the app, which owns the dispatcher.
        self.reply_method: ReplyMethod | None = None
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
            error = await self._post(bot, hook, update)
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

    async def _run_reply(self, bot: BotAccount, response: aiohttp.ClientResponse) -> None:
        """Execute ``{"method": ..., ...}`` (JSON or multipart) from a webhook answer."""
        params = Params({})
        try:
            if response.content_type == "application/json":
                body = await response.json()
                if isinstance(body, dict):
                    params.values.update(body)
            elif response.content_type == "multipart/form-data":
                reader = aiohttp.MultipartReader.from_response(response)
                await read_multipart(reader, params, 50 << 20)
            else:
                await response.read()
        except (ValueError, aiohttp.ClientError, BotApiError):
            return  # Telegram ignores an answer it cannot read
        method = params.values.pop("method", None)
        if isinstance(method, str) and method and self.reply_method is not None:
            await self.reply_method(f"{bot.id}:webhook-reply", method, params)

    async def _post(self, bot: BotAccount, hook: Webhook, update: dict[str, object]) -> str | None:
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
                if 200 <= response.status < 300:
                    await self._run_reply(bot, response)
                    return None
                await response.read()
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as error:
            return f"Connection error: {error}"
