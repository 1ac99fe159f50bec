"""The buttons under a result: another style, the full-resolution file, stronger,
weaker, and "mix with…" (another style of the same network, then its share).

Each button carries the result's ref; the spec behind it (photo, style, strength,
...) is in the conversation's FSM data, so a re-run needs no re-upload.
"""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.types import CallbackQuery

from totoshka.bot.callbacks import MixCB, ResultCB
from totoshka.bot.conversation import Conversation
from totoshka.bot.job import JobRequest, PaintSpec
from totoshka.bot.keyboards import MIX_SHARES, mix_picker, mix_shares, style_picker
from totoshka.bot.prefs import STRENGTHS
from totoshka.bot.states import Flow


def step_strength(current: int, up: bool) -> int | None:
    """The next strength in `STRENGTHS` above/below ``current``, or None at the end."""
    options = [s for s in STRENGTHS if (s > current if up else s < current)]
    if not options:
        return None
    return options[0] if up else options[-1]


async def on_result(query: CallbackQuery, callback_data: ResultCB, conv: Conversation) -> None:
    t, state = conv.t, conv.state
    data = await state.get_data()
    saved: dict[str, Any] | None = data.get("results", {}).get(callback_data.ref)
    if saved is None or query.message is None:
        await query.answer(t("photo_expired"), show_alert=True)
        return
    spec = PaintSpec.model_validate(saved)
    chat_id = query.message.chat.id
    action = callback_data.action
    if action == "again":
        await query.answer()
        photo_ref = await conv.remember_photo(spec.photo)
        await state.set_state(Flow.choosing_style)
        await conv.update_data(current=photo_ref)
        await conv.bot.send_message(
            chat_id,
            t("pick_style"),
            reply_markup=style_picker(t, photo_ref, conv.services.style_buttons(t.lang)),
        )
        return
    if action == "mix":
        await query.answer()
        await show_mix_picker(conv, chat_id, callback_data.ref, spec, page=0)
        return
    if action == "full":
        new = spec.model_copy(update={"max_side": 0, "as_document": True})
    elif action in ("up", "down"):
        strength = step_strength(spec.strength or 100, up=action == "up")
        if strength is None:
            await query.answer(t("strongest" if action == "up" else "weakest"))
            return
        new = spec.model_copy(update={"strength": strength, "as_document": False})
    else:
        await query.answer()
        return
    await query.answer()
    await conv.enqueue(
        JobRequest(
            chat_id=chat_id, user_id=query.from_user.id, spec=new, dedupe_key=f"cb:{query.id}"
        )
    )


async def show_mix_picker(
    conv: Conversation, chat_id: int, ref: str, spec: PaintSpec, page: int
) -> None:
    t = conv.t
    partners = conv.services.mix_partners(spec.style or "", t.lang)
    if not partners:
        await conv.bot.send_message(chat_id, t("mix_none"))
        return
    title = conv.services.style_title(spec.style or "", t.lang) or spec.style
    await conv.bot.send_message(
        chat_id, t("mix_pick", style=title), reply_markup=mix_picker(ref, partners, page)
    )


async def on_mix(query: CallbackQuery, callback_data: MixCB, conv: Conversation) -> None:
    """The steps of "mix with…": turn the partners' page, pick a partner, pick a share.

    The first two edit the picker message in place; the share queues the mix as a
    new result (the original result's spec with the second style and its share)."""
    t, state = conv.t, conv.state
    data = await state.get_data()
    saved: dict[str, Any] | None = data.get("results", {}).get(callback_data.ref)
    message = query.message
    if saved is None or message is None:
        await query.answer(t("photo_expired"), show_alert=True)
        return
    spec = PaintSpec.model_validate(saved)
    partners = conv.services.mix_partners(spec.style or "", t.lang)
    ref, second = callback_data.ref, callback_data.style
    if not second:
        await query.answer()
        await conv.bot.edit_message_reply_markup(
            chat_id=message.chat.id,
            message_id=message.message_id,
            reply_markup=mix_picker(ref, partners, callback_data.page),
        )
        return
    if second not in dict(partners):
        await query.answer(t("unknown_style"), show_alert=True)
        return
    if callback_data.share not in MIX_SHARES:
        await query.answer()
        await conv.bot.edit_message_text(
            text=t("mix_share", style=dict(partners)[second]),
            chat_id=message.chat.id,
            message_id=message.message_id,
            reply_markup=mix_shares(ref, second),
        )
        return
    await query.answer()
    new = spec.model_copy(
        update={"mix_with": second, "mix": callback_data.share, "as_document": False}
    )
    await conv.enqueue(
        JobRequest(
            chat_id=message.chat.id,
            user_id=query.from_user.id,
            spec=new,
            dedupe_key=f"cb:{query.id}",
        )
    )


def router() -> Router:
    r = Router(name="results")
    r.callback_query.register(on_result, ResultCB.filter())
    r.callback_query.register(on_mix, MixCB.filter())
    return r
