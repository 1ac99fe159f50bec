"""Helpers shared by the emulator tests (importable: the test folder is on sys.path)."""

from __future__ import annotations

import io

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image

TOKEN = "424242:emulator-test-token"


def jpeg(width: int, height: int, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A real JPEG of the given size (with a gradient so it is not trivially compressible)."""
    image = Image.new("RGB", (width, height), color)
    for x in range(0, width, max(width // 16, 1)):
        image.paste((x % 256, 120, 255 - x % 256), (x, 0, min(x + 4, width), height))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def make_bot(url: str, token: str = TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
