"""Errors raised by handlers: a blocked bot is normal; anything else gets an apology.

Without this, an unexpected failure while answering (a Telegram hiccup outlasting
aiogram's call, a bug) would leave the user with silence.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from totoshka.bot.texts import Texts, language_from_code

log = logging.getLogger(__name__)


async def on_forbidden(event: ErrorEvent) -> bool:
    log.info("update %s: the user blocked the bot", event.update.update_id)
    return True


async def on_error(event: ErrorEvent, bot: Bot, texts: Texts) -> bool:
    log.error(
        "update %s failed: %s", event.update.update_id, event.exception, exc_info=event.exception
    )
    update = event.update
    message = update.message or (update.callback_query.message if update.callback_query else None)
    user = update.message.from_user if update.message else None
    if update.callback_query:
        user = update.callback_query.from_user
    if message is None:
        return True
    lang = language_from_code(user.language_code if user else None)
    text = texts.get(lang, "status_failed", reason=texts.get(lang, "err_generic"))
    with contextlib.suppress(TelegramAPIError):
        await bot.send_message(message.chat.id, text)
    return True


def router() -> Router:
    r = Router(name="errors")
    r.errors.register(on_forbidden, ExceptionTypeFilter(TelegramForbiddenError))
    r.errors.register(on_error)
    return r
