"""The conversation end to end, in English and in Russian, as users would have it."""

from __future__ import annotations

import pytest
from bot_helpers import WAIT, RunningBot

pytestmark = [pytest.mark.e2e]

TEXTS = {
    "en": {"hello": "Hello", "pick": "Pick a style", "done": "Done", "queued": "In line"},
    "ru": {"hello": "Привет", "pick": "Выберите стиль", "done": "Готово", "queued": "В очереди"},
}


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_photo_to_result(bot: RunningBot, new_user, client, photos, lang: str) -> None:
    user = await new_user(lang)
    await user.send_command("start")
    greeting = await user.wait_for_message(timeout=WAIT)
    assert TEXTS[lang]["hello"] in (greeting.text or "")

    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    assert TEXTS[lang]["pick"] in (picker.text or "")
    wave_title = "The Great Wave off Kanagawa" if lang == "en" else "Большая волна в Канагаве"
    await user.press(picker, wave_title)

    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert max(result.largest_photo["width"], result.largest_photo["height"]) <= 192
    labels = [b["text"] for b in result.buttons]
    assert len(labels) == 3  # another style, full resolution, weaker (already at 100 %)
    await user.wait_for_message(lambda m: TEXTS[lang]["done"] in (m.text or ""), timeout=WAIT)
    messages = await user.messages()
    statuses = [m for m in messages if m.text and TEXTS[lang]["done"] in m.text]
    assert len(statuses) == 1, [m.text for m in messages]
    assert len([m for m in messages if m.photo]) == 1
