"""Hostile files through the bot (issue 16): a file that can never decode gets one
clear message and is not retried (one getFile); one that the old decoder choked on
(a TIFF with a numeric ICC tag) now comes back painted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bot_helpers import WAIT, RunningBot

from totoshka.bot.texts import Texts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
import hostile_files as hf

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()
WAVE = "The Great Wave off Kanagawa"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("scans.jpg", hf.progressive_jpeg_repeated_scan),
        ("claims.jpg", hf.jpeg_claiming_bigger),
    ],
)
async def test_a_file_that_cannot_decode_is_answered_once(
    bot: RunningBot, new_user, client, name: str, make
) -> None:
    user = await new_user("en")
    await user.send_document(make(), name, "image/jpeg")
    picker = await user.wait_for_message(lambda m: bool(m.buttons), timeout=WAIT)
    before = len(await client.calls("getFile"))
    await user.press(picker, WAVE)
    failed = TEXTS.get("en", "status_failed", reason=TEXTS.get("en", "err_bad_image"))
    await user.wait_for_message(lambda m: m.text == failed, timeout=WAIT)
    assert len(await client.calls("getFile")) == before + 1, "the job was retried"
    messages = await user.messages()
    assert [m.text for m in messages].count(failed) == 1
    assert not [m for m in messages if m.photo]


async def test_a_tiff_with_a_numeric_icc_tag_is_painted(bot: RunningBot, new_user) -> None:
    user = await new_user("en")
    await user.send_document(hf.tiff_with_integer_icc(2**64 - 1), "odd.tif", "image/tiff")
    picker = await user.wait_for_message(lambda m: bool(m.buttons), timeout=WAIT)
    await user.press(picker, WAVE)
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert result.largest_photo is not None
