"""The conversation end to end, in English and in Russian, as users would have it.

Every test drives the real bot (long polling over HTTP) through the emulator with
the real ml5 checkpoints; pictures are small so CPU inference takes moments.
"""

from __future__ import annotations

import asyncio
import io

import ftl_source as ftl
import pytest
from bot_helpers import WAIT, RunningBot, jpeg
from PIL import Image

from totoshka.bot.prefs import PrefsStore
from totoshka.bot.texts import Texts

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()
LANGS = ["en", "ru"]
WAVE = {"en": "The Great Wave off Kanagawa", "ru": "Большая волна в Канагаве"}
UDNIE = {"en": "Udnie", "ru": "Удни"}


def t(lang: str, key: str, **params: object) -> str:
    return TEXTS.get(lang, key, **params)


def head(lang: str, key: str) -> str:
    """A template's text before its first placeholder: enough to recognise it."""
    return ftl.source_text(lang, key).split("{")[0]


def label(lang: str, key: str, **params: object) -> str:
    return t(lang, key, **params)


async def photo_and_picker(user, photo: bytes, lang: str):
    await user.send_photo(photo)
    return await user.wait_for_message(
        lambda m: m.buttons and m.text == t(lang, "pick_style"), timeout=WAIT
    )


async def wait_done(user, lang: str, style: str):
    return await user.wait_for_message(
        lambda m: m.text == t(lang, "status_done", style=style), timeout=WAIT
    )


@pytest.mark.parametrize("lang", LANGS)
async def test_photo_to_result(bot: RunningBot, new_user, client, photos, lang: str) -> None:
    user = await new_user(lang)
    await user.send_command("start")
    greeting = await user.wait_for_message(timeout=WAIT)
    assert greeting.text == t(lang, "start", name="Ann")

    picker = await photo_and_picker(user, photos["amber"], lang)
    titles = [b.text for b in picker.buttons]
    assert WAVE[lang] in titles
    assert t(lang, "btn_own_style") in titles and t(lang, "btn_gallery") in titles
    await user.press(picker, WAVE[lang])

    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert max(result.largest_photo.width, result.largest_photo.height) <= 192
    assert result.caption == t(lang, "result_caption", style=WAVE[lang], strength=100)
    labels = [b.text for b in result.buttons]
    assert labels == [t(lang, "btn_another_style"), t(lang, "btn_full"), t(lang, "btn_weaker")]
    await wait_done(user, lang, WAVE[lang])
    messages = await user.messages()
    statuses = [m for m in messages if m.text == t(lang, "status_done", style=WAVE[lang])]
    assert len(statuses) == 1, [m.text for m in messages]
    assert len([m for m in messages if m.photo]) == 1
    # The one status message went accepted -> place in line -> working -> done.
    texts = [h.text for h in statuses[0].history]
    assert texts[0] == t(lang, "status_accepted")
    assert t(lang, "status_working", style=WAVE[lang]) in texts


@pytest.mark.parametrize("lang", LANGS)
async def test_help_and_command_menu(bot: RunningBot, new_user, client, lang: str) -> None:
    user = await new_user(lang)
    await user.send_command("help")
    answer = await user.wait_for_message(timeout=WAIT)
    assert answer.text == t(lang, "help", seconds=60)
    info = await client.bot_info()
    commands = info["commands"]
    flat = str(commands)
    assert t(lang, "cmd_styles") in flat and t(lang, "cmd_cancel") in flat


@pytest.mark.parametrize("lang", LANGS)
async def test_result_buttons(bot: RunningBot, new_user, client, photos, lang: str) -> None:
    """Another style (no re-upload), full-resolution file, weaker — all from one photo."""
    user = await new_user(lang)
    picker = await photo_and_picker(user, photos["flowers"], lang)
    await user.press(picker, UDNIE[lang])
    first = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    await wait_done(user, lang, UDNIE[lang])

    await user.press(first, t(lang, "btn_weaker"))
    weaker = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert weaker.caption == t(lang, "result_caption", style=UDNIE[lang], strength=75)
    assert t(lang, "btn_stronger") in [b.text for b in weaker.buttons]
    await wait_done(user, lang, UDNIE[lang])

    await user.press(first, t(lang, "btn_full"))
    full = await user.wait_for_message(lambda m: m.document, timeout=WAIT)
    data = await client.download(full.document.file_id)
    image = Image.open(io.BytesIO(data))
    # "Full" = the photo's own size (240 px here), above the 192 px default.
    assert max(image.size) == 240
    await wait_done(user, lang, UDNIE[lang])

    await user.press(first, t(lang, "btn_another_style"))
    picker2 = await user.wait_for_message(lambda m: m.text == t(lang, "pick_style"), timeout=WAIT)
    await user.press(picker2, WAVE[lang])
    other = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert other.caption == t(lang, "result_caption", style=WAVE[lang], strength=100)
    uploads = [m for m in await user.messages(from_bot=False) if m.photo]
    assert len(uploads) == 1  # the user sent the photo once


@pytest.mark.parametrize("lang", LANGS)
async def test_image_as_document_and_panorama_falls_back_to_document(
    bot: RunningBot, new_user, photos, lang: str
) -> None:
    user = await new_user(lang)
    await user.send_document(photos["venice-boat"], "boat.jpg", "image/jpeg")
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, WAVE[lang])
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert result.photo

    # 21:1 is over Telegram's 20:1 photo ratio: the result must come as a file.
    strip = Image.new("RGB", (420, 20), (200, 120, 40))
    await user.send_document(jpeg(strip), "strip.jpg", "image/jpeg")
    picker = await user.wait_for_message(lambda m: m.buttons and m.text, timeout=WAIT)
    await user.press(picker, WAVE[lang])
    result = await user.wait_for_message(lambda m: m.document, timeout=WAIT)
    assert result.document.file_name.endswith(".jpg")


@pytest.mark.parametrize("lang", LANGS)
async def test_everything_else_gets_an_answer(bot: RunningBot, new_user, lang: str) -> None:
    user = await new_user(lang)
    await user.send_text("hello there")
    assert (await user.wait_for_message(timeout=WAIT)).text == t(lang, "text_fallback")
    await user.send_voice()
    assert (await user.wait_for_message(timeout=WAIT)).text == t(lang, "voice_fallback")
    await user.send_document(b"%PDF-1.4 not a picture", "paper.pdf", "application/pdf")
    assert (await user.wait_for_message(timeout=WAIT)).text == t(lang, "not_an_image")
    # Over the Bot API's 20 MB download limit: refused before any getFile.
    big = b"\xff\xd8\xff" + bytes(21 * 1024 * 1024)
    await user.send_document(big, "huge.jpg", "image/jpeg")
    answer = await user.wait_for_message(timeout=WAIT)
    assert answer.text == t(lang, "file_too_big", size="21.0")
    # A broken "image": accepted by type, then a clear apology from the worker.
    await user.send_document(b"\xff\xd8\xff\xe0 broken", "broken.jpg", "image/jpeg")
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, WAVE[lang])
    apology = await user.wait_for_message(
        lambda m: m.text == t(lang, "status_failed", reason=t(lang, "err_bad_image")),
        timeout=WAIT,
    )
    assert apology


@pytest.mark.parametrize("lang", LANGS)
async def test_settings(bot: RunningBot, new_user, photos, lang: str) -> None:
    user = await new_user(lang)
    await user.send_command("settings")
    panel = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    assert panel.text.startswith(
        t(lang, "settings", size="", strength=0, colors="", language="")[:8]
    )
    labels = [b.text for b in panel.buttons]
    assert labels[1] == t(lang, "btn_strength", strength=100)
    await user.press(panel, labels[1])  # strength 100 -> 25
    panel = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    assert t(lang, "btn_strength", strength=25) in [b.text for b in panel.buttons]
    await user.press(panel, t(lang, "btn_colors_off"))
    panel = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    assert t(lang, "btn_colors_on") in [b.text for b in panel.buttons]

    picker = await photo_and_picker(user, photos["amber"], lang)
    await user.press(picker, WAVE[lang])
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert result.caption == t(lang, "result_caption", style=WAVE[lang], strength=25)

    # Switching the language turns the whole conversation.
    await user.send_command("settings")
    panel = await user.wait_for_message(lambda m: m.buttons and m.text, timeout=WAIT)
    await user.press(panel, t(lang, "btn_language"))
    other = "ru" if lang == "en" else "en"
    await user.wait_for_message(lambda m: (m.text or "").startswith(t(other, "settings")[:5]))
    await user.send_command("help")
    help_text = t(other, "help", seconds=60)
    assert (await user.wait_for_message(lambda m: m.text == help_text, timeout=WAIT)).text


@pytest.mark.parametrize("lang", LANGS)
async def test_own_style_painting_then_reuse(
    bot: RunningBot, new_user, photos, painting, lang: str
) -> None:
    user = await new_user(lang)
    picker = await photo_and_picker(user, photos["amber"], lang)
    await user.press(picker, t(lang, "btn_own_style"))
    prompt = await user.wait_for_message(timeout=WAIT)
    assert prompt.text == t(lang, "send_painting_plain")
    await user.send_photo(painting)
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    own = t(lang, "own_style_title")
    assert result.caption == t(lang, "result_caption", style=own, strength=100)
    await wait_done(user, lang, own)
    # The painting's style vector is kept for reuse (computed once, by the worker).
    prefs = await PrefsStore(bot.app.storage, bot.app.bot.id).load(user.chat_id, user.id)
    assert len(prefs.paintings) == 1 and len(prefs.paintings[0].vector or []) == 100

    # Next photo: the recent painting is offered; no need to send it again.
    picker = await photo_and_picker(user, photos["flowers"], lang)
    await user.press(picker, t(lang, "btn_own_style"))
    prompt = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    assert prompt.text == t(lang, "send_painting")
    await user.press(prompt, t(lang, "btn_painting", n=1))
    again = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert again.caption == t(lang, "result_caption", style=own, strength=100)


@pytest.mark.parametrize("lang", LANGS)
async def test_album_of_photo_and_painting(
    bot: RunningBot, new_user, photos, painting, lang: str
) -> None:
    user = await new_user(lang)
    await user.send_album([photos["shenyang"], painting])
    note = await user.wait_for_message(timeout=WAIT)
    assert note.text == t(lang, "album_own_style")
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    own = t(lang, "own_style_title")
    assert result.caption == t(lang, "result_caption", style=own, strength=100)
    await wait_done(user, lang, own)
    photos_sent = [m for m in await user.messages() if m.photo]
    assert len(photos_sent) == 1


@pytest.mark.parametrize("lang", LANGS)
async def test_gallery(bot: RunningBot, new_user, lang: str) -> None:
    user = await new_user(lang)
    await user.send_command("styles")
    await user.wait_for_message(lambda m: m.text == t(lang, "gallery_intro"), timeout=WAIT)
    first = await user.wait_for_message(lambda m: m.photo, timeout=300)
    assert first.media_group_id
    await asyncio.sleep(0.5)
    previews = [m for m in await user.messages() if m.photo]
    captions = {m.caption for m in previews}
    assert WAVE[lang] in captions and UDNIE[lang] in captions
    # Every style the picker offers has a preview.
    offered = {titles.get(lang) for _, titles in bot.app.services.styles}
    assert captions == offered


@pytest.mark.parametrize("lang", LANGS)
async def test_cancel(one_worker_bot: RunningBot, new_user, client, photos, lang: str) -> None:
    """Queued work is cancelled, the status says so, and the conversation resets."""
    user = await new_user(lang)
    # Every getFile takes 5 s and one job runs at a time: the others stay queued.
    await client.inject_fault("getFile", status=None, delay=5.0, count=None)
    picker = await photo_and_picker(user, photos["amber"], lang)
    for _ in range(3):
        await user.press(picker, WAVE[lang])
    await user.wait_for_message(
        lambda m: m.text == t(lang, "status_queued", position=2), timeout=WAIT
    )
    # the worker has taken the first job (it waits in getFile) before /cancel comes
    await user.wait_for_message(
        lambda m: (m.text or "").startswith(head(lang, "status_working")),
        timeout=WAIT,
        new_only=False,
    )
    await user.send_command("cancel")
    answer = await user.wait_for_message(
        lambda m: (m.text or "").startswith(head(lang, "cancelled")), timeout=WAIT
    )
    # Normally both waiting jobs; on a very loaded machine one may have started.
    counts = [n for n in (1, 2) if answer.text == t(lang, "cancelled", count=n)]
    assert counts, f"unexpected answer to /cancel: {answer.text!r}"
    n = counts[0]
    await user.wait_for_message(lambda m: m.photo, timeout=WAIT)  # the running one finishes
    await asyncio.sleep(0.5)
    messages = await user.messages()
    cancelled = [m for m in messages if m.text == t(lang, "status_cancelled")]
    results = [m for m in messages if m.photo]
    assert len(cancelled) == n
    if n == 1:
        await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
        results = [m for m in await user.messages() if m.photo]
    assert len(results) == 3 - n
    await client.clear_faults()
    # The conversation is reset: old picker buttons now ask for the photo again.
    query = await user.press(picker, WAVE[lang])
    await asyncio.sleep(0.5)
    assert (await client.callback_answer(query))["text"] == t(lang, "photo_expired")


@pytest.mark.parametrize("lang", LANGS)
async def test_pending_limit(
    one_worker_bot: RunningBot, new_user, client, photos, lang: str
) -> None:
    user = await new_user(lang)
    await client.inject_fault("getFile", status=None, delay=3.0, count=1)
    picker = await photo_and_picker(user, photos["amber"], lang)
    for _ in range(4):
        await user.press(picker, WAVE[lang])
    refusal = await user.wait_for_message(
        lambda m: m.text == t(lang, "too_many_pending", limit=3), timeout=WAIT
    )
    assert refusal


@pytest.mark.parametrize("lang", LANGS)
async def test_album_of_three_takes_the_first(bot: RunningBot, new_user, photos, lang: str) -> None:
    user = await new_user(lang)
    await user.send_album([photos["amber"], photos["flowers"], photos["shenyang"]])
    note = await user.wait_for_message(timeout=WAIT)
    assert note.text == t(lang, "album_first_only")
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    assert picker.text == t(lang, "pick_style")
    await asyncio.sleep(1.0)
    pickers = [m for m in await user.messages() if m.text == t(lang, "pick_style")]
    assert len(pickers) == 1  # one answer for the whole album
