"""/settings: output size, strength, preserve colours, language — one button each."""

from __future__ import annotations

import contextlib

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from totoshka.bot.callbacks import SettingsCB
from totoshka.bot.keyboards import settings_keyboard
from totoshka.bot.prefs import Prefs, PrefsStore, next_size, next_strength
from totoshka.bot.services import Services
from totoshka.bot.texts import LANGUAGES, Texts, Translator
from totoshka.config import Settings


def render(t: Translator, prefs: Prefs, settings: Settings) -> str:
    size = prefs.output_size(settings.default_output_size)
    return t(
        "settings",
        size=t("size_full") if size == 0 else f"{size} px",
        strength=prefs.strength,
        colors=t("yes") if prefs.preserve_colors else t("no"),
        language=t("language_name"),
    )


async def show(message: Message, t: Translator, prefs: Prefs, services: Services) -> None:
    size = prefs.output_size(services.settings.default_output_size)
    await message.answer(
        render(t, prefs, services.settings), reply_markup=settings_keyboard(t, prefs, size)
    )


async def change(
    query: CallbackQuery,
    callback_data: SettingsCB,
    t: Translator,
    prefs: Prefs,
    prefs_store: PrefsStore,
    services: Services,
    texts: Texts,
) -> None:
    settings = services.settings
    size = prefs.output_size(settings.default_output_size)
    if callback_data.key == "size":
        prefs.size = next_size(size, settings.default_output_size)
    elif callback_data.key == "strength":
        prefs.strength = next_strength(prefs.strength)
    elif callback_data.key == "colors":
        prefs.preserve_colors = not prefs.preserve_colors
    elif callback_data.key == "lang":
        langs = list(LANGUAGES)
        prefs.language = langs[(langs.index(t.lang) + 1) % len(langs)]
        t = texts.for_language(prefs.language)
    chat_id = query.message.chat.id if query.message else query.from_user.id
    await prefs_store.save(chat_id, query.from_user.id, prefs)
    await query.answer(t("settings_saved"))
    if query.message is not None:
        size = prefs.output_size(settings.default_output_size)
        with contextlib.suppress(TelegramBadRequest):
            await query.bot.edit_message_text(  # type: ignore[union-attr]
                text=render(t, prefs, settings),
                chat_id=chat_id,
                message_id=query.message.message_id,
                reply_markup=settings_keyboard(t, prefs, size),
            )


def router() -> Router:
    r = Router(name="settings")
    r.message.register(show, Command("settings"))
    r.callback_query.register(
        change, SettingsCB.filter(F.key.in_({"size", "strength", "colors", "lang"}))
    )
    return r
