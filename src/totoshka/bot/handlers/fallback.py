"""Everything else gets a short, helpful answer — never silence.

Registered last: by then commands, pictures and known buttons have had their turn.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from totoshka.bot.states import Flow
from totoshka.bot.texts import Translator


async def on_text(message: Message, t: Translator, state: FSMContext) -> None:
    if await state.get_state() == Flow.awaiting_painting.state:
        await message.answer(t("send_painting_plain"))
    else:
        await message.answer(t("text_fallback"))


async def on_sound(message: Message, t: Translator) -> None:
    await message.answer(t("voice_fallback"))


async def on_other(message: Message, t: Translator) -> None:
    await message.answer(t("other_fallback"))


async def on_stale_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("photo_expired"), show_alert=True)


def router() -> Router:
    r = Router(name="fallback")
    r.message.register(on_text, F.text)
    r.message.register(on_sound, F.voice | F.audio)
    r.message.register(on_other)
    r.callback_query.register(on_stale_button)
    return r
