"""/start, /help, /styles, /cancel — and the command menu registered with setMyCommands."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import BotCommand, BotCommandScopeDefault, Message

from totoshka.bot.cancel import cancel_key, request_cancel
from totoshka.bot.services import Lane, Services
from totoshka.bot.texts import LANGUAGES, Texts, Translator

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "styles", "settings", "cancel")


async def register_commands(bot: Bot, texts: Texts) -> None:
    """The "/" menu in both languages: English by default, Russian for ``ru`` users."""
    for lang in LANGUAGES:
        commands = [
            BotCommand(command=c, description=texts.get(lang, f"cmd_{c}")) for c in COMMANDS
        ]
        await bot.set_my_commands(
            commands,
            scope=BotCommandScopeDefault(),
            language_code=None if lang == "en" else lang,
        )


async def start(message: Message, t: Translator, state: FSMContext) -> None:
    await state.clear()
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t("start", name=name))


async def help_(message: Message, t: Translator, services: Services) -> None:
    await message.answer(t("help", seconds=round(services.settings.video_max_seconds)))


async def styles(message: Message, bot: Bot, t: Translator, services: Services) -> None:
    """The gallery: every style shown on the same photo, rendered by the project."""
    gallery = services.gallery
    notice = None
    if gallery.missing():
        notice = await message.answer(t("gallery_preparing"))
    await message.answer(t("gallery_intro"))
    sent = await gallery.send(bot, message.chat.id, t.lang)
    if notice is not None:
        with contextlib.suppress(TelegramAPIError):
            await notice.delete()
    if not sent:
        await message.answer(t("gallery_empty"))


async def _show_cancelled(bot: Bot, t: Translator, chat_id: int, lane: Lane, job_id: str) -> None:
    """Turn a cancelled job's status message into "Cancelled"."""
    tracked = lane.board.forget(job_id) if lane.board is not None else None
    message_id = tracked.message_id if tracked else None
    if message_id is None:
        get = getattr(lane.queue, "get", None)
        record = await asyncio.to_thread(get, job_id) if get else None
        message_id = record.payload.get("status_message_id") if record else None
    if message_id:
        with contextlib.suppress(TelegramAPIError):
            await bot.edit_message_text(
                text=t("status_cancelled"), chat_id=chat_id, message_id=message_id
            )


async def cancel(
    message: Message, bot: Bot, t: Translator, state: FSMContext, services: Services
) -> None:
    """Cancel this user's queued jobs and a clip being painted (a running photo is
    done in seconds and finishes), and forget the conversation."""
    user_id = message.from_user.id if message.from_user else message.chat.id
    data = await state.get_data()
    await request_cancel(state.storage, cancel_key(bot.id, message.chat.id, user_id))
    cancelled = 0
    for lane in services.lanes():
        for job_id in await asyncio.to_thread(lane.queue.cancel_user, str(user_id)):
            cancelled += 1
            await _show_cancelled(bot, t, message.chat.id, lane, job_id)
    stopping = await services.clip_running(data.get("clip_job"))
    await state.clear()
    if stopping:
        await message.answer(t("clip_stopping"))
    if cancelled:
        await message.answer(t("cancelled", count=cancelled))
    elif not stopping:
        await message.answer(t("nothing_to_cancel"))


def router() -> Router:
    r = Router(name="commands")
    r.message.register(start, CommandStart())
    r.message.register(help_, Command("help"))
    r.message.register(styles, Command("styles"))
    r.message.register(cancel, Command("cancel"))
    return r
