"""The bot says what serves before its first job (issue 10): one line, such as
``inference: openvino-bf16 (AMX), ml5 0.52 s at 1280x960``, and no warning when
the path is the one this machine supports; the job that follows is delivered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest
from bot_helpers import WAIT, RunningBot, SharedStylizer

from totoshka.bot.app import BotApp
from totoshka.config import Settings
from totoshka.engine.backends import expected_path

pytestmark = [pytest.mark.e2e]


async def test_the_bot_prints_its_inference_line_and_then_paints(
    settings: Settings,
    stylizer_factory: SharedStylizer,
    new_user,
    photos,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines: list[str] = []
    app = BotApp(settings, stylizer_factory=stylizer_factory, announce=lines.append)
    await app.bot.delete_webhook()
    task = asyncio.create_task(
        app.dispatcher.start_polling(
            app.bot, handle_signals=False, close_bot_session=False, polling_timeout=1
        )
    )
    running = RunningBot(app, task)
    try:
        with caplog.at_level(logging.WARNING):
            user = await new_user("en")
            await user.send_photo(photos["amber"])
            picker = await user.wait_for_message(lambda m: bool(m.buttons), timeout=WAIT)
            await user.press(picker, "The Great Wave off Kanagawa")
            result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
        assert result.largest_photo is not None
    finally:
        with contextlib.suppress(Exception):
            await running.stop()
    assert len(lines) == 1, lines
    pattern = rf"inference: {re.escape(expected_path())} \(.+\), ml5 \d+\.\d\d s at 1280x960"
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert "falls back" not in caplog.text and "not used for" not in caplog.text
