"""GIFs, videos, round videos and stickers through the real bot, as users send them.

Each kind comes back as its own kind (a video keeps its sound, a video note stays a
square of the same length), the one status message counts up in percent, `/cancel`
stops a clip mid-way, and a long clip on the clips' lane does not hold up another
user's photo. Clips are made by tests/video_clips.py, never taken from ../shared.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from bot_helpers import WAIT, RunningBot, start_bot
from PIL import Image
from video_clips import moving_scene, pan_and_zoom, write_clip

from totoshka.bot.texts import Texts

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()
WAVE = {"en": "The Great Wave off Kanagawa", "ru": "Большая волна в Канагаве"}


def t(lang: str, key: str, **params: object) -> str:
    return TEXTS.get(lang, key, **params)


def clip_bytes(tmp_path: Path, name: str, frames, fps: int, *, audio: bool = False) -> bytes:
    return write_clip(tmp_path / name, frames, fps, audio=audio).read_bytes()


def facts(data: bytes) -> dict[str, object]:
    with av.open(io.BytesIO(data)) as c:
        video = c.streams.video[0]
        return {
            "codec": video.codec_context.name,
            "size": (video.codec_context.width, video.codec_context.height),
            "seconds": float(c.duration or 0) / av.time_base,
            "audio": [s.codec_context.name for s in c.streams.audio],
        }


async def pick_wave(user, lang: str) -> None:
    picker = await user.wait_for_message(
        lambda m: m.buttons and m.text == t(lang, "pick_style"), timeout=WAIT
    )
    await user.press(picker, WAVE[lang])


def painting_percent(lang: str):
    prefix = t(lang, "status_painting_clip", style=WAVE[lang], percent=0).split("0%")[0]
    return lambda m: m.text and m.text.startswith(prefix) and "%" in m.text


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_each_kind_comes_back_as_itself(
    bot: RunningBot, new_user, client, lang: str, tmp_path: Path
) -> None:
    user = await new_user(lang)
    gif = clip_bytes(tmp_path, "in.gif", moving_scene(8, (96, 64)), 8)
    video = clip_bytes(tmp_path, "in.mp4", pan_and_zoom(24, (128, 80)), 12, audio=True)
    note = clip_bytes(tmp_path, "note.mp4", pan_and_zoom(18, (96, 96)), 12)
    sticker = io.BytesIO()
    Image.new("RGBA", (512, 320), (255, 120, 0, 128)).save(sticker, "WEBP")

    sends = [
        ("animation", lambda: user.send_animation(gif, "in.gif")),
        ("video", lambda: user.send_video(video, "in.mp4")),
        ("video_note", lambda: user.send_video_note(note)),
        ("sticker", lambda: user.send_sticker(data=sticker.getvalue())),
    ]
    for kind, send in sends:
        await send()
        await pick_wave(user, lang)
        result = await user.wait_for_message(lambda m, k=kind: m.kind == k, timeout=WAIT)
        await user.wait_for_message(
            lambda m: m.text == t(lang, "status_done", style=WAVE[lang]), timeout=WAIT
        )
        data = await client.download(result.file_id)
        if kind == "sticker":
            with Image.open(io.BytesIO(data)) as img:
                assert img.format == "WEBP" and max(img.size) == 512 and img.mode == "RGBA"
            continue
        got = facts(data)
        assert got["codec"] == "h264", (kind, got)
        if kind == "video":
            assert got["size"] == (128, 80) and got["audio"] == ["aac"]  # the sound is kept
            assert got["seconds"] == pytest.approx(2.0, abs=0.2)
        if kind == "video_note":
            assert got["size"] == (96, 96) and result.video_note.length == 96
            assert got["seconds"] == pytest.approx(1.5, abs=0.2)
        if kind == "animation":
            assert got["audio"] == []
    done = t(lang, "status_done", style=WAVE[lang])
    assert len([m for m in await user.messages() if m.text == done]) == 4  # one status each


@pytest.fixture
async def slow_clip_bot(settings, stylizer_factory):
    """Progress every 0.2 s, so a test sees the clip painting without waiting long."""
    running = await start_bot(
        settings.model_copy(update={"clip_progress_every": 0.2}), stylizer_factory
    )
    try:
        yield running
    finally:
        await running.stop()


async def test_cancel_stops_a_clip_and_photos_go_on_meanwhile(
    slow_clip_bot: RunningBot, new_user, client, photos, tmp_path: Path
) -> None:
    """A 60-second clip paints for minutes on this machine: while it does, another
    user's photo is answered; then /cancel stops the clip and nothing is sent."""
    lang = "en"
    painter, other = await new_user(lang), await new_user(lang)
    long = clip_bytes(tmp_path, "long.mp4", moving_scene(60 * 24, (320, 192)), 24, audio=True)
    await painter.send_video(long, "long.mp4")
    await pick_wave(painter, lang)
    await painter.wait_for_message(painting_percent(lang), timeout=WAIT)

    await other.send_photo(photos["amber"])
    await pick_wave(other, lang)
    await other.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert not [m for m in await painter.messages() if m.video]  # still painting

    await painter.send_command("cancel")
    await painter.wait_for_message(lambda m: m.text == t(lang, "clip_stopping"), timeout=WAIT)
    await painter.wait_for_message(lambda m: m.text == t(lang, "status_cancelled"), timeout=WAIT)
    # the lane is free again: a short GIF is painted and sent
    await painter.send_animation(clip_bytes(tmp_path, "g.gif", moving_scene(6), 6), "g.gif")
    await pick_wave(painter, lang)
    await painter.wait_for_message(lambda m: m.animation, timeout=WAIT)
    assert not [m for m in await painter.messages() if m.video]


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_limits_are_answered_before_any_download(
    bot: RunningBot, new_user, client, lang: str
) -> None:
    user = await new_user(lang)
    await user.send_video(duration=90)  # the operator's cap is 60 s
    answer = await user.wait_for_message(timeout=WAIT)
    assert answer.text == t(lang, "clip_too_long", limit=60)
    await user.send_video(bytes(21 * 1024**2), "big.mp4", width=640, height=360, duration=5)
    answer = await user.wait_for_message(timeout=WAIT)
    assert answer.text == t(lang, "file_too_big", size="21.0")  # the Bot API's 20 MB
    await user.send_sticker(is_animated=True)
    answer = await user.wait_for_message(timeout=WAIT)
    assert answer.text == t(lang, "sticker_animated")
    assert not await client.calls("getFile")  # nothing was downloaded for any of them
