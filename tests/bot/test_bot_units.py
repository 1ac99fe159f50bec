"""Small pieces of the bot that need no emulator: limits, config, log redaction.

The translations have their own tests in test_texts.py.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiogram.exceptions import TelegramRetryAfter, TelegramServerError
from aiogram.methods import SendPhoto
from aiogram.utils.backoff import BackoffConfig

from totoshka.bot.callbacks import ResultCB, StyleCB
from totoshka.bot.job import JobPayload, photo_fits
from totoshka.bot.job_handler import reason_key
from totoshka.bot.logs import install_redaction
from totoshka.bot.prefs import Prefs, next_size, next_strength
from totoshka.bot.retry import RetryPolicy
from totoshka.config import Settings
from totoshka.engine.errors import ImageError, ImageTooLargeError
from totoshka.jobs.queue import RetryLater


def test_callback_data_fits_telegram_limit() -> None:
    longest_style = "x" * 32  # catalog ids are at most 32 characters
    assert len(StyleCB(photo="deadbeef", style=longest_style).pack().encode()) <= 64
    assert len(ResultCB(action="again", ref="deadbeef").pack().encode()) <= 64


def test_photo_limits() -> None:
    assert photo_fits((1280, 960), 500_000)
    assert not photo_fits((1280, 960), 11 * 1024 * 1024)  # over 10 MB
    assert not photo_fits((6000, 4001), 1000)  # width + height over 10000
    assert not photo_fits((2100, 100), 1000)  # ratio 21 > 20
    assert photo_fits((2000, 100), 1000)  # ratio exactly 20


def test_errors_are_explained_by_code() -> None:
    assert reason_key(ImageError("x")) == "err_bad_image"
    assert reason_key(ImageTooLargeError("x")) == "err_image_too_large"
    assert reason_key(RuntimeError("boom")) == "err_generic"


def test_payload_round_trips_as_json() -> None:
    import json

    job = JobPayload(chat_id=1, user_id=1, lang="ru", photo="AgAD", status_message_id=5)
    again = JobPayload.model_validate(json.loads(json.dumps(job.model_dump())))
    assert again == job


def test_prefs_cycle_and_recent_paintings() -> None:
    assert next_size(1024, 1280) == 1280 and next_size(2048, 1280) == 0
    assert next_size(0, 1280) == 1024
    assert next_strength(100) == 25 and next_strength(50) == 75
    prefs = Prefs()
    for i in range(6):
        prefs.add_painting(f"file{i}")
    assert [p.file_id for p in prefs.paintings] == ["file5", "file4", "file3", "file2"]
    prefs.add_painting("file3")
    assert prefs.paintings[0].file_id == "file3" and len(prefs.paintings) == 4
    assert Prefs.model_validate(prefs.model_dump()) == prefs


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TOTOSHKA_BOT_TOKEN=1:from-dotenv\nTOTOSHKA_MAX_PENDING=7\n")
    monkeypatch.setenv("TOTOSHKA_API_URL", "http://127.0.0.1:8081/")
    settings = Settings()
    assert settings.token() == "1:from-dotenv"
    assert settings.api_url == "http://127.0.0.1:8081"
    assert settings.max_pending == 7
    assert settings.jobs_backend == "embedded"
    assert "from-dotenv" not in repr(settings)
    monkeypatch.setenv("TOTOSHKA_BOT_TOKEN", "not-a-token")
    with pytest.raises(ValueError) as info:
        Settings()
    assert "not-a-token" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_output_size", 5001),  # sendPhoto: width + height at most 10000
        ("full_output_cap", 16385),  # a JPEG document; 16384 is already 1 GB to paint
        ("full_output_cap", 255),
        ("preview_size", 1281),
    ],
)
def test_size_settings_are_bounded(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(_env_file=None, bot_token="1:a", **{field: value})  # type: ignore[call-arg]


def test_token_is_redacted_from_every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    token = "123456:AAH-very-secret-part"
    old = logging.getLogRecordFactory()
    try:
        install_redaction(token)
        log = logging.getLogger("aiogram.test")
        with caplog.at_level(logging.INFO):
            log.info("GET https://api.telegram.org/bot%s/getMe", token)
            try:
                raise ConnectionError(f"cannot reach /bot{token}/getUpdates")
            except ConnectionError:
                log.exception("polling failed")
        text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
        assert "very-secret-part" not in text
        assert "<token>" in text
    finally:
        logging.setLogRecordFactory(old)


async def test_telegram_call_waits_retry_after_then_succeeds() -> None:
    calls = []
    method = SendPhoto(chat_id=1, photo="x")

    async def flaky() -> str:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise TelegramRetryAfter(method=method, message="Too Many Requests", retry_after=1)
        if len(calls) == 2:
            raise TelegramServerError(method=method, message="Bad Gateway")
        return "sent"

    policy = RetryPolicy(retries=5, backoff=BackoffConfig(0.01, 0.1, 2.0, 0.0))
    assert await policy.call("test", flaky) == "sent"
    assert calls[1] - calls[0] >= 0.95  # retry_after honoured


async def test_long_flood_wait_gives_the_slot_back() -> None:
    method = SendPhoto(chat_id=1, photo="x")

    async def flooded() -> None:
        raise TelegramRetryAfter(method=method, message="Too Many Requests", retry_after=120)

    with pytest.raises(RetryLater) as info:
        await RetryPolicy(retries=5).call("test", flooded)
    assert info.value.delay == 120


def test_run_with_a_bad_token_says_so_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "TOTOSHKA_BOT_TOKEN": "garbage-secret-value"}
    done = subprocess.run(
        [sys.executable, "-m", "totoshka", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "TOTOSHKA_BOT_TOKEN" in output and "Traceback" not in output
    assert "garbage-secret-value" not in output
