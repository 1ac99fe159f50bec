"""The webhook endpoint: Telegram hears 200 only once the update has been handled.

Why: Telegram forgets an update as soon as the webhook answers 2xx. aiogram's
`SimpleRequestHandler` answers at once by default and handles the update in a task
(``handle_in_background=True``), so a replica that dies in between (SIGKILL, OOM, a
lost node) drops updates it already acknowledged: a photo nobody answers. Here the
answer comes after the handlers ran (aiogram's ``handle_in_background=False``): a
replica that dies mid-update leaves the request unanswered, the load balancer
answers 502 or the connection breaks, and Telegram sends the update again — to a
surviving replica, since the conversation state is shared (Redis).

Delivery is therefore at-least-once, and a handler may see an update twice when a
replica died after doing part of it. What keeps that harmless: a job is queued
under the update's dedupe key (``cb:<callback query id>``, ``msg:<chat>:<message>``,
``album:<chat>:<group>``), so a press delivered twice paints once; a photo delivered
twice shows its style picker twice. `AnsweredQueryIsFine` covers the one call
Telegram refuses the second time, answerCallbackQuery.

A handler may return a method instead of calling it (``return message.answer(...)``);
aiogram then puts the call in the response body and Telegram runs it. Ours await
their calls and return None (the errors router: True), so the body is ``{}``.

Two exceptions, both answered before the handling ends:

* An album item (a message with ``media_group_id``). Telegram does not send the next
  update of a chat before the previous one is answered (the emulator: of any chat),
  and `AlbumMiddleware` holds the first item ``album_wait`` seconds for the others:
  held inside the request, it would never see them, and each photo of an album would
  be handled alone. So album items are handled in the background, as aiogram does
  by default; only they can still be lost, in the ``album_wait`` window.
* A handler still running after `HANDLE_TIMEOUT`: Telegram waits about a minute for
  an answer and then sends the update again, so after 50 s aiogram answers 200 and
  lets the handler finish in the background (with a RuntimeWarning) rather than have
  a slow update (gallery previews rendered on a slow CPU) handled twice. Our handlers
  queue the painting and return: a photo or a press takes milliseconds.
"""

from __future__ import annotations

from typing import Any, cast

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

#: Seconds a handler may run before the webhook answers anyway (Telegram waits ~60).
HANDLE_TIMEOUT = 50.0

#: How Telegram refuses a second answer to the same callback query (or a stale one).
QUERY_TOO_OLD = "query is too old"


def is_album_item(update: dict[str, Any]) -> bool:
    """A message of an album: `AlbumMiddleware` must see its siblings arrive."""
    message = update.get("message")
    return isinstance(message, dict) and bool(message.get("media_group_id"))


class HandleThenAnswer(SimpleRequestHandler):
    """`SimpleRequestHandler` that answers after the handlers ran (album items aside).

    The secret check, the 401 and the method-in-the-body answer are aiogram's own.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        secret_token: str | None = None,
        handle_timeout: float = HANDLE_TIMEOUT,
        **data: Any,
    ) -> None:
        super().__init__(
            dispatcher, bot, handle_in_background=False, secret_token=secret_token, **data
        )
        self.handle_timeout = handle_timeout

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        update = await request.json(loads=bot.session.json_loads)
        if is_album_item(update):
            # aiohttp keeps the body read: the background path reads it again
            return await self._handle_request_background(bot=bot, request=request)
        # Exceptions are answered by the errors router; one that escapes it is a 500,
        # and Telegram sends the update again (a Redis blip is over by then).
        result = await self.dispatcher.feed_webhook_update(
            bot, update, _timeout=self.handle_timeout, **self.data
        )
        return web.Response(body=self._build_response_writer(bot=bot, result=result))


class AnsweredQueryIsFine(BaseRequestMiddleware):
    """answerCallbackQuery refused as "query is too old" counts as answered.

    A press delivered again (its replica died after answering it, before queueing the
    job) would otherwise stop at ``query.answer()`` — Telegram takes one answer per
    query — and the user would get an apology instead of the painting. The answer
    only stops the button's spinner; the rest of the handler is what matters.
    """

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as error:
            if isinstance(method, AnswerCallbackQuery) and QUERY_TOO_OLD in error.message:
                # the chain passes results, not `Response`s, whatever aiogram's hints say
                # (AiohttpSession.make_request returns ``response.result``)
                return cast("Response[TelegramType]", True)
            raise
