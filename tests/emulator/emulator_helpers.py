"""Helpers shared by the emulator tests (importable: the test folder is on sys.path)."""

from __future__ import annotations

import gzip
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


def gif(width: int = 65, height: int = 47, frames: int = 10, ms: int = 80) -> bytes:
    """An animated GIF whose colour changes every frame (odd sides on purpose)."""
    images = [Image.new("RGB", (width, height), (i * 25 % 256, 90, 200)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=ms, loop=0)
    return buffer.getvalue()


def webp(width: int = 512, height: int = 320) -> bytes:
    """A still WebP sticker with transparency."""
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (255, 120, 0, 128)).save(buffer, "WEBP")
    return buffer.getvalue()


def tgs() -> bytes:
    """An animated sticker: gzipped Lottie JSON, as Telegram's .tgs files are."""
    return gzip.compress(b'{"v":"5.5.2","fr":30,"ip":0,"op":30,"w":512,"h":512,"layers":[]}')


def clip(width: int, height: int, frames: int = 24, fps: int = 12, *, webm: bool = False) -> bytes:
    """A real H.264 MP4 (or VP8 WebM) made with PyAV, in memory: ``frames / fps`` seconds."""
    import av  # the caller skips the test without it

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm" if webm else "mp4") as out:
        stream = out.add_stream("libvpx" if webm else "libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = Image.new("RGB", (width, height), (i * 10 % 256, 80, 160))
            out.mux(stream.encode(av.VideoFrame.from_image(image)))
        out.mux(stream.encode(None))
    return buffer.getvalue()
