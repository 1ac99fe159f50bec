"""Celery mode through the emulator when the job store fails: the users are told.

The bot runs in this process, in Celery mode, with its conversation state, job store
and broker all in a ``redis-server`` of the test's own, so the test can restart it
empty (no persistence). A ``totoshka worker`` process paints. Nothing asserts on
time; waits are deadlines only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from bot_helpers import TOKEN, WAIT, RunningBot, make_settings, start_bot
from own_redis import OwnRedis

from totoshka.bot.texts import Texts
from totoshka.emulator.server import EmulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = Texts.load()


@dataclass
class Deployment:
    bot: RunningBot
    redis: OwnRedis
    start_worker: Callable[[], None]


@pytest.fixture
async def deployment(
    emulator: EmulatorServer,
    tmp_path: Path,
    model_cache: Path,
    mirror: Path,
    stylizer_factory,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Deployment]:
    (tmp_path / "redis").mkdir()
    server = OwnRedis(tmp_path / "redis", persistent=False)
    monkeypatch.setenv("TOTOSHKA_JOBS_TOKEN_GRACE", "2")
    monkeypatch.setenv("TOTOSHKA_JOBS_LEASE", "4")
    settings = make_settings(
        emulator.url,
        tmp_path,
        model_cache,
        mirror,
        jobs_backend="celery",
        broker_url=server.url,
        redis_url=server.url,
        line_refresh_every=0.5,
    )
    env = {
        **os.environ,
        "TOTOSHKA_BOT_TOKEN": TOKEN,
        "TOTOSHKA_API_URL": emulator.url,
        "TOTOSHKA_BROKER_URL": server.url,
        "TOTOSHKA_REDIS_URL": server.url,
        "TOTOSHKA_MODEL_MIRROR": str(mirror),
        "TOTOSHKA_CACHE_DIR": str(model_cache),
        "TOTOSHKA_DEFAULT_OUTPUT_SIZE": str(settings.default_output_size),
        "TOTOSHKA_WORKER_WARM": "none",  # every style would take minutes on this machine
    }
    workers: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "worker.log").open("w")

    def start_worker() -> None:
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "totoshka", "worker", "--concurrency", "1"],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    running = await start_bot(settings, stylizer_factory)
    try:
        yield Deployment(running, server, start_worker)
    finally:
        await running.stop()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(worker.wait, 60)
            except subprocess.TimeoutExpired:
                worker.kill()
        log.close()
        server.stop(signal.SIGKILL)


async def test_places_refresh_and_lost_jobs_are_told(deployment: Deployment, new_user, photos):
    """No worker yet: three users' photos wait in line. One user cancels, and the
    others' places move (Celery mode refreshes them on a timer). Then Redis restarts
    empty: both waiting users are told their photo was lost. After that the bot
    answers normally, and a worker paints a new photo."""
    langs = ["en", "ru", "en"]
    users = [await new_user(lang) for lang in langs]
    statuses = []
    for user, lang in zip(users, langs, strict=True):
        await user.send_photo(photos["amber"])
        picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
        await user.press(picker, "Udnie" if lang == "en" else "Удни")
        statuses.append(
            await user.wait_for_message(
                lambda m: bool(m.text) and m.text.startswith("⏳") and "1" <= m.text[-2] <= "9",
                timeout=WAIT,
            )
        )
    first, second, third = users
    assert statuses[2].text == TEXTS.get("en", "status_queued", position=3)

    await first.send_command("cancel")
    await third.wait_for_message(
        lambda m: (
            m.message_id == statuses[2].message_id
            and m.text == TEXTS.get("en", "status_queued", position=2)
        ),
        timeout=WAIT,
    )
    await second.wait_for_message(
        lambda m: (
            m.message_id == statuses[1].message_id
            and m.text == TEXTS.get("ru", "status_queued", position=1)
        ),
        timeout=WAIT,
    )

    deployment.redis.stop(signal.SIGKILL)
    deployment.redis.start()  # empty: no persistence
    for user, status, lang in ((second, statuses[1], "ru"), (third, statuses[2], "en")):
        await user.wait_for_message(
            lambda m, s=status, lang=lang: (
                m.message_id == s.message_id and m.text == TEXTS.get(lang, "status_lost")
            ),
            timeout=WAIT,
        )

    deployment.start_worker()
    fresh = await new_user("en")
    await fresh.send_photo(photos["amber"])
    picker = await fresh.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await fresh.press(picker, "Udnie")
    result = await fresh.wait_for_message(lambda m: m.photo, timeout=WAIT * 3)
    assert result.caption == TEXTS.get("en", "result_caption", style="Udnie", strength=100)
    # the users told of a loss can simply send again: the bot is theirs as before
    await third.send_photo(photos["amber"])
    assert (await third.wait_for_message(lambda m: m.buttons, timeout=WAIT)).buttons
