"""Telegram's rules in isolation: text markup, album composition, replies, MarkdownV2 escaping."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InputMediaDocument, InputMediaPhoto, ReplyParameters
from emulator_helpers import jpeg

from totoshka.emulator import SimUser
from totoshka.emulator.errors import BotApiError
from totoshka.emulator.text import command_entities, parse_html, parse_text, utf16_len


def test_html_becomes_text_with_utf16_entities() -> None:
    text, entities = parse_html('🎨 <b>Style</b> <a href="https://t.me/x">link</a> &lt;3')
    assert text == "🎨 Style link <3"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 5},
        {"type": "text_link", "offset": 9, "length": 4, "url": "https://t.me/x"},
    ]
    assert utf16_len("🎨") == 2


@pytest.mark.parametrize(
    ("source", "mode", "error"),
    [
        ("<b>open", "HTML", "Can't find end tag"),
        ("<div>x</div>", "HTML", 'Unsupported start tag "div"'),
        ("Done.", "MarkdownV2", "Character '.' is reserved"),
        ("x", "Klingon", "unsupported parse_mode"),
    ],
)
def test_bad_markup_fails_like_telegram(source: str, mode: str, error: str) -> None:
    with pytest.raises(BotApiError, match=error):
        parse_text(source, mode, None)


def test_markdown_v2_escapes_are_removed() -> None:
    assert parse_text(r"*Done\.* 100\%", "MarkdownV2", None)[0] == "Done. 100%"


def test_command_entities_only_at_word_starts() -> None:
    entities = command_entities("/start a/b /help@totoshka_bot x")
    assert [(e["offset"], e["length"]) for e in entities] == [(0, 6), (11, 18)]


async def test_albums_refuse_mixing_and_send_one_item_as_a_message(bot: Bot, user: SimUser) -> None:
    photo = InputMediaPhoto(media=BufferedInputFile(jpeg(200, 200), "p.jpg"))
    document = InputMediaDocument(media=BufferedInputFile(b"doc", "d.txt"))
    with pytest.raises(TelegramBadRequest, match="document can't be mixed"):
        await bot.send_media_group(user.id, [photo, document])
    bad = InputMediaPhoto(media=BufferedInputFile(b"junk", "j.jpg"))
    with pytest.raises(
        TelegramBadRequest, match=r"failed to send message #2 .*IMAGE_PROCESS_FAILED"
    ):
        await bot.send_media_group(user.id, [photo, bad])
    [single] = await bot.send_media_group(user.id, [photo])
    assert single.media_group_id is None and single.photo is not None
    assert len(await user.messages()) == 1  # refused albums stored nothing


async def test_replies_quote_the_message(bot: Bot, user: SimUser) -> None:
    [start] = await user.messages(from_bot=False)
    reply = await bot.send_message(
        user.id, "hello", reply_parameters=ReplyParameters(message_id=start.message_id)
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "/start"
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(user.id, "x", reply_parameters=ReplyParameters(message_id=999))
