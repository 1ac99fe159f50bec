"""The operator's view (issue 15): /metrics, /healthz, /readyz and JSON logs.

The real bot runs against the emulator; a user sends a photo and picks a style,
then the test scrapes ``/metrics`` over HTTP (parsed by prometheus_client's own
parser) and checks that the figures are what happened: one job queued, run once
and done, one sample in each stage's latency histogram, the queue empty again.
``/readyz`` is checked where it can be made to fail honestly: a Celery-mode bot
whose broker or Redis is a port nobody listens on. JSON logs are checked on a real
``totoshka run`` process: every line parses, the job's lines carry its id and its
user's, and the token is nowhere.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from bot_helpers import (
    OUTPUT_SIZE,
    TOKEN,
    WAIT,
    SharedStylizer,
    free_port,
    http_get,
    make_settings,
    metric,
    parse_metrics,
    scrape_until,
    start_bot,
    wait_for_http,
    wait_until_ready,
)

from totoshka.bot.logs import JsonFormatter, install_redaction
from totoshka.bot.texts import Texts
from totoshka.emulator.server import EmulatorServer
from totoshka.observability import JOB_ID

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()
SECRET = TOKEN.split(":", 1)[1]
REDIS_URL = os.environ.get("TOTOSHKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
STAGES = ("wait", "fetch", "paint", "encode", "send")


async def paint_one(new_user, photo: bytes, lang: str = "en", style: str = "Udnie"):
    """/start, a photo, a style: the result and the "done" status, as a user sees them."""
    user = await new_user(lang)
    await user.send_command("start")
    await user.wait_for_message(timeout=WAIT)
    await user.send_photo(photo)
    picker = await user.wait_for_message(lambda m: bool(m.buttons), timeout=WAIT)
    await user.press(picker, style)
    await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    done = TEXTS.get(lang, "status_done", style=style)
    await user.wait_for_message(lambda m: m.text == done, timeout=WAIT)
    return user


def one_job_done(samples) -> bool:
    return (
        metric(samples, "totoshka_jobs_done_total", lane="photos") == 1
        and (metric(samples, "totoshka_updates_total", type="callback_query", outcome="ok") or 0)
        >= 1
    )


async def test_metrics_show_what_happened(
    emulator: EmulatorServer,
    new_user,
    photos,
    tmp_path: Path,
    model_cache,
    mirror,
    stylizer_factory: SharedStylizer,
) -> None:
    port = free_port()
    settings = make_settings(emulator.url, tmp_path, model_cache, mirror, metrics_port=port)
    base = f"http://127.0.0.1:{port}"
    running = await start_bot(settings, stylizer_factory)
    try:
        status, body = await wait_for_http(f"{base}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        answers = await wait_until_ready(base)
        assert answers[-1] == {"status_code": 200, "status": "ready"}, answers
        for early in answers[:-1]:  # caught before the warm-up had run, if at all
            assert early["status_code"] == 503 and early["reasons"] == ["models: warming up"]

        await paint_one(new_user, photos["amber"])
        text, samples = await scrape_until(base, one_job_done)
    finally:
        await running.stop()

    def value(name: str, **labels: str) -> float | None:
        return metric(samples, name, **labels)

    assert value("totoshka_jobs_queued_total", lane="photos") == 1
    assert value("totoshka_job_attempts_total", lane="photos") == 1
    assert value("totoshka_jobs_done_total", lane="photos") == 1
    assert value("totoshka_jobs_failed_total", lane="photos") == 0
    assert value("totoshka_jobs_running", lane="photos") == 0
    assert value("totoshka_jobs_queued_total", lane="clips") == 0
    assert value("totoshka_results_total", kind="photo", outcome="sent") == 1
    for stage in STAGES:
        assert value("totoshka_job_stage_seconds_count", stage=stage) == 1, stage
    assert (value("totoshka_job_stage_seconds_sum", stage="paint") or 0) > 0
    # /start and the photo are messages, the style button a callback query; none failed
    assert (value("totoshka_updates_total", type="message", outcome="ok") or 0) >= 2
    assert (value("totoshka_updates_total", type="callback_query", outcome="ok") or 0) >= 1
    errors = [
        k for k in samples if k[0] == "totoshka_updates_total" and ("outcome", "error") in k[1]
    ]
    assert errors == []
    for lane in ("photos", "clips"):
        assert value("totoshka_queue_up", lane=lane) == 1
        assert value("totoshka_queue_depth", lane=lane) == 0
        assert value("totoshka_queue_jobs", lane=lane, state="running") == 0
    assert value("totoshka_queue_jobs", lane="photos", state="done") == 1
    assert SECRET not in text and "424242" not in text


@pytest.mark.parametrize("down", [None, "broker", "redis"])
async def test_readyz_names_what_is_unreachable(
    emulator: EmulatorServer,
    tmp_path: Path,
    model_cache,
    mirror,
    stylizer_factory: SharedStylizer,
    down: str | None,
) -> None:
    """A Celery-mode bot paints nothing itself: ready = its Redis and broker answer."""
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()  # loud if down
    dead = free_port()  # nothing listens there
    broker, store = REDIS_URL, REDIS_URL
    if down == "broker":
        broker = f"amqp://guest:guest@127.0.0.1:{dead}//"
    elif down == "redis":
        broker = store = f"redis://127.0.0.1:{dead}/0"
    port = free_port()
    settings = make_settings(
        emulator.url,
        tmp_path,
        model_cache,
        mirror,
        jobs_backend="celery",
        broker_url=broker,
        redis_url=store,
        metrics_port=port,
    )
    base = f"http://127.0.0.1:{port}"
    running = await start_bot(settings, stylizer_factory)
    try:
        status, body = await wait_for_http(f"{base}/readyz")
        answer = json.loads(body)
        _, text = await http_get(f"{base}/metrics")
        healthz, _ = await http_get(f"{base}/healthz")
    finally:
        await running.stop()
    samples = parse_metrics(text)
    assert healthz == 200  # alive either way: a restart would not bring Redis back
    if down is None:
        assert (status, answer) == (200, {"status": "ready"})
        assert metric(samples, "totoshka_queue_up", lane="photos") == 1
        return
    assert status == 503 and answer["status"] == "not ready"
    lanes = ("photos", "clips")
    if down == "broker":
        expected = [f"{lane} queue: broker unreachable (OperationalError)" for lane in lanes]
    else:
        expected = [f"{lane} queue: job store unreachable (ConnectionError)" for lane in lanes]
        expected.append("state storage: unreachable (ConnectionError)")
        assert metric(samples, "totoshka_queue_up", lane="photos") == 0
        assert metric(samples, "totoshka_queue_depth", lane="photos") is None
    assert answer["reasons"] == expected
    assert str(dead) not in body and "guest" not in body  # no URL, no password


def test_json_lines_carry_the_job_and_no_token() -> None:
    """The formatter's own lines: a token in the message, its arguments and a
    traceback comes out redacted; the job id comes from the context or ``extra``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(TOKEN))
    log = logging.getLogger("totoshka.test.json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    old = logging.getLogRecordFactory()
    try:
        install_redaction(TOKEN)
        token = JOB_ID.set("job-1")
        try:
            log.info("GET /bot%s/getMe", TOKEN)
            try:
                raise ConnectionError(f"cannot reach /bot{TOKEN}/getUpdates")
            except ConnectionError:
                log.exception("polling failed")
        finally:
            JOB_ID.reset(token)
        log.warning("quoted %s", TOKEN.replace(":", "%3A"), extra={"user_id": 7})
    finally:
        logging.setLogRecordFactory(old)
        log.removeHandler(handler)
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["level"] for line in lines] == ["INFO", "ERROR", "WARNING"]
    assert lines[0]["message"] == "GET /bot<token>/getMe"
    assert lines[0]["logger"] == "totoshka.test.json" and lines[0]["time"].endswith("+00:00")
    assert lines[0]["job_id"] == "job-1" and "user_id" not in lines[0]
    assert "ConnectionError" in lines[1]["exc"] and "<token>" in lines[1]["exc"]
    assert lines[2]["user_id"] == "7" and "job_id" not in lines[2]
    assert SECRET not in text


async def test_json_logs_and_metrics_of_a_real_process(
    emulator: EmulatorServer, new_user, photos, tmp_path: Path, model_cache, mirror
) -> None:
    """``totoshka run`` with TOTOSHKA_LOG_FORMAT=json and TOTOSHKA_METRICS_PORT."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        TOTOSHKA_BOT_TOKEN=TOKEN,
        TOTOSHKA_API_URL=emulator.url,
        TOTOSHKA_QUEUE_PATH=str(tmp_path / "jobs.sqlite3"),
        TOTOSHKA_CACHE_DIR=str(model_cache),
        TOTOSHKA_MODEL_MIRROR=str(mirror),
        TOTOSHKA_DEFAULT_OUTPUT_SIZE=str(OUTPUT_SIZE),
        TOTOSHKA_WORKERS="1",
        TOTOSHKA_LOG_FORMAT="json",
        TOTOSHKA_METRICS_PORT=str(port),
    )
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "totoshka", "run"],
            cwd=tmp_path,  # no stray .env
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        answers = await wait_until_ready(base)
        assert answers[-1]["status_code"] == 200, answers
        user = await paint_one(new_user, photos["amber"])
        _, samples = await scrape_until(base, one_job_done)
        assert metric(samples, "totoshka_jobs_done_total", lane="photos") == 1
        assert metric(samples, "totoshka_job_stage_seconds_count", stage="paint") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log_path.read_text(errors="replace")
    assert SECRET not in text, "the bot token leaked into the logs"
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every one
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    assert any(line["message"].startswith("inference: ") for line in lines)
    timing = [line for line in lines if ": fetch+decode " in line["message"]]
    assert len(timing) == 1, timing
    assert timing[0]["user_id"] == str(user.id)
    assert timing[0]["message"].startswith(f"job {timing[0]['job_id']}: ")
