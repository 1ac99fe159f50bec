"""Scale-out mode: the bot queues through Celery, a ``totoshka worker`` process paints.

The same delivery runs on the worker, unchanged: it fetches the photo through the
Bot API (the emulator) and sends the result itself. Conversation state and
preferences are in Redis (``TOTOSHKA_REDIS_URL``), so the worker can store a
painting's style vector where the bot will find it. Needs Redis (CI starts it);
fails loudly, never skips, when it is down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from bot_helpers import TOKEN, WAIT, RunningBot, make_settings, start_bot
from video_clips import moving_scene, write_clip

from totoshka.bot.prefs import PrefsStore
from totoshka.bot.texts import Texts
from totoshka.emulator.server import EmulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = Texts.load()
REDIS_URL = os.environ.get("TOTOSHKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
async def celery_bot(
    emulator: EmulatorServer,
    tmp_path: Path,
    model_cache: Path,
    mirror: Path,
    stylizer_factory,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningBot]:
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()  # loud if down
    tag = uuid.uuid4().hex[:8]
    shared_env = {
        "TOTOSHKA_JOBS_PREFIX": f"totoshka-test:{tag}:jobs",
        "TOTOSHKA_JOBS_QUEUE": f"totoshka-test-{tag}",
        "TOTOSHKA_REDIS_PREFIX": f"totoshka-test:{tag}:fsm",
    }
    for key, value in shared_env.items():
        monkeypatch.setenv(key, value)
    settings = make_settings(
        emulator.url,
        tmp_path,
        model_cache,
        mirror,
        jobs_backend="celery",
        broker_url=REDIS_URL,
        redis_url=REDIS_URL,
        redis_prefix=shared_env["TOTOSHKA_REDIS_PREFIX"],
    )
    env = {
        **os.environ,
        **shared_env,
        "TOTOSHKA_BOT_TOKEN": TOKEN,
        "TOTOSHKA_API_URL": emulator.url,
        "TOTOSHKA_BROKER_URL": REDIS_URL,
        "TOTOSHKA_REDIS_URL": REDIS_URL,
        "TOTOSHKA_MODEL_MIRROR": str(mirror),
        "TOTOSHKA_CACHE_DIR": str(model_cache),
        "TOTOSHKA_DEFAULT_OUTPUT_SIZE": str(settings.default_output_size),
        # warms Udnie before it takes jobs (all styles, the default, is minutes here)
        "TOTOSHKA_WORKER_WARM": "udnie",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "totoshka", "worker", "--concurrency", "1"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = await start_bot(settings, stylizer_factory)
    try:
        yield running
    finally:
        await running.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(worker.wait, 60)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        text = (tmp_path / "worker.log").read_text(errors="replace")
        assert TOKEN.split(":", 1)[1] not in text, "the token leaked into the worker's log"
        warmed = "warm-up 1/1: udnie ready in"
        assert warmed in text, text[-3000:]
        assert text.index(warmed) < text.index(" ready."), "it took jobs before its warm-up"
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"totoshka-test:{tag}*"):
            client.delete(key)
        client.delete(shared_env["TOTOSHKA_JOBS_QUEUE"])
        client.delete(shared_env["TOTOSHKA_JOBS_QUEUE"] + "-clips")


async def test_celery_worker_paints_and_delivers(
    celery_bot: RunningBot, new_user, photos, painting, tmp_path: Path
) -> None:
    user = await new_user("ru")
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, "Удни")
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT * 2)
    assert result.caption == TEXTS.get("ru", "result_caption", style="Удни", strength=100)
    await user.wait_for_message(
        lambda m: m.text == TEXTS.get("ru", "status_done", style="Удни"), timeout=WAIT
    )

    # Own style: the worker computes the painting's vector and stores it in Redis.
    await user.press(result, TEXTS.get("ru", "btn_another_style"))
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, TEXTS.get("ru", "btn_own_style"))
    await user.wait_for_message(timeout=WAIT)
    await user.send_photo(painting)
    own = await user.wait_for_message(lambda m: m.photo, timeout=WAIT * 2)
    assert own.caption.startswith("«" + TEXTS.get("ru", "own_style_title"))
    app = celery_bot.app
    prefs = await PrefsStore(app.storage, app.bot.id).load(user.chat_id, user.id)
    assert prefs.paintings and prefs.paintings[0].vector is not None
    assert len(prefs.paintings[0].vector) == 100
    assert len([m for m in await user.messages() if m.photo]) == 2

    # A GIF goes through the clips' lane (its own broker queue) and comes back as one.
    gif = write_clip(tmp_path / "in.gif", moving_scene(6), 6).read_bytes()
    await user.send_animation(gif, "in.gif")
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, "Удни")
    animation = await user.wait_for_message(lambda m: m.animation, timeout=WAIT * 2)
    assert animation.animation.width == 96
