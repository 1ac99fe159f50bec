"""Kill the bot (SIGKILL) while jobs wait in line, start it again: each job delivered once.

The bot runs as a real process (``python -m totoshka run``) against the emulator
in the test process. One worker and a slowed-down getFile keep jobs queued; the
kill gives no chance to clean up. The queue is SQLite on disk, so the restarted
bot finds the jobs (and the dead owner's running one) and delivers each, once.
Also checked here: the token never appears in the bot's logs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bot_helpers import OUTPUT_SIZE, TOKEN, WAIT

from totoshka.bot.texts import Texts
from totoshka.emulator.server import EmulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = Texts.load()
STYLE = "Udnie"


def start_bot_process(
    emulator: EmulatorServer, tmp_path: Path, model_cache: Path, mirror: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        TOTOSHKA_BOT_TOKEN=TOKEN,
        TOTOSHKA_API_URL=emulator.url,
        TOTOSHKA_QUEUE_PATH=str(tmp_path / "jobs.sqlite3"),
        TOTOSHKA_CACHE_DIR=str(model_cache),
        TOTOSHKA_MODEL_MIRROR=str(mirror),
        TOTOSHKA_DEFAULT_OUTPUT_SIZE=str(OUTPUT_SIZE),
        TOTOSHKA_WORKERS="1",
        TOTOSHKA_MAX_PENDING="3",
        TOTOSHKA_LOG_LEVEL="DEBUG",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "totoshka", "run"],
        cwd=tmp_path,  # no stray .env
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_sigkill_with_queued_jobs_then_restart(
    emulator: EmulatorServer, client, new_user, photos, tmp_path: Path, model_cache, mirror
) -> None:
    log = tmp_path / "bot.log"
    # Each job waits 1.5 s on getFile: with one worker, the others stay queued.
    await client.inject_fault("getFile", status=None, delay=1.5, count=None)
    proc = start_bot_process(emulator, tmp_path, model_cache, mirror, log)
    try:
        users = [await new_user("en" if i % 2 else "ru", f"K{i}") for i in range(4)]
        names = ["amber", "flowers", "venice-boat", "shenyang"]
        for user, name in zip(users, names, strict=True):
            await user.send_photo(photos[name])
        for i, user in enumerate(users):
            lang = "en" if i % 2 else "ru"
            picker = await user.wait_for_message(
                lambda m, lang=lang: m.text == TEXTS.get(lang, "pick_style"), timeout=WAIT
            )
            await user.press(picker, STYLE if lang == "en" else "Удни")
        for i, user in enumerate(users):  # every job accepted (has its place in line)
            lang = "en" if i % 2 else "ru"
            title = STYLE if lang == "en" else "Удни"
            queued_or_later = {TEXTS.get(lang, "status_queued", position=p) for p in range(1, 5)}
            queued_or_later.add(TEXTS.get(lang, "status_working", style=title))
            queued_or_later.add(TEXTS.get(lang, "status_done", style=title))
            await user.wait_for_message(
                lambda m, q=queued_or_later: m.text in q or m.photo, timeout=WAIT
            )
        delivered_before = 0
        for user in users:
            delivered_before += sum(1 for m in await user.messages() if m.photo)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert delivered_before < len(users), "everything was delivered before the kill"

        await client.clear_faults()
        proc = start_bot_process(emulator, tmp_path, model_cache, mirror, log)
        for user in users:
            await user.wait_for_message(lambda m: m.photo, timeout=WAIT, new_only=False)
        await asyncio.sleep(3.0)  # time for a duplicate to show up, if there were one
        for user in users:
            results = [m for m in await user.messages() if m.photo]
            assert len(results) == 1, f"{user}: {len(results)} results"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    text = log.read_text(errors="replace")
    secret = TOKEN.split(":", 1)[1]
    assert "Start polling" in text or "polling" in text.lower()
    assert secret not in text, "the bot token leaked into the logs"


async def test_sigterm_finishes_the_running_job(
    emulator: EmulatorServer, client, new_user, photos, tmp_path: Path, model_cache, mirror
) -> None:
    """Graceful shutdown: the job being painted is finished and sent before the exit."""
    log = tmp_path / "bot.log"
    await client.inject_fault("getFile", status=None, delay=2.0, count=1)
    proc = start_bot_process(emulator, tmp_path, model_cache, mirror, log)
    try:
        user = await new_user("en")
        await user.send_photo(photos["amber"])
        picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
        await user.press(picker, STYLE)
        await user.wait_for_message(
            lambda m: m.text == TEXTS.get("en", "status_working", style=STYLE), timeout=WAIT
        )
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
        results = [m for m in await user.messages() if m.photo]
        assert len(results) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
