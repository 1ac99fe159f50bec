"""Helpers for the bot's end-to-end tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

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
