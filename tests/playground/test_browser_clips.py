"""The chat page with GIFs, videos, video notes and stickers, in a real browser.

No bot process: the page and the emulator share one world, and a real aiogram Bot
sends the clips back, so the test covers exactly the page's part – pick a file,
see it go as its kind, see the bot's clips play (an animation muted and looped, a
video with controls, a round video note, a sticker without a bubble). Every wait is
bounded and nothing is timed.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile
from aiohttp.test_utils import TestServer
from PIL import Image
from playground_helpers import keep_screenshot
from playwright.async_api import Browser, Page, expect

from totoshka.emulator import EmulatorServer
from totoshka.playground.page import create_page_app

pytestmark = pytest.mark.browser
av = pytest.importorskip("av")

TOKEN = "5550001:clips-page-token"
BOT_ID = 5550001
WAIT_MS = 30_000


def _frames(width: int, height: int, count: int) -> list[Image.Image]:
    return [Image.new("RGB", (width, height), (i * 30 % 256, 110, 210)) for i in range(count)]


def _gif() -> bytes:
    frames = _frames(96, 64, 8)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _clip(width: int, height: int, *, webm: bool = False) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm" if webm else "mp4") as out:
        stream = out.add_stream("libvpx" if webm else "libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in _frames(width, height, 10):
            out.mux(stream.encode(av.VideoFrame.from_image(frame)))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (512, 512), (250, 180, 0, 200)).save(buffer, "WEBP")
    return buffer.getvalue()


@pytest.fixture
async def chat_page(browser: Browser) -> AsyncIterator[tuple[Page, EmulatorServer, Bot]]:
    async with EmulatorServer(default_bot_id=BOT_ID) as emulator:
        page_server = TestServer(create_page_app(emulator.world, BOT_ID))
        await page_server.start_server()
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emulator.url)))
        context = await browser.new_context(viewport={"width": 760, "height": 1300})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            await page.goto(str(page_server.make_url("/")))
            await expect(page.locator("#user-name")).to_contain_text("id ")
            yield page, emulator, bot
            assert errors == [], errors
        finally:
            await context.close()
            await bot.session.close()
            await page_server.close()


async def _pick(page: Page, menu_item: str, path: Path) -> None:
    """Open the 📎 menu, choose ``menu_item`` and pick ``path`` in the file chooser."""
    await page.click("#attach")
    async with page.expect_file_chooser() as chooser:
        await page.click(f'#attach-menu button[data-kind="{menu_item}"]')
    await (await chooser.value).set_files(str(path))


async def _until_playable(page: Page, selector: str) -> None:
    """Until the browser has decoded a frame of some matching <video> (it really plays)."""
    await page.wait_for_function(
        "(s) => [...document.querySelectorAll(s)].some((v) => v.readyState >= 2)",
        arg=selector,
        timeout=WAIT_MS,
    )


async def test_clips_go_as_their_kinds_and_play(
    chat_page: tuple[Page, EmulatorServer, Bot], tmp_path: Path
) -> None:
    page, emulator, bot = chat_page
    files = {
        "cat.gif": _gif(),
        "walk.mp4": _clip(160, 96),
        "round.mp4": _clip(96, 96),
        "hi.webp": _webp(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    user_id = int((await page.locator("#user-name").inner_text()).rsplit(" ", 1)[1])

    await _pick(page, "clip", tmp_path / "cat.gif")
    await expect(page.locator(".row.out video.clip.animation")).to_have_count(1, timeout=WAIT_MS)
    await _pick(page, "clip", tmp_path / "walk.mp4")
    await expect(page.locator(".row.out video.clip.video")).to_have_count(1, timeout=WAIT_MS)
    await _pick(page, "video_note", tmp_path / "round.mp4")
    await expect(page.locator(".row.out video.video-note")).to_have_count(1, timeout=WAIT_MS)
    await _pick(page, "clip", tmp_path / "hi.webp")
    await expect(page.locator(".row.out img.sticker")).to_have_count(1, timeout=WAIT_MS)
    sent = [u["message"] for u in emulator.world.bot(BOT_ID).updates]
    kinds = [
        next(k for k in ("animation", "video", "video_note", "sticker") if k in m) for m in sent
    ]
    assert kinds == ["animation", "video", "video_note", "sticker"]

    # The bot answers with each kind; the page plays them as Telegram does.
    await bot.send_animation(user_id, BufferedInputFile(_clip(128, 80), "a.mp4"), caption="gif")
    await bot.send_video(user_id, BufferedInputFile(_clip(128, 80), "v.mp4"), caption="video")
    await bot.send_video_note(user_id, BufferedInputFile(_clip(96, 96), "n.mp4"), length=96)
    await bot.send_sticker(user_id, BufferedInputFile(_webp(), "s.webp"))
    await bot.send_sticker(user_id, BufferedInputFile(_clip(64, 64, webm=True), "s.webm"))

    animation = page.locator(".row.in video.clip.animation")
    await expect(animation).to_have_count(1, timeout=WAIT_MS)
    for attribute in ("autoplay", "loop", "muted", "playsinline"):
        await expect(animation).to_have_attribute(attribute, "")
    assert await animation.evaluate("(v) => v.muted && !v.controls")
    video = page.locator(".row.in video.clip.video")
    await expect(video).to_have_count(1, timeout=WAIT_MS)
    assert await video.evaluate("(v) => v.controls && !v.autoplay")
    note = page.locator(".row.in video.video-note")
    await expect(note).to_have_count(1, timeout=WAIT_MS)
    assert await note.evaluate("(v) => getComputedStyle(v).borderRadius") == "50%"
    await expect(page.locator(".row.in img.sticker")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator(".row.in video.sticker")).to_have_count(1, timeout=WAIT_MS)
    await _until_playable(page, ".row.in video.clip.animation")
    await _until_playable(page, ".row.in video.sticker")

    shot = tmp_path / "playground-clips.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)
