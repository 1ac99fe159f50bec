"""The Bot API as aiogram sees it: shapes, limits and Telegram's errors, over real HTTP."""

from __future__ import annotations

import io

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge, TelegramForbiddenError
from aiogram.types import BotCommand, BufferedInputFile, InlineKeyboardButton, InputMediaPhoto
from aiogram.types import InlineKeyboardMarkup as Markup
from emulator_helpers import jpeg
from PIL import Image

from totoshka.emulator import EmulatorClient, Limits, SimUser


def keyboard(*pairs: tuple[str, str]) -> Markup:
    return Markup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in pairs]]
    )


async def test_get_me_is_the_bot_of_the_token(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 424242
    assert me.is_bot
    assert me.username == "emulator_424242_bot"


async def test_send_message_with_keyboard_reaches_the_user(bot: Bot, user: SimUser) -> None:
    sent = await bot.send_message(user.id, "Pick a style", reply_markup=keyboard(("A", "a")))
    second = await bot.send_message(user.id, "<b>bold</b> &amp; more", parse_mode="HTML")

    assert sent.from_user is not None and sent.from_user.id == 424242
    assert sent.chat.id == user.id and sent.chat.type == "private"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "a"
    assert second.message_id == sent.message_id + 1
    assert second.text == "bold & more"
    assert second.entities is not None and second.entities[0].type == "bold"
    seen = await user.messages()
    assert [m.text for m in seen] == ["Pick a style", "bold & more"]
    assert seen[0].buttons == [InlineKeyboardButton(text="A", callback_data="a")]


async def test_text_limits_and_missing_chats(
    bot: Bot, user: SimUser, client: EmulatorClient
) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.id, "x" * 4097)
    await bot.send_message(user.id, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(user.id, "   ")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "hello")
    stranger = await client.create_user("Bob")
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(stranger.id, "hello")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user.id, "<blink>x</blink>", parse_mode="HTML")


async def test_callback_data_longer_than_64_bytes_is_refused(bot: Bot, user: SimUser) -> None:
    await bot.send_message(user.id, "ok", reply_markup=keyboard(("A", "é" * 32)))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(user.id, "no", reply_markup=keyboard(("A", "é" * 32 + "x")))


async def test_photo_gets_telegram_sizes_and_can_be_downloaded(bot: Bot, user: SimUser) -> None:
    data = jpeg(3000, 2000)
    message = await bot.send_photo(
        user.id,
        BufferedInputFile(data, "big.jpg"),
        caption="Done",
        reply_markup=keyboard(("Again", "again")),
    )
    assert message.photo is not None
    sides = [(p.width, p.height) for p in message.photo]
    assert sides == [(90, 60), (320, 213), (800, 533), (1280, 853), (2560, 1707)]
    assert len({p.file_unique_id for p in message.photo}) == 5
    assert message.caption == "Done"

    largest = message.photo[-1]
    file = await bot.get_file(largest.file_id)
    assert file.file_path is not None and file.file_size == largest.file_size
    buffer = io.BytesIO()
    await bot.download(largest.file_id, destination=buffer)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        assert image.size == (2560, 1707)

    again = await bot.send_photo(user.id, largest.file_id)
    assert again.photo == message.photo


async def test_small_photo_keeps_its_own_size(bot: Bot, user: SimUser) -> None:
    message = await bot.send_photo(user.id, BufferedInputFile(jpeg(500, 400), "s.jpg"))
    assert message.photo is not None
    assert [(p.width, p.height) for p in message.photo] == [(90, 72), (320, 256), (500, 400)]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (jpeg(2100, 100), "PHOTO_INVALID_DIMENSIONS"),
        (jpeg(6000, 4500), "PHOTO_INVALID_DIMENSIONS"),
        (b"not an image at all", "IMAGE_PROCESS_FAILED"),
    ],
)
async def test_invalid_photos_are_refused(bot: Bot, user: SimUser, data: bytes, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_photo(user.id, BufferedInputFile(data, "x.jpg"))
    assert await user.messages() == []


async def test_document_upload_and_reuse(bot: Bot, user: SimUser) -> None:
    message = await bot.send_document(
        user.id, BufferedInputFile(b"%PDF-1.4 tiny", "report.pdf"), caption="c" * 1024
    )
    assert message.document is not None
    assert message.document.file_name == "report.pdf"
    assert message.document.mime_type == "application/pdf"
    assert message.document.file_size == 13
    again = await bot.send_document(user.id, message.document.file_id)
    assert again.document is not None
    assert again.document.file_unique_id == message.document.file_unique_id
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_document(user.id, message.document.file_id, caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(user.id, "no-such-file-id")


@pytest.mark.parametrize("limits", [Limits(download_bytes=1000)])
async def test_get_file_refuses_files_over_the_download_limit(bot: Bot, user: SimUser) -> None:
    message = await bot.send_document(user.id, BufferedInputFile(b"x" * 1001, "big.bin"))
    assert message.document is not None
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(message.document.file_id)


async def test_media_group_shares_an_id(bot: Bot, user: SimUser) -> None:
    media = [InputMediaPhoto(media=BufferedInputFile(jpeg(400, 300), f"{i}.jpg")) for i in range(3)]
    messages = await bot.send_media_group(user.id, media)
    assert len(messages) == 3
    group_ids = {m.media_group_id for m in messages}
    assert len(group_ids) == 1 and None not in group_ids
    assert [m.message_id for m in messages] == sorted(m.message_id for m in messages)
    eleven = [InputMediaPhoto(media=messages[0].photo[-1].file_id) for _ in range(11)]  # type: ignore[index]
    with pytest.raises(TelegramBadRequest, match="too many messages to send as an album"):
        await bot.send_media_group(user.id, eleven)


async def test_edits_keep_history_and_refuse_no_op(bot: Bot, user: SimUser) -> None:
    sent = await bot.send_message(user.id, "Working… 0%", reply_markup=keyboard(("Stop", "stop")))
    edited = await bot.edit_message_text(
        "Working… 50%",
        chat_id=user.id,
        message_id=sent.message_id,
        reply_markup=keyboard(("Stop", "stop")),
    )
    assert not isinstance(edited, bool) and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Working… 50%",
            chat_id=user.id,
            message_id=sent.message_id,
            reply_markup=keyboard(("Stop", "stop")),
        )
    # Leaving reply_markup out removes the keyboard, as on Telegram.
    await bot.edit_message_text("Done", chat_id=user.id, message_id=sent.message_id)
    [message] = await user.messages()
    assert message.text == "Done" and message.buttons == []
    assert message.edit_count == 2
    assert [h.text for h in message.history] == ["Working… 0%", "Working… 50%"]
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=user.id, message_id=999)


async def test_edit_reply_markup_caption_and_media(bot: Bot, user: SimUser) -> None:
    photo = await bot.send_photo(user.id, BufferedInputFile(jpeg(300, 200), "a.jpg"), caption="one")
    await bot.edit_message_caption(chat_id=user.id, message_id=photo.message_id, caption="two")
    await bot.edit_message_reply_markup(
        chat_id=user.id, message_id=photo.message_id, reply_markup=keyboard(("x", "x"))
    )
    edited = await bot.edit_message_media(
        InputMediaPhoto(media=BufferedInputFile(jpeg(200, 300), "b.jpg"), caption="three"),
        chat_id=user.id,
        message_id=photo.message_id,
    )
    assert not isinstance(edited, bool) and edited.photo is not None
    assert (edited.photo[-1].width, edited.photo[-1].height) == (200, 300)
    [message] = await user.messages()
    assert message.caption == "three" and message.edit_count == 3


async def test_delete_message(bot: Bot, user: SimUser) -> None:
    sent = await bot.send_message(user.id, "bye")
    assert await bot.delete_message(user.id, sent.message_id)
    assert await user.messages() == []
    assert [m.deleted for m in await user.messages(include_deleted=True)] == [True]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.id, sent.message_id)


async def test_commands_by_scope_and_language(bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="styles", description="Styles"),
    ]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands(commands[:1], language_code="ru")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "styles"]
    assert [c.command for c in await bot.get_my_commands(language_code="ru")] == ["start"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])


async def test_chat_action_and_blocked_user(bot: Bot, user: SimUser) -> None:
    assert await bot.send_chat_action(user.id, "upload_photo")
    events = await user.events()
    assert events["events"][-1]["type"] == "chat_action"
    assert events["events"][-1]["data"] == {"action": "upload_photo"}
    await user.block_bot()
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(user.id, "hello?")


@pytest.mark.parametrize("limits", [Limits(photo_upload_bytes=2000, upload_bytes=3000)])
async def test_upload_size_limits(bot: Bot, user: SimUser) -> None:
    big_photo = jpeg(400, 400)
    assert len(big_photo) > 2000
    with pytest.raises(TelegramBadRequest, match="too big for a photo"):
        await bot.send_photo(user.id, BufferedInputFile(big_photo, "p.jpg"))
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(user.id, BufferedInputFile(b"x" * 3001, "d.bin"))
    await bot.send_document(user.id, BufferedInputFile(b"x" * 3000, "d.bin"))


async def test_answer_callback_query_once(bot: Bot, user: SimUser, client: EmulatorClient) -> None:
    sent = await bot.send_message(user.id, "choose", reply_markup=keyboard(("A", "a")))
    query_id = await user.press(sent, "a")
    assert await client.callback_answer(query_id) is None
    assert await bot.answer_callback_query(query_id, text="ok", show_alert=True)
    assert await client.callback_answer(query_id) == {"text": "ok", "show_alert": True}
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
