"""The scaled deployment end to end: two webhook replicas, two Celery workers, Redis.

Two real ``python -m totoshka webhook`` replicas in Celery mode behind a round-robin
proxy (the load balancer), sharing their conversation state in Redis; two real
``totoshka worker`` processes paint. Five users each send three photos at once and
press a style under each picker: the FSM data edits of one user's photos land on
both replicas at the same moment, which lost a third of such photos before the
conversation lock. Then one worker is SIGKILLed, main process and pool child
together, while it holds a job: the lease lapses, the job goes back in line, and the
other worker paints it.

Asserted: 15/15 pictures, each to the right user (the caption names the style the
user pressed, the chat is the user's own), none twice, and every job done.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from bot_helpers import OUTPUT_SIZE, TOKEN, WAIT, free_port, wait_until_ready
from own_redis import OwnRedis
from test_bot_webhook_replicas import RoundRobinProxy, logs_tail, stop, wait_until

from totoshka.bot.texts import Texts
from totoshka.emulator.client import EmulatorClient, SimUser
from totoshka.emulator.server import EmulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = Texts.load()
SECRET = "scale-out-webhook-s3cret"
USERS = 5
PHOTOS_EACH = 3
#: (English title, Russian title) of the styles pressed, one per photo of a user
STYLES = [("Udnie", "Удни"), ("La Muse", "Муза"), ("The Scream", "Крик")]


def base_env(
    emulator: EmulatorServer, server: OwnRedis, model_cache: Path, mirror: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TOTOSHKA_BOT_TOKEN=TOKEN,
        TOTOSHKA_API_URL=emulator.url,
        TOTOSHKA_JOBS_BACKEND="celery",
        TOTOSHKA_BROKER_URL=server.url,
        TOTOSHKA_REDIS_URL=server.url,
        TOTOSHKA_JOBS_LEASE="4",
        TOTOSHKA_JOBS_RECONCILE_EVERY="0.5",
        TOTOSHKA_JOBS_TOKEN_GRACE="2",
        TOTOSHKA_CACHE_DIR=str(model_cache),
        TOTOSHKA_MODEL_MIRROR=str(mirror),
        TOTOSHKA_DEFAULT_OUTPUT_SIZE=str(OUTPUT_SIZE),
        TOTOSHKA_WORKER_WARM=",".join(("udnie", "la_muse", "scream")),  # the styles pressed
        TOTOSHKA_PREVIEW_SIZE="128",
        TOTOSHKA_MAX_PENDING="3",
        TOTOSHKA_LOG_LEVEL="INFO",
    )
    return env


def start_replica(
    index: int, port: int, proxy_url: str, env: dict[str, str], tmp_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **env,
        "TOTOSHKA_WEBHOOK_URL": proxy_url,  # setWebhook: the balancer, not this replica
        "TOTOSHKA_WEBHOOK_HOST": "127.0.0.1",
        "TOTOSHKA_WEBHOOK_PORT": str(port),
        "TOTOSHKA_WEBHOOK_SECRET": SECRET,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "totoshka", "webhook"],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / f"replica{index}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def start_worker(index: int, env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "totoshka",
            "worker",
            "--concurrency",
            "1",
            "--hostname",
            f"w{index}@%h",
        ],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / f"worker{index}.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killed whole
    )


async def test_two_replicas_two_workers_a_worker_killed(
    emulator: EmulatorServer,
    client: EmulatorClient,
    new_user: Callable[..., Awaitable[SimUser]],
    photos: dict[str, bytes],
    tmp_path: Path,
    model_cache: Path,
    mirror: str,
) -> None:
    (tmp_path / "redis").mkdir()
    server = OwnRedis(tmp_path / "redis", persistent=True)
    env = base_env(emulator, server, model_cache, mirror)
    ports = [free_port(), free_port()]
    proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in ports])
    proxy_url = await proxy.start()
    replicas = [start_replica(i, port, proxy_url, env, tmp_path) for i, port in enumerate(ports)]
    workers = [start_worker(i, env, tmp_path) for i in range(2)]
    store = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        for port in ports:
            answers = await wait_until_ready(f"http://127.0.0.1:{port}")
            assert answers[-1]["status_code"] == 200, (answers, logs_tail(tmp_path))

        langs = ["en" if i % 2 == 0 else "ru" for i in range(USERS)]
        users = [await new_user(lang, f"S{i}") for i, lang in enumerate(langs)]
        names = sorted(photos)
        await asyncio.gather(
            *(
                user.send_photo(photos[names[(i + k) % len(names)]])
                for i, user in enumerate(users)
                for k in range(PHOTOS_EACH)
            )
        )
        pickers: list[tuple[int, Any]] = []
        for i, (user, lang) in enumerate(zip(users, langs, strict=True)):
            for _ in range(PHOTOS_EACH):
                picker = await user.wait_for_message(
                    lambda m, lang=lang: (
                        bool(m.buttons) and m.text == TEXTS.get(lang, "pick_style")
                    ),
                    timeout=WAIT,
                )
                pickers.append((i, picker))

        # Jobs wait a while on getFile, so that the kill lands while a worker holds one
        # and before it has sent anything.
        await client.inject_fault("getFile", status=None, delay=1.5, count=None)
        await asyncio.gather(
            *(
                users[i].press(picker, STYLES[k % PHOTOS_EACH][0 if langs[i] == "en" else 1])
                for k, (i, picker) in enumerate(pickers)
            )
        )

        async def worker_zero_holds_a_job() -> bool:
            for key in store.scan_iter(match="totoshka:jobs:job:*"):
                if store.hget(key, "state") == "running" and (
                    store.hget(key, "worker") or ""
                ).startswith("w0@"):
                    return True
            return False

        await wait_until(worker_zero_holds_a_job, "worker 0 painting a job")
        os.killpg(workers[0].pid, signal.SIGKILL)
        await asyncio.to_thread(workers[0].wait, 30)
        await client.clear_faults()

        expected: dict[int, list[str]] = {}
        for k, (i, _) in enumerate(pickers):
            expected.setdefault(i, []).append(STYLES[k % PHOTOS_EACH][0 if langs[i] == "en" else 1])
        for user in users:
            for _ in range(PHOTOS_EACH):
                try:
                    await user.wait_for_message(
                        lambda m: bool(m.photo), timeout=WAIT * 2, include_edits=False
                    )
                except TimeoutError as error:
                    raise AssertionError(f"{user}: a photo lost\n{logs_tail(tmp_path)}") from error

        async def settled() -> bool:
            stats = store.hgetall("totoshka:jobs:stats")
            return int(stats.get("done", 0)) == USERS * PHOTOS_EACH

        await wait_until(settled, "every job done")
        for i, user in enumerate(users):
            results = [m for m in await user.messages() if m.photo]
            styles = sorted(m.caption.split("»")[0].lstrip("«") for m in results)
            assert styles == sorted(expected[i]), f"{user}: {styles}"  # each once, the right one
        lost = [
            k
            for k in store.scan_iter(match="totoshka:jobs:job:*")
            if "WorkerLost" in (store.hget(k, "last_error") or "")
        ]
        assert len(lost) == 1  # the killed worker's job, painted again by the other
    finally:
        for proc in replicas + workers[1:]:
            await stop(proc)
        await proxy.stop()
        store.close()
        server.stop(signal.SIGKILL)
