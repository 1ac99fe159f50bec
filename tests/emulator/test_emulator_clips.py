"""Animations, videos, video notes and stickers both ways, getChat, unknown methods.

Real files (GIF and WebP from Pillow, MP4 and WebM from PyAV) over real HTTP, read
by real aiogram: the sizes a bot sees are the files' own, as on Telegram.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import BufferedInputFile, ChatFullInfo, InputMediaAnimation
from emulator_helpers import TOKEN, clip, gif, jpeg, tgs, webp
from video_clips import moving_scene, write_clip

from totoshka.emulator import EmulatorClient, EmulatorServer, Limits, SimUser

av = pytest.importorskip("av")


async def test_user_clips_and_stickers_arrive_in_telegram_shapes(
    bot: Bot, client: EmulatorClient, tmp_path: Path
) -> None:
    user = await client.create_user("Clara")
    sound = write_clip(tmp_path / "sound.mp4", moving_scene(24), audio=True).read_bytes()
    await user.send_animation(gif(65, 47, frames=10, ms=80), "cat.gif", caption="look")
    await user.send_video(clip(160, 96, frames=24, fps=12), "walk.mp4")
    await user.send_video(clip(128, 72, webm=True), "walk.webm")
    await user.send_video_note(clip(96, 96))
    await user.send_sticker("🐱", data=webp(512, 320))
    await user.send_sticker("🎉", data=tgs(), file_name="party.tgs")
    await user.send_sticker("🎬", is_video=True)
    await user.send_document(gif(), "raw.gif", "image/gif")
    await user.send_document(clip(64, 48), "raw.mp4", "video/mp4")
    await user.send_animation(clip(80, 60), "loop.mp4")
    await user.send_video(sound, "sound.mp4", caption="hear")
    await user.send_document(clip(64, 48, webm=True), "raw.webm", "video/webm")

    updates = await bot.get_updates()  # aiogram validates every update against its models
    animation, video, webm, note, still, lottie, video_sticker, gif_doc, mp4_doc, *rest = (
        u.message for u in updates
    )
    mp4_animation, with_sound, webm_doc = rest

    # Telegram re-encodes a GIF as a silent H.264 MP4; the message also carries it as a
    # document, without the sizes.
    assert animation is not None and animation.animation is not None
    a = animation.animation
    assert (a.mime_type, a.file_name) == ("video/mp4", "cat.gif.mp4")
    assert (a.width, a.height, a.duration) == (64, 46, 1)
    assert a.thumbnail is not None and (a.thumbnail.width, a.thumbnail.height) == (64, 46)
    assert animation.document is not None and animation.document.file_id == a.file_id
    assert animation.caption == "look"
    mp4 = await client.download(a.file_id)
    assert mp4[4:8] == b"ftyp" and len(mp4) == a.file_size

    assert video is not None and video.video is not None
    assert (video.video.width, video.video.height, video.video.duration) == (160, 96, 2)
    assert (video.video.mime_type, video.video.file_name) == ("video/mp4", "walk.mp4")
    assert video.video.thumbnail is not None
    assert webm is not None and webm.video is not None and webm.video.mime_type == "video/webm"
    assert (webm.video.width, webm.video.height) == (128, 72)
    assert note is not None and note.video_note is not None
    assert (note.video_note.length, note.video_note.duration) == (96, 2)

    assert still is not None and still.sticker is not None
    s = still.sticker
    assert (s.width, s.height, s.type, s.emoji) == (512, 320, "regular", "🐱")
    assert not s.is_animated and not s.is_video
    assert lottie is not None and lottie.sticker is not None and lottie.sticker.is_animated
    assert video_sticker is not None and video_sticker.sticker is not None
    assert video_sticker.sticker.is_video and not video_sticker.sticker.is_animated

    assert gif_doc is not None and gif_doc.document is not None and gif_doc.animation is None
    assert gif_doc.document.mime_type == "image/gif" and gif_doc.document.thumbnail is not None
    assert mp4_doc is not None and mp4_doc.document is not None
    assert mp4_doc.document.mime_type == "video/mp4" and mp4_doc.document.thumbnail is not None
    assert webm_doc is not None and webm_doc.document is not None
    assert (webm_doc.document.mime_type, webm_doc.document.file_name) == ("video/webm", "raw.webm")

    # An MP4 animation keeps its bytes and name; a video with sound is a video all the same.
    assert mp4_animation is not None and mp4_animation.animation is not None
    assert mp4_animation.document is not None
    m = mp4_animation.animation
    assert (m.mime_type, m.file_name, m.width, m.height) == ("video/mp4", "loop.mp4", 80, 60)
    assert with_sound is not None and with_sound.video is not None
    assert (with_sound.video.width, with_sound.video.height) == (96, 64)
    assert with_sound.video.duration == 2 and with_sound.caption == "hear"
    assert await client.download(with_sound.video.file_id) == sound

    file = await bot.get_file(a.file_id)
    assert file.file_path is not None and file.file_path.startswith("animations/")
    assert file.file_path.endswith(".mp4")
    seen = await user.messages(from_bot=False)
    assert [m.kind for m in seen] == [
        "animation",
        "video",
        "video",
        "video_note",
        *["sticker"] * 3,
        *["document"] * 2,
        "animation",
        "video",
        "document",
    ]
    assert [m.file_id for m in seen] == [
        a.file_id,
        video.video.file_id,
        webm.video.file_id,
        note.video_note.file_id,
        s.file_id,
        lottie.sticker.file_id,
        video_sticker.sticker.file_id,
        gif_doc.document.file_id,
        mp4_doc.document.file_id,
        m.file_id,
        with_sound.video.file_id,
        webm_doc.document.file_id,
    ]


async def test_given_numbers_win_and_stubs_take_them(bot: Bot, client: EmulatorClient) -> None:
    """So a test can pretend a clip is long without making one."""
    user = await client.create_user()
    await user.send_video(clip(64, 48), duration=90)
    await user.send_video()
    await user.send_animation()
    await user.send_video_note(length=300, duration=5)
    long, stub, animation, note = (u.message for u in await bot.get_updates())
    assert long is not None and long.video is not None
    assert (long.video.width, long.video.duration) == (64, 90)
    assert stub is not None and stub.video is not None
    assert (stub.video.width, stub.video.height, stub.video.duration) == (640, 360, 3)
    assert animation is not None and animation.animation is not None
    assert animation.document is not None
    assert note is not None and note.video_note is not None
    assert (note.video_note.length, note.video_note.duration) == (300, 5)


async def test_bot_sends_each_kind_back(bot: Bot, client: EmulatorClient, user: SimUser) -> None:
    painted = clip(160, 96)
    message = await bot.send_animation(
        user.id, BufferedInputFile(painted, "totoshka-wave.mp4"), caption="wave"
    )
    assert message.animation is not None and message.document is not None
    assert (message.animation.width, message.animation.height) == (160, 96)
    assert message.animation.mime_type == "video/mp4" and message.caption == "wave"
    from_gif = await bot.send_animation(user.id, BufferedInputFile(gif(40, 30), "a.gif"))
    assert from_gif.animation is not None and from_gif.animation.mime_type == "video/mp4"
    assert from_gif.animation.file_name == "a.gif.mp4"

    video = await bot.send_video(
        user.id,
        BufferedInputFile(painted, "v.mp4"),
        duration=2,
        supports_streaming=True,
        caption="done",
    )
    assert video.video is not None and (video.video.width, video.video.height) == (160, 96)
    assert video.video.duration == 2 and video.video.thumbnail is not None

    note = await bot.send_video_note(
        user.id, BufferedInputFile(clip(96, 96), "n.mp4"), length=96, duration=2
    )
    assert note.video_note is not None and (note.video_note.length, note.caption) == (96, None)
    probed = await bot.send_video_note(user.id, BufferedInputFile(clip(80, 80), "n.mp4"))
    assert probed.video_note is not None and probed.video_note.length == 80

    sticker = await bot.send_sticker(user.id, BufferedInputFile(webp(512, 512), "s.webp"))
    assert sticker.sticker is not None and sticker.sticker.width == 512
    assert not sticker.sticker.is_video and not sticker.sticker.is_animated
    moving = await bot.send_sticker(user.id, BufferedInputFile(clip(64, 64, webm=True), "m.webm"))
    assert moving.sticker is not None and moving.sticker.is_video

    # file_id reuse, and Telegram's refusal to change a file's type
    again = await bot.send_animation(user.id, message.animation.file_id)
    assert again.animation is not None
    assert again.animation.file_unique_id == message.animation.file_unique_id
    assert again.animation.thumbnail == message.animation.thumbnail
    resent = [
        (await bot.send_video(user.id, video.video.file_id)).video,
        (await bot.send_video_note(user.id, note.video_note.file_id)).video_note,
        (await bot.send_sticker(user.id, sticker.sticker.file_id)).sticker,
    ]
    assert resent == [video.video, note.video_note, sticker.sticker]  # the same objects
    with pytest.raises(TelegramBadRequest, match="can't use file of type Animation as Video"):
        await bot.send_video(user.id, message.animation.file_id)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_video_note(user.id, "no-such-file")

    downloaded = await bot.download(video.video.file_id)
    assert downloaded is not None and downloaded.read() == painted
    seen = await user.messages()
    clips = ["animation", "animation", "video", "video_note", "video_note"]
    assert [m.kind for m in seen] == [
        *clips,
        "sticker",
        "sticker",
        "animation",
        *clips[2:4],
        "sticker",
    ]
    assert await client.download(seen[3].file_id) == await client.download(note.video_note.file_id)
    assert (await client.download(seen[5].file_id))[:4] == b"RIFF"  # the WebP as sent


async def test_video_note_length_is_below_640(bot: Bot, user: SimUser) -> None:
    """TDLib refuses a round video of 640 px or more, whatever the file is."""
    data = clip(64, 64, frames=4)
    with pytest.raises(TelegramBadRequest, match="wrong video note length"):
        await bot.send_video_note(user.id, BufferedInputFile(data, "n.mp4"), length=640)
    with pytest.raises(TelegramBadRequest, match="wrong video note length"):
        await bot.send_video_note(user.id, BufferedInputFile(data, "n.mp4"), length=100_000)
    note = await bot.send_video_note(user.id, BufferedInputFile(data, "n.mp4"), length=639)
    assert note.video_note is not None and note.video_note.length == 639
    assert len(await user.messages()) == 1


@pytest.mark.parametrize("limits", [Limits(upload_bytes=3000, download_bytes=2000)])
async def test_clip_upload_and_download_limits(bot: Bot, user: SimUser) -> None:
    """50 MB up (413 Request Entity Too Large), 20 MB down ("file is too big"), scaled."""
    for send in (bot.send_video, bot.send_animation, bot.send_video_note, bot.send_sticker):
        with pytest.raises(TelegramEntityTooLarge):
            await send(user.id, BufferedInputFile(b"\x00" * 3001, "big.mp4"))
    video = await bot.send_video(user.id, BufferedInputFile(b"\x00" * 2500, "v.mp4"), width=8)
    assert video.video is not None and video.video.width == 8
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(video.video.file_id)


async def test_edit_message_media_takes_an_animation(bot: Bot, user: SimUser) -> None:
    status = await bot.send_photo(user.id, BufferedInputFile(jpeg(120, 80), "p.jpg"))
    edited = await bot.edit_message_media(
        InputMediaAnimation(media=BufferedInputFile(clip(64, 48, frames=6), "a.mp4")),
        chat_id=user.id,
        message_id=status.message_id,
    )
    assert not isinstance(edited, bool) and edited.animation is not None
    assert edited.photo is None and edited.document is not None


async def test_get_chat_is_todays_chat_full_info(
    bot: Bot, client: EmulatorClient, server: EmulatorServer
) -> None:
    user = await client.create_user("Dora", last_name="Ng", username="dora")
    await user.send_text("/start")
    chat = await bot.get_chat(user.id)  # aiogram validates the answer with its model
    assert isinstance(chat, ChatFullInfo)
    assert (chat.id, chat.type, chat.first_name, chat.username) == (
        user.id,
        "private",
        "Dora",
        "dora",
    )
    assert chat.accepted_gift_types.gifts_from_channels is True
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/bot{TOKEN}/getChat"
        async with http.post(url, json={"chat_id": user.id}) as response:
            raw = (await response.json())["result"]
    assert set(raw["accepted_gift_types"]) == {
        "unlimited_gifts",
        "limited_gifts",
        "unique_gifts",
        "premium_subscription",
        "gifts_from_channels",
    }
    import telegram  # python-telegram-bot 22, a test dependency: it must accept it too

    parsed = telegram.ChatFullInfo.de_json(raw, None)
    assert parsed.accepted_gift_types.gifts_from_channels is True
    assert parsed.max_reaction_count == 11


async def test_unknown_methods_answer_as_telegram(server: EmulatorServer) -> None:
    async with aiohttp.ClientSession() as http:
        for method in ("sendHologram", "sendVideoNotes", ""):
            async with http.post(f"{server.url}/bot{TOKEN}/{method}") as response:
                assert response.status == 404, method
                assert await response.json() == {
                    "ok": False,
                    "error_code": 404,
                    "description": "Not Found",
                }
        # Method names are case-insensitive, the new ones too; the file is checked first.
        async with http.post(f"{server.url}/bot{TOKEN}/SENDANIMATION", json={}) as response:
            assert (response.status, (await response.json())["description"]) == (
                400,
                "Bad Request: there is no animation in the request",
            )


def test_the_emulator_works_without_pyav() -> None:
    """PyAV is imported only when a clip arrives; without it GIFs stay GIFs and the
    caller's numbers describe a video."""
    code = """
import asyncio, sys
sys.modules["av"] = None  # as if not installed
sys.path.insert(0, "tests/emulator")
from emulator_helpers import gif
from totoshka.emulator import Limits
from totoshka.emulator.attachments import Attachments
from totoshka.emulator.params import Upload
from totoshka.emulator.state import FileStore

async def main():
    store = Attachments(FileStore(), Limits())
    content = await store.content("animation", Upload(gif(), "a.gif", None))
    assert content["animation"]["mime_type"] == "image/gif", content
    assert content["animation"]["width"] == 65 and "document" in content
    video = await store.media("video", Upload(b"\\0\\0\\0\\x18ftypmp42", "v.mp4", None), width=7)
    assert (video["width"], video["duration"]) == (7, 0), video

asyncio.run(main())
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8"
    )
    assert result.stdout.strip() == "ok", result.stderr
