"""Two webhook replicas behind a balancer; one is SIGKILLed mid-burst: no photo is lost.

Two real ``python -m totoshka webhook`` processes share the conversation state (Redis,
a prefix of this test's own) and the job queue (one SQLite file: a restarted replica
takes back its dead predecessor's running job). The emulator's webhook points at a
round-robin HTTP proxy run by the test, which answers 502 when a replica refuses the
connection or drops it mid-request, as a load balancer does.

What is guaranteed, and asserted:

* at-least-once delivery: a replica answers 200 only after handling the update
  (`totoshka.bot.webhook`), and the emulator, like Telegram, sends an update again
  until some replica answers 2xx. So a press being handled by the replica that dies
  is handled again by the survivor, and every photo comes back painted, to its user;
* exactly one painting per photo: a press delivered twice is queued once, under its
  dedupe key ``cb:<callback query id>``; a job's visible steps are checkpointed, and
  the kill lands while jobs wait on getFile (held back here), before anything is
  sent. (A kill between a result's sendPhoto and its checkpoint could still send it
  twice; the queue's at-least-once execution, not this test's subject.)

Not guaranteed: the dying replica's half-done press leaves its "accepted" status line
behind (the survivor sends its own), and a photo delivered twice would show its
picker twice (none is, here: the kill comes after the pickers).

Without the handle-then-answer change (aiogram's default of answering first) this test
fails: the killed replica had acknowledged its presses, so their jobs were never queued.
Also here: an album over the webhook is still one album (the exception to the rule).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from bot_helpers import (
    OUTPUT_SIZE,
    TOKEN,
    WAIT,
    SharedStylizer,
    free_port,
    make_settings,
    wait_until_ready,
)

from totoshka.bot.app import BotApp
from totoshka.bot.texts import Texts
from totoshka.emulator.client import EmulatorClient, SimUser
from totoshka.emulator.server import EmulatorServer
from totoshka.jobs.queue import JobState
from totoshka.jobs.sqlite_queue import SQLiteJobQueue

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = Texts.load()
REDIS_URL = os.environ.get("TOTOSHKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "replica-webhook-s3cret"
USERS = 4
PHOTOS_EACH = 2
TITLES = {"en": "Udnie", "ru": "Удни"}


class RoundRobinProxy:
    """A load balancer in miniature: each request to the next replica, in turn.

    A replica that refuses the connection or drops it before answering gets a 502
    back to the emulator, which then sends the same update again (to the next one).
    ``in_flight`` (replica index -> updates being forwarded) and ``forwarded`` let the
    test see which replica holds which update.
    """

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = 0
        self.in_flight: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(backends))}
        self.forwarded: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(backends))}
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        index = self.turn % len(self.backends)
        self.turn += 1
        body = await request.read()
        update = json.loads(body) if body else {}
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}
        }
        self.in_flight[index].append(update)
        try:
            async with self._http.request(
                request.method,
                self.backends[index] + request.path_qs,
                data=body,
                headers=headers,
            ) as answer:
                payload = await answer.read()
                self.forwarded[index].append(update)
                content_type = answer.headers.get("Content-Type", "application/octet-stream")
                return web.Response(
                    status=answer.status, body=payload, headers={"Content-Type": content_type}
                )
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            self.refused += 1
            return web.Response(status=502, text=f"replica {index}: {type(error).__name__}")
        finally:
            self.in_flight[index].remove(update)


def start_replica(
    index: int,
    port: int,
    emulator: EmulatorServer,
    proxy_url: str,
    prefix: str,
    tmp_path: Path,
    model_cache: Path,
    mirror: str,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        TOTOSHKA_BOT_TOKEN=TOKEN,
        TOTOSHKA_API_URL=emulator.url,
        TOTOSHKA_QUEUE_PATH=str(tmp_path / "jobs.sqlite3"),  # shared by the replicas
        TOTOSHKA_CACHE_DIR=str(model_cache),
        TOTOSHKA_MODEL_MIRROR=str(mirror),
        TOTOSHKA_DEFAULT_OUTPUT_SIZE=str(OUTPUT_SIZE),
        TOTOSHKA_FULL_OUTPUT_CAP="320",
        TOTOSHKA_PREVIEW_SIZE="128",
        TOTOSHKA_ALBUM_WAIT="0.4",
        TOTOSHKA_WORKERS="1",
        TOTOSHKA_MAX_PENDING="3",
        TOTOSHKA_LOG_LEVEL="INFO",
        TOTOSHKA_REDIS_URL=REDIS_URL,
        TOTOSHKA_REDIS_PREFIX=prefix,
        TOTOSHKA_WEBHOOK_URL=proxy_url,  # setWebhook: the balancer, not this replica
        TOTOSHKA_WEBHOOK_HOST="127.0.0.1",
        TOTOSHKA_WEBHOOK_PORT=str(port),
        TOTOSHKA_WEBHOOK_SECRET=SECRET,
    )
    log = tmp_path / f"replica{index}.log"
    return subprocess.Popen(
        [sys.executable, "-m", "totoshka", "webhook"],
        cwd=tmp_path,  # no stray .env
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 30)


async def wait_until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds (generous: the 2-core machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"not within {WAIT}s: {what}")
        await asyncio.sleep(0.05)


def logs_tail(tmp_path: Path) -> str:
    parts = []
    for log in sorted(tmp_path.glob("replica*.log")):
        parts.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
    return "\n".join(parts)


async def test_a_replica_killed_mid_burst_loses_no_photo(
    emulator: EmulatorServer,
    client: EmulatorClient,
    new_user: Callable[..., Awaitable[SimUser]],
    photos: dict[str, bytes],
    tmp_path: Path,
    model_cache: Path,
    mirror: str,
) -> None:
    store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    store.ping()  # loud if Redis is down
    prefix = f"totoshka:test-replicas:{uuid.uuid4().hex}"
    ports = [free_port(), free_port()]
    proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in ports])
    proxy_url = await proxy.start()
    procs = [
        start_replica(i, port, emulator, proxy_url, prefix, tmp_path, model_cache, mirror)
        for i, port in enumerate(ports)
    ]
    try:
        for port in ports:
            answers = await wait_until_ready(f"http://127.0.0.1:{port}")
            assert answers[-1]["status_code"] == 200, (answers, logs_tail(tmp_path))
        info = await client.bot_info()
        assert info["webhook"]["url"] == f"{proxy_url}/telegram/webhook"

        langs = ["en" if i % 2 == 0 else "ru" for i in range(USERS)]
        users = [await new_user(lang, f"R{i}") for i, lang in enumerate(langs)]
        names = sorted(photos)
        for round_ in range(PHOTOS_EACH):  # the burst: every user's photos at once
            for i, user in enumerate(users):
                await user.send_photo(photos[names[(i + round_) % len(names)]])
        pickers: list[tuple[SimUser, str, Any]] = []
        for user, lang in zip(users, langs, strict=True):
            for _ in range(PHOTOS_EACH):
                picker = await user.wait_for_message(
                    lambda m, lang=lang: (
                        bool(m.buttons) and m.text == TEXTS.get(lang, "pick_style")
                    ),
                    timeout=WAIT,
                )
                pickers.append((user, lang, picker))

        # Each press's handler sends its status line slowly, so presses are mid-handling
        # for a while; jobs wait on getFile, before anything visible, while the kill lands.
        await client.inject_fault("sendMessage", status=None, delay=1.0, count=None)
        await client.inject_fault("getFile", status=None, delay=1.0, count=None)
        press_ids = [await user.press(picker, TITLES[lang]) for user, lang, picker in pickers]

        async def answered(query_id: str) -> bool:
            return await client.callback_answer(query_id) is not None

        async def replica_one_is_mid_press() -> bool:
            # replica 1 holds a press it has answered: it is queueing that job now
            for update in list(proxy.in_flight[1]):
                query = update.get("callback_query")
                if query and await answered(query["id"]):
                    return True
            # answering first (aiogram's default): no press is ever held; kill once
            # replica 1 took some and every press has been answered
            took = any("callback_query" in u for u in proxy.forwarded[1])
            return took and all([await answered(q) for q in press_ids])

        await wait_until(replica_one_is_mid_press, "replica 1 handling a press")
        procs[1].send_signal(signal.SIGKILL)
        await asyncio.to_thread(procs[1].wait, 30)
        await client.clear_faults()
        procs[1] = start_replica(
            1, ports[1], emulator, proxy_url, prefix, tmp_path, model_cache, mirror
        )

        for user in users:
            for _ in range(PHOTOS_EACH):
                try:
                    await user.wait_for_message(
                        lambda m: bool(m.photo), timeout=WAIT, include_edits=False
                    )
                except TimeoutError as error:
                    raise AssertionError(f"{user}: a photo lost\n{logs_tail(tmp_path)}") from error

        queue = SQLiteJobQueue(tmp_path / "jobs.sqlite3")
        try:

            async def settled() -> bool:
                if (await client.bot_info())["pending_updates"]:
                    return False
                jobs = await asyncio.to_thread(queue.jobs)
                return all(j.state not in (JobState.QUEUED, JobState.RUNNING) for j in jobs)

            await wait_until(settled, "no update pending, no job waiting")
            jobs = await asyncio.to_thread(queue.jobs)
        finally:
            queue.close()
        assert sorted(j.dedupe_key or "" for j in jobs) == sorted(f"cb:{q}" for q in press_ids)
        assert {j.state for j in jobs} == {JobState.DONE}, [(j.state, j.last_error) for j in jobs]
        assert proxy.refused >= 1  # the dead replica's updates were sent again
        for user in users:
            results = [m for m in await user.messages() if m.photo]
            assert len(results) == PHOTOS_EACH, f"{user}: {len(results)} results"
    finally:
        for proc in procs:
            await stop(proc)
        await proxy.stop()
        keys = list(store.scan_iter(match=f"{prefix}:*"))
        if keys:
            store.delete(*keys)
        store.close()


async def test_an_album_over_the_webhook_is_still_one_album(
    emulator: EmulatorServer,
    client: EmulatorClient,
    new_user: Callable[..., Awaitable[SimUser]],
    photos: dict[str, bytes],
    tmp_path: Path,
    model_cache: Path,
    mirror: str,
    stylizer_factory: SharedStylizer,
) -> None:
    """Album items are the exception to handle-then-answer: the emulator (like Telegram
    for a chat) sends the next item only once the previous one is answered, so an item
    held ``album_wait`` in its request would be handled alone. One note, one picker."""
    port = free_port()
    settings = make_settings(
        emulator.url,
        tmp_path,
        model_cache,
        mirror,
        webhook_url=f"http://127.0.0.1:{port}",
        webhook_secret=SECRET,
        webhook_port=port,
    )
    app = BotApp(settings, stylizer_factory=stylizer_factory)
    runner = await app.start_webhook()
    try:
        user = await new_user("en")
        await user.send_album([photos["amber"], photos["flowers"], photos["shenyang"]])
        first = await user.wait_for_message(timeout=WAIT)
        assert first.text == TEXTS.get("en", "album_first_only")  # not three single photos
        picker = await user.wait_for_message(lambda m: bool(m.buttons), timeout=WAIT)
        assert picker.text == TEXTS.get("en", "pick_style")
    finally:
        await runner.cleanup()
        await app.close()
