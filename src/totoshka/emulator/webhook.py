"""Webhook delivery: POST each pending update to the bot's URL, in order, until it answers 2xx.

Like Telegram, delivery is at-least-once: an update stays pending (and counts in
``getWebhookInfo.pending_update_count``) until the bot's server answers 2xx, and a
failure — connection refused or reset, no answer within ``request_timeout``, any
other status — is reported in ``last_error_date`` / ``last_error_message`` and the
same update is sent again after a pause, before any later one (so a bot behind a
load balancer sees its updates in order even while a replica dies). The secret
given to ``setWebhook`` travels in the ``X-Telegram-Bot-Api-Secret-Token`` header.

Where the emulator is simpler than Telegram: one update is in flight at a time (Telegram
keeps up to ``max_connections``, each chat's updates in order), and it never gives
up (Telegram does "after a reasonable amount of attempts" and keeps an update at most
24 hours). Retries are quick (``retry_delay``) because the consumers are tests, not
the open internet; the wait for an answer is about Telegram's (a minute: aiogram's
webhook handler answers after 55 s for that reason), so a bot that handles an update
before answering is not sent it twice for taking a few seconds.
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

    def __init__(self, *, retry_delay: float = 0.5, request_timeout: float = 60.0) -> None:
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
            try:
                error = await self._post(bot, hook, update)
            except Exception as exc:  # never let one delivery end the task: the rest would stall
                log.exception("webhook delivery to %s broke", hook.url)
                error = f"Connection error: {type(exc).__name__}"
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
            try:
                await self.reply_method(f"{bot.id}:webhook-reply", method, params)
            except Exception:  # Telegram runs it silently: the update was delivered anyway
                log.exception("webhook answer %s from %s failed", method, bot.id)

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
                if not 200 <= response.status < 300:
                    await response.read()
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                # 2xx: delivered. A method in the body is run; a body that cannot be
                # read any more (reset, timeout) is dropped, the update is not sent again.
                with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                    await self._run_reply(bot, response)
                return None
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except (aiohttp.ClientError, OSError) as error:  # reset, closed mid-answer, bad URL
            return f"Connection error: {str(error) or type(error).__name__}"
