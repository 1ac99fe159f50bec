"""A tiny scripted aiogram 3 bot that plays the real bot's conversation, for page tests.

It lets the page and the runner be tested on their own, independent of the real
bot's features: ``/start`` greets, a photo gets an inline style picker, a pressed
style gets one status message edited in place (queued → working → done), then
the "result" photo (the photo, recoloured by Pillow) and the full-resolution file.
Configured like the real bot, by ``TOTOSHKA_BOT_TOKEN`` and ``TOTOSHKA_API_URL``.
"""

from __future__ import annotations

import asyncio
import io
import os

from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from PIL import Image, ImageOps

STYLES = {"sepia": "Sepia", "invert": "Negative", "poster": "Poster"}


def _styled(data: bytes, style: str) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if style == "sepia":
        image = ImageOps.colorize(ImageOps.grayscale(image), "#2b1a0e", "#f3e2c0")
    elif style == "invert":
        image = ImageOps.invert(image)
    else:
        image = ImageOps.posterize(image, 2)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def build_dispatcher() -> Dispatcher:
    dp = Dispatcher()
    photos: dict[int, str] = {}  # chat id -> last photo's file_id (test bot only)

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        name = message.from_user.first_name if message.from_user else "there"
        await message.answer(f"Hi, <b>{name}</b>! Send me a photo and pick a style.")

    @dp.message(F.photo)
    async def photo(message: Message) -> None:
        assert message.photo is not None
        photos[message.chat.id] = message.photo[-1].file_id
        row = [InlineKeyboardButton(text=t, callback_data=f"style:{k}") for k, t in STYLES.items()]
        keyboard = InlineKeyboardMarkup(inline_keyboard=[row])
        await message.answer("Pick a style:", reply_markup=keyboard)

    @dp.callback_query(F.data.startswith("style:"))
    async def style(query: CallbackQuery, bot: Bot) -> None:
        assert query.data is not None and query.message is not None
        key = query.data.split(":", 1)[1]
        chat_id = query.message.chat.id
        await query.answer(f"{STYLES[key]}: queued")
        status = await bot.send_message(chat_id, "⏳ In line: 1")
        await asyncio.sleep(0.3)
        await status.edit_text(f"🎨 Painting in <i>{STYLES[key]}</i>…")
        await bot.send_chat_action(chat_id, "upload_photo")
        file = await bot.download(photos[chat_id])
        assert file is not None
        result = await asyncio.to_thread(_styled, file.read(), key)
        await bot.send_photo(
            chat_id, BufferedInputFile(result, "result.jpg"), caption=f"{STYLES[key]} ✨"
        )
        await bot.send_document(chat_id, BufferedInputFile(result, f"totoshka-{key}.jpg"))
        await status.edit_text("✅ Done")

    @dp.message()
    async def other(message: Message) -> None:
        await message.answer("Send me a photo, please.")

    return dp


async def main() -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TOTOSHKA_API_URL"]))
    bot = Bot(
        os.environ["TOTOSHKA_BOT_TOKEN"],
        session=session,
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    await build_dispatcher().start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    asyncio.run(main())
