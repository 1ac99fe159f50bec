"""Helpers for the bot's end-to-end tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from totoshka.bot.app import BotApp
from totoshka.config import Settings

TOKEN = "424242:TEST-token-sEcReT-value"
OUTPUT_SIZE = 192  # longest side of results in tests: real networks, small pictures
WAIT = 120.0  # generous: the 2-core CI machine is shared


class SharedStylizer:
    """One Stylizer for the session (thread-safe; loading weights is the slow part)."""

    def __init__(self, cache_dir: Path, mirror: str | Path) -> None:
        self.cache_dir = cache_dir
        self.mirror = mirror
        self._lock = threading.Lock()
        self._stylizer: Any = None

    def __call__(self) -> Any:
        with self._lock:
            if self._stylizer is None:
                from totoshka.engine.catalog import load_catalog
                from totoshka.engine.store import ModelStore
                from totoshka.engine.stylizer import Stylizer

                catalog = load_catalog()
                store = ModelStore(cache_dir=self.cache_dir, mirror=self.mirror, catalog=catalog)
                self._stylizer = Stylizer(catalog=catalog, store=store)
            return self._stylizer


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_settings(
    emulator_url: str, tmp_path: Path, model_cache: Path, mirror: str | Path, **over: Any
) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "api_url": emulator_url,
        "queue_path": tmp_path / "jobs.sqlite3",
        "cache_dir": model_cache,
        "model_mirror": str(mirror),
        "default_output_size": OUTPUT_SIZE,
        "full_output_cap": 320,
        "preview_size": 128,
        "album_wait": 0.4,
        "max_pending": 3,
        "send_retries": 6,
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class RunningBot:
    app: BotApp
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.app.dispatcher.stop_polling()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 30)
        await self.app.close()


async def start_bot(settings: Settings, stylizer_factory: Callable[[], Any]) -> RunningBot:
    app = BotApp(settings, stylizer_factory=stylizer_factory)
    await app.bot.delete_webhook()
    task = asyncio.create_task(
        app.dispatcher.start_polling(
            app.bot, handle_signals=False, close_bot_session=False, polling_timeout=1
        )
    )
    return RunningBot(app, task)


# -- the operator's endpoints (/metrics, /healthz, /readyz), over real HTTP ------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def parse_metrics(text: str) -> Samples:
    """Every sample of a scrape, by (name, labels), parsed by prometheus_client itself."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def wait_for_http(url: str, timeout: float = WAIT) -> tuple[int, str]:
    """The first answer of a server that may still be starting (refused until then)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await http_get(url)
        except aiohttp.ClientConnectionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_until_ready(base: str, timeout: float = WAIT) -> list[dict[str, Any]]:
    """Poll ``/readyz`` until it says ready; returns every answer, the 503s first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    answers = []
    while True:
        status, body = await wait_for_http(f"{base}/readyz", timeout)
        answer = {"status_code": status, **json.loads(body)}
        answers.append(answer)
        if status == 200 or loop.time() > deadline:
            return answers
        await asyncio.sleep(0.2)


async def scrape_until(
    base: str, ready: Callable[[Samples], bool], timeout: float = WAIT
) -> tuple[str, Samples]:
    """Scrape ``/metrics`` until ``ready(samples)``: a counter moves just after the
    user sees the result (the job is marked done after its last message)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, text = await http_get(f"{base}/metrics")
        assert status == 200, text
        samples = parse_metrics(text)
        if ready(samples) or loop.time() > deadline:
            return text, samples
        await asyncio.sleep(0.2)
