"""Bot API methods that create, change or remove messages.

Each handler validates in Telegram's order where it matters to a bot (text and
markup before files, files before the chat is touched), so a refused call stores
nothing. Edits keep the previous version in the message's history so tests and
the playground can see that a progress message was really updated in place.
"""

from __future__ import annotations

import time
from typing import Any

from totoshka.emulator.attachments import Attachments
from totoshka.emulator.call import Call, Handler, existing_message, reply_target, target_chat
from totoshka.emulator.errors import (
    CAPTION_TOO_LONG,
    IMAGE_PROCESS_FAILED,
    MESSAGE_CANT_BE_EDITED,
    MESSAGE_TO_DELETE_NOT_FOUND,
    MESSAGE_TO_EDIT_NOT_FOUND,
    NO_CAPTION_TO_EDIT,
    NO_TEXT_TO_EDIT,
    NOT_MODIFIED,
    PHOTO_INVALID_DIMENSIONS,
    TEXT_EMPTY,
    TEXT_TOO_LONG,
    VIDEO_NOTE_LENGTH,
    BotApiError,
    bad_request,
)
from totoshka.emulator.limits import VIDEO_MAX_SIDE, VIDEO_NOTE_MAX_LENGTH
from totoshka.emulator.markup import parse_reply_markup
from totoshka.emulator.params import Params
from totoshka.emulator.state import Chat, Message
from totoshka.emulator.text import parse_text, utf16_len

_MEDIA_KINDS = (
    "photo",
    "document",
    "video",
    "audio",
    "sticker",
    "voice",
    "animation",
    "video_note",
)
_NUMERIC = ("width", "height", "duration", "length")


def attachments(call: Call) -> Attachments:
    return Attachments(call.world.files, call.world.limits)


def read_text(call: Call) -> dict[str, Any]:
    """``text`` + ``parse_mode``/``entities`` → ``{"text", "entities"?}`` or Telegram's error."""
    params = call.params
    raw = params.string("text")
    if raw is None or not raw.strip():
        raise bad_request(TEXT_EMPTY)
    entities = params.json_value("entities", "entities")
    text, parsed = parse_text(raw, params.string("parse_mode"), entities)
    if not text.strip():
        raise bad_request(TEXT_EMPTY)
    if utf16_len(text) > call.world.limits.text_chars:
        raise bad_request(TEXT_TOO_LONG)
    content: dict[str, Any] = {"text": text}
    if parsed:
        content["entities"] = parsed
    return content


def read_caption(call: Call, source: Params | None = None) -> dict[str, Any]:
    """``caption`` (from the call or an InputMedia object) → ``{"caption", ...}``, maybe empty."""
    params = source or call.params
    raw = params.string("caption")
    if not raw:
        return {}
    entities = params.json_value("caption_entities", "caption entities")
    caption, parsed = parse_text(raw, params.string("parse_mode"), entities)
    if utf16_len(caption.strip()) > call.world.limits.caption_chars:
        raise bad_request(CAPTION_TOO_LONG)
    if not caption.strip():
        return {}
    content: dict[str, Any] = {"caption": caption}
    if parsed:
        content["caption_entities"] = parsed
    return content


Markup = tuple[dict[str, Any] | None, dict[str, Any] | None]


def read_markup(call: Call) -> Markup:
    """(inline keyboard for the message, reply keyboard / removal / force-reply for the chat)."""
    markup = call.params.json_value("reply_markup", "reply keyboard markup")
    return parse_reply_markup(markup, call.world.limits)


def read_inline_markup(call: Call) -> dict[str, Any] | None:
    """Edits take inline keyboards only; leaving it out removes the message's keyboard."""
    markup = call.params.json_value("reply_markup", "reply keyboard markup")
    return parse_reply_markup(markup, call.world.limits, inline_only=True)[0]


def _post(call: Call, chat: Chat, content: dict[str, Any], markup: Markup, **extra: Any) -> Message:
    inline, keyboard = markup
    if keyboard is not None:
        chat.reply_keyboard = None if keyboard.get("remove_keyboard") else keyboard
    return call.world.post(
        call.bot, chat, from_bot=True, content=content, reply_markup=inline, **extra
    )


async def send_message(call: Call) -> dict[str, Any]:
    content = read_text(call)
    markup = read_markup(call)
    chat = target_chat(call)
    reply_to = reply_target(call, chat)
    return _post(call, chat, content, markup, reply_to=reply_to).to_json()


async def send_photo(call: Call) -> dict[str, Any]:
    caption = read_caption(call)
    markup = read_markup(call)
    photo = await attachments(call).photo(call.params.file_param("photo"))
    chat = target_chat(call)
    reply_to = reply_target(call, chat)
    content: dict[str, Any] = {"photo": photo, **caption}
    if call.params.flag("has_spoiler"):
        content["has_media_spoiler"] = True
    return _post(call, chat, content, markup, reply_to=reply_to).to_json()


def media_attributes(params: Params, *names: str) -> dict[str, Any]:
    """Sizes and durations as integers, the rest (performer, title, emoji) as text."""
    return {
        name: params.get(name, int) if name in _NUMERIC else params.string(name) for name in names
    }


def _media_sender(kind: str, *attributes: str, caption: bool = True) -> Handler:
    """Handler for sendDocument / sendVideo / sendAnimation / sendVideoNote / sendSticker / ..."""

    async def handler(call: Call) -> dict[str, Any]:
        text = read_caption(call) if caption else {}
        markup = read_markup(call)
        values = media_attributes(call.params, *attributes)
        if kind == "video_note":
            values["length"] = _video_note_length(call.params)
        reference = call.params.file_param(kind)
        content = await attachments(call).content(kind, reference, **values)
        chat = target_chat(call)
        reply_to = reply_target(call, chat)
        content.update(text)
        if kind in ("video", "animation") and call.params.flag("has_spoiler"):
            content["has_media_spoiler"] = True
        return _post(call, chat, content, markup, reply_to=reply_to).to_json()

    handler.__name__ = f"send_{kind}"
    return handler


def _video_note_length(params: Params) -> int | None:
    """The Bot API clamps ``length`` to 0..10000; TDLib then refuses a round video of 640 px
    or more ("wrong video note length"), whatever the file really is."""
    length = params.get("length", int)
    if length is None:
        return None
    length = min(max(length, 0), VIDEO_MAX_SIDE)
    if length >= VIDEO_NOTE_MAX_LENGTH:
        raise bad_request(VIDEO_NOTE_LENGTH)
    return length or None


send_document = _media_sender("document")
send_video = _media_sender("video", "width", "height", "duration")
send_animation = _media_sender("animation", "width", "height", "duration")
send_video_note = _media_sender("video_note", "duration", caption=False)
send_voice = _media_sender("voice", "duration")
send_audio = _media_sender("audio", "duration", "performer", "title")
send_sticker = _media_sender("sticker", "emoji", caption=False)


async def _input_media(call: Call, item: Any, *, in_album: bool = True) -> dict[str, Any]:
    """One InputMedia object → message content (media + caption); albums take no GIFs."""
    if not isinstance(item, dict) or "type" not in item:
        raise bad_request("can't parse InputMedia: media not found")
    kind = item["type"]
    reference = call.params.file(item.get("media"))
    if reference is None:
        raise bad_request("can't parse InputMedia: media not found")
    fields = Params(item)
    caption = read_caption(call, fields)
    store = attachments(call)
    if kind == "photo":
        content: dict[str, Any] = {"photo": await store.photo(reference)}
    elif kind in ("document", "video", "audio") or (kind == "animation" and not in_album):
        attributes = media_attributes(fields, "width", "height", "duration", "performer", "title")
        content = await store.content(kind, reference, **attributes)
    elif kind == "animation":
        raise bad_request(
            "can't parse InputMedia: type \"animation\" can't be used in sendMediaGroup"
        )
    else:
        raise bad_request(f'can\'t parse InputMedia: type "{kind}" is unsupported')
    content.update(caption)
    return content


async def send_media_group(call: Call) -> list[dict[str, Any]]:
    items = call.params.json_value("media", "media")
    if not items:
        raise bad_request("there are no messages to send")
    if not isinstance(items, list):
        raise bad_request("can't parse media JSON object")
    if len(items) > call.world.limits.media_group_max:
        raise bad_request("too many messages to send as an album")
    kinds = [item.get("type") if isinstance(item, dict) else None for item in items]
    for lonely in ("document", "audio"):
        if lonely in kinds and any(kind != lonely for kind in kinds):
            raise bad_request(f"{lonely} can't be mixed with other media types")
    contents = []
    for position, item in enumerate(items, start=1):
        try:
            contents.append(await _input_media(call, item))
        except BotApiError as error:
            # Telegram's servers (not the Bot API front) judge image content and name the item.
            reason = error.description.removeprefix("Bad Request: ")
            if reason in (IMAGE_PROCESS_FAILED, PHOTO_INVALID_DIMENSIONS):
                raise bad_request(
                    f'failed to send message #{position} with the error message "{reason}"'
                ) from error
            raise
    chat = target_chat(call)
    reply_to = reply_target(call, chat)
    # A single item goes out as a plain message, as the official server does.
    group_id = call.world.next_media_group_id() if len(contents) > 1 else None
    return [
        _post(
            call, chat, content, (None, None), media_group_id=group_id, reply_to=reply_to
        ).to_json()
        for content in contents
    ]


def _message_to_edit(call: Call) -> tuple[Chat, Message]:
    if call.params.has("inline_message_id") and not call.params.has("chat_id"):
        raise bad_request("MESSAGE_ID_INVALID")  # the emulator has no inline mode
    chat = target_chat(call)
    if not call.params.has("message_id"):
        raise bad_request("message identifier is not specified")
    message = existing_message(chat, call.params.get("message_id", int), MESSAGE_TO_EDIT_NOT_FOUND)
    if not message.from_bot:
        raise bad_request(MESSAGE_CANT_BE_EDITED)
    return chat, message


def _apply_edit(
    chat: Chat,
    message: Message,
    content: dict[str, Any],
    markup: dict[str, Any] | None,
    drop: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Replace parts of a message, or fail "message is not modified" when nothing changes."""
    new_content = {k: v for k, v in message.content.items() if k not in drop}
    new_content.update(content)
    if new_content == message.content and markup == message.reply_markup:
        raise bad_request(NOT_MODIFIED)
    message.snapshot()
    message.content = new_content
    message.reply_markup = markup
    message.edit_date = int(time.time())
    chat.record("edit", message)
    return message.to_json()


async def edit_message_text(call: Call) -> dict[str, Any]:
    chat, message = _message_to_edit(call)
    content = read_text(call)
    markup = read_inline_markup(call)
    if "text" not in message.content:
        raise bad_request(NO_TEXT_TO_EDIT)
    return _apply_edit(chat, message, content, markup, drop=("text", "entities"))


async def edit_message_caption(call: Call) -> dict[str, Any]:
    chat, message = _message_to_edit(call)
    caption = read_caption(call)
    markup = read_inline_markup(call)
    if not any(kind in message.content for kind in _MEDIA_KINDS):
        raise bad_request(NO_CAPTION_TO_EDIT)
    return _apply_edit(chat, message, caption, markup, drop=("caption", "caption_entities"))


async def edit_message_reply_markup(call: Call) -> dict[str, Any]:
    chat, message = _message_to_edit(call)
    markup = read_inline_markup(call)
    return _apply_edit(chat, message, {}, markup)


async def edit_message_media(call: Call) -> dict[str, Any]:
    chat, message = _message_to_edit(call)
    markup = read_inline_markup(call)
    if not any(kind in message.content for kind in _MEDIA_KINDS):
        raise bad_request("there is no media in the message to edit")
    item = call.params.json_value("media", "input media")
    content = await _input_media(call, item, in_album=False)
    drop = (*_MEDIA_KINDS, "caption", "caption_entities", "has_media_spoiler")
    return _apply_edit(chat, message, content, markup, drop=drop)


async def delete_message(call: Call) -> bool:
    chat = target_chat(call)
    message_id = call.params.get("message_id", int)
    message = existing_message(chat, message_id, MESSAGE_TO_DELETE_NOT_FOUND)
    message.deleted = True
    chat.record("delete", message)
    return True


async def delete_messages(call: Call) -> bool:
    chat = target_chat(call)
    ids = call.params.json_value("message_ids", "message identifiers", list[int]) or []
    found = [chat.messages.get(i) for i in ids]
    for message in found:
        if message is not None and not message.deleted:
            message.deleted = True
            chat.record("delete", message)
    return True
