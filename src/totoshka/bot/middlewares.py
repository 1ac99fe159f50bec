"""Middlewares: the user's language and preferences, albums gathered into one call,
and every update counted.

All hold their state on the instance (built per dispatcher), never in the module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import Message, TelegramObject, Update, User

from totoshka.bot.conversation import Conversation
from totoshka.bot.prefs import PrefsStore
from totoshka.bot.texts import Texts, language_from_code
from totoshka.observability import USER_ID, Metrics

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class PrefsMiddleware(BaseMiddleware):
    """Injects ``prefs`` / ``prefs_store``, ``t`` (a translator in the user's language)
    and ``conv`` (all of them, with the services, as one `Conversation`).

    The language is the one chosen in /settings, else Telegram's ``language_code``.
    """

    def __init__(self, texts: Texts, storage: BaseStorage) -> None:
        self.texts = texts
        self.storage = storage

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        bot: Bot = data["bot"]
        chat = data.get("event_chat")
        if user is None:
            return await handler(event, data)
        chat_id = chat.id if chat is not None else user.id
        store = PrefsStore(self.storage, bot.id)
        prefs = await store.load(chat_id, user.id)
        data["prefs_store"] = store
        data["prefs"] = prefs
        t = self.texts.for_language(prefs.language or language_from_code(user.language_code))
        data["t"] = t
        data["conv"] = Conversation(bot, t, data["state"], prefs, store, data["services"])
        return await handler(event, data)


class AlbumMiddleware(BaseMiddleware):
    """Turns an album (several updates sharing a ``media_group_id``) into one handler call.

    Telegram delivers each item as its own message, close together; the first one
    waits ``wait`` seconds for the rest, then the handler runs once with
    ``album=[...]`` in message order. Later items only join the list.
    """

    def __init__(self, wait: float = 0.8) -> None:
        self.wait = wait
        self._groups: dict[str, list[Message]] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Message) or not event.media_group_id:
            return await handler(event, data)
        group_id = f"{event.chat.id}:{event.media_group_id}"
        group = self._groups.get(group_id)
        if group is not None:
            group.append(event)
            return None
        self._groups[group_id] = [event]
        try:
            await asyncio.sleep(self.wait)
        finally:
            album = self._groups.pop(group_id, [event])
        album.sort(key=lambda m: m.message_id)
        data["album"] = album
        return await handler(album[0], data)


class UpdateMetricsMiddleware(BaseMiddleware):
    """Counts each update by type and outcome (``totoshka_updates_total``) and names
    its user in the log context while it is handled.

    An outer middleware of the dispatcher's ``update`` observer, registered after
    aiogram's own: it sits inside the errors middleware, so it sees a handler's
    exception (``error``) before the errors router answers the user with an apology.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        kind = "unknown"
        if isinstance(event, Update):
            try:
                kind = event.event_type
            except Exception:  # a type newer than this aiogram: still counted
                kind = "unknown"
        user: User | None = data.get("event_from_user")
        token = USER_ID.set(str(user.id) if user is not None else None)
        try:
            result = await handler(event, data)
        except Exception:
            self.metrics.updates.labels(kind, "error").inc()
            raise
        finally:
            USER_ID.reset(token)
        self.metrics.updates.labels(kind, "ok").inc()
        return result
