"""Photos in, styles picked, jobs queued: the heart of the conversation.

A picture arrives as a compressed photo, an image document or an album. It is
remembered in the conversation's FSM data under a short ref (its ``file_id`` is
too long for callback data), and the style picker's buttons carry that ref, so
an older picker still paints the photo it was shown under — no re-upload.

"My own style": the bot waits for a painting (state ``awaiting_painting``), or an
album of two gives photo and painting at once. Paintings go to the user's recent
list in their preferences; the worker fills in the style vector after the first
use, and later uses send the vector in the job instead of the painting.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message

from totoshka.bot.callbacks import GalleryCB, PageCB, StyleCB
from totoshka.bot.conversation import Conversation
from totoshka.bot.job import JobRequest, MediaKind, PaintSpec
from totoshka.bot.keyboards import page_of, paintings_keyboard, style_picker
from totoshka.bot.media import Subject, file_size_of, subject_of
from totoshka.bot.middlewares import AlbumMiddleware
from totoshka.bot.services import Services
from totoshka.bot.states import Flow
from totoshka.bot.texts import Translator


def too_big_text(t: Translator, message: Message) -> str:
    return t("file_too_big", size=f"{(file_size_of(message) or 0) / 1024 / 1024:.1f}")


def refusal_text(t: Translator, message: Message, key: str, max_seconds: float) -> str:
    if key == "file_too_big":
        return too_big_text(t, message)
    if key == "clip_too_long":
        return t("clip_too_long", limit=round(max_seconds))
    return t(key)


async def show_picker(message: Message, conv: Conversation, photo_ref: str) -> None:
    await conv.state.set_state(Flow.choosing_style)
    await conv.update_data(current=photo_ref)
    t = conv.t
    await message.answer(
        t("pick_style"),
        reply_markup=style_picker(t, photo_ref, conv.services.style_buttons(t.lang)),
    )


async def own_style_job(
    message: Message,
    conv: Conversation,
    *,
    photo: str,
    painting: str,
    dedupe_key: str,
    kind: MediaKind = "photo",
) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    saved = conv.prefs.add_painting(painting)
    await conv.prefs_store.save(message.chat.id, user_id, conv.prefs)
    await conv.state.set_state(Flow.choosing_style)
    spec = PaintSpec(photo=photo, kind=kind, style=None, painting_pid=saved.pid, painting=painting)
    await conv.enqueue(
        JobRequest(
            chat_id=message.chat.id,
            user_id=user_id,
            spec=spec,
            dedupe_key=dedupe_key,
            reply_to=message.message_id,
        )
    )


async def on_picture(
    message: Message, conv: Conversation, album: list[Message] | None = None
) -> None:
    t, state = conv.t, conv.state
    max_seconds = conv.services.settings.video_max_seconds
    items = album or [message]
    subjects: list[Subject] = []
    for item in items:
        got = subject_of(item, max_seconds)
        if isinstance(got, str):
            await item.answer(refusal_text(t, item, got, max_seconds))
        elif got is not None:
            subjects.append(got)
    if not subjects:
        return
    pictures = [s for s in subjects if s.kind == "photo"]
    if album is not None and len(subjects) == 2 and subjects[1].kind == "photo":
        # An album of two: the photo (or clip) first, the painting second.
        await message.answer(t("album_own_style"))
        photo_ref = await conv.remember_photo(subjects[0].file_id, subjects[0].kind)
        await conv.update_data(current=photo_ref)
        await own_style_job(
            message,
            conv,
            photo=subjects[0].file_id,
            painting=subjects[1].file_id,
            kind=subjects[0].kind,
            dedupe_key=f"album:{message.chat.id}:{message.media_group_id}",
        )
        return
    if album is not None and len(subjects) > 2:
        await message.answer(t("album_first_only"))
    subject = subjects[0]
    if (
        pictures
        and subject.kind == "photo"
        and (await state.get_state() == Flow.awaiting_painting.state)
    ):
        data = await state.get_data()
        current = data.get("current", "")
        photo = data.get("photos", {}).get(current)
        if photo:
            await own_style_job(
                message,
                conv,
                photo=photo,
                painting=subject.file_id,
                kind=data.get("kinds", {}).get(current, "photo"),
                dedupe_key=f"msg:{message.chat.id}:{message.message_id}",
            )
            return
    photo_ref = await conv.remember_photo(subject.file_id, subject.kind)
    await show_picker(message, conv, photo_ref)


async def on_style(query: CallbackQuery, callback_data: StyleCB, conv: Conversation) -> None:
    t, state, prefs = conv.t, conv.state, conv.prefs
    data = await state.get_data()
    photo = data.get("photos", {}).get(callback_data.photo)
    kind = data.get("kinds", {}).get(callback_data.photo, "photo")
    if not photo or query.message is None:
        await query.answer(t("photo_expired"), show_alert=True)
        return
    chat_id = query.message.chat.id
    style = callback_data.style
    if style == "own":
        await query.answer()
        await state.set_state(Flow.awaiting_painting)
        await conv.update_data(current=callback_data.photo)
        keyboard = paintings_keyboard(t, callback_data.photo, prefs.paintings)
        text = t("send_painting") if keyboard else t("send_painting_plain")
        await conv.bot.send_message(chat_id, text, reply_markup=keyboard)
        return
    if style.startswith("@"):
        painting = prefs.painting(style[1:])
        if painting is None:
            await query.answer(t("photo_expired"), show_alert=True)
            return
        spec = PaintSpec(
            photo=photo, kind=kind, painting_pid=painting.pid, painting=painting.file_id
        )
    elif conv.services.style_title(style, t.lang) is None:
        await query.answer(t("unknown_style"), show_alert=True)
        return
    else:
        spec = PaintSpec(photo=photo, kind=kind, style=style)
    await query.answer()
    await state.set_state(Flow.choosing_style)
    await conv.enqueue(
        JobRequest(
            chat_id=chat_id, user_id=query.from_user.id, spec=spec, dedupe_key=f"cb:{query.id}"
        )
    )


async def on_gallery(
    query: CallbackQuery, callback_data: GalleryCB, bot: Bot, t: Translator, services: Services
) -> None:
    """The previews of the picker's page (one album), or of every style."""
    await query.answer()
    chat_id = query.message.chat.id if query.message else query.from_user.id
    only = None
    if callback_data.page >= 0:
        only = [sid for sid, _ in page_of(services.style_buttons(t.lang), callback_data.page)]
    await bot.send_message(chat_id, t("gallery_intro"))
    if not await services.gallery.send(bot, chat_id, t.lang, only=only):
        await bot.send_message(chat_id, t("gallery_empty"))


async def on_page(query: CallbackQuery, callback_data: PageCB, conv: Conversation) -> None:
    """Another page of the picker, in the same message (the photo's ref stays)."""
    await query.answer()
    if query.message is None:
        return
    await conv.bot.edit_message_reply_markup(
        chat_id=query.message.chat.id,
        message_id=query.message.message_id,
        reply_markup=style_picker(
            conv.t,
            callback_data.photo,
            conv.services.style_buttons(conv.t.lang),
            callback_data.page,
        ),
    )


def router(album_wait: float = 0.8) -> Router:
    r = Router(name="pictures")
    r.message.middleware(AlbumMiddleware(album_wait))
    r.message.register(
        on_picture, F.photo | F.document | F.animation | F.video | F.video_note | F.sticker
    )
    r.callback_query.register(on_style, StyleCB.filter())
    r.callback_query.register(on_gallery, GalleryCB.filter())
    r.callback_query.register(on_page, PageCB.filter())
    return r
