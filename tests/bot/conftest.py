"""End-to-end fixtures: the real bot, over real HTTP, against the local Bot API emulator.

Each test gets a fresh emulator (its own world) and a fresh `BotApp` (its own
queue file and memory storage) running long polling in the test's event loop.
The `Stylizer` is shared by the whole session so the real checkpoints, copied
from the offline mirror (``../shared/models``) into a temporary cache, are read
from disk once. Photos come from ``../shared/images/content``, shrunk in memory
so CPU inference stays fast; nothing from shared/ is copied into the repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from bot_helpers import TOKEN, RunningBot, SharedStylizer, jpeg, make_settings, start_bot
from PIL import Image

from totoshka.config import Settings
from totoshka.emulator.client import EmulatorClient, SimUser
from totoshka.emulator.server import EmulatorServer


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache") / "models"


@pytest.fixture(scope="session")
def mirror(model_mirrors: str) -> str:
    """../shared/models then build/mirror (the Dumoulin wheel), as TOTOSHKA_MODEL_MIRROR."""
    return model_mirrors


@pytest.fixture(scope="session")
def stylizer_factory(model_cache: Path, mirror: str) -> SharedStylizer:
    return SharedStylizer(model_cache, mirror)


@pytest.fixture(scope="session")
def photos(shared_dir: Path) -> dict[str, bytes]:
    """The shared content photos, shrunk to 240 px (in memory only)."""
    out = {}
    for path in sorted((shared_dir / "images" / "content").glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        image.thumbnail((240, 240))
        out[path.stem] = jpeg(image)
    return out


@pytest.fixture
def painting(shared_dir: Path) -> bytes:
    styles = shared_dir / "images" / "styles"
    path = next(iter(sorted(styles.glob("*.jpg"))))
    image = Image.open(path).convert("RGB")
    image.thumbnail((256, 256))
    return jpeg(image)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    server = EmulatorServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(emulator: EmulatorServer) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emulator.url, bot_token=TOKEN) as c:
        yield c


@pytest.fixture
def settings(emulator: EmulatorServer, tmp_path: Path, model_cache: Path, mirror: str) -> Settings:
    return make_settings(emulator.url, tmp_path, model_cache, mirror)


@pytest.fixture
async def bot(settings: Settings, stylizer_factory: SharedStylizer) -> AsyncIterator[RunningBot]:
    running = await start_bot(settings, stylizer_factory)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def new_user(client: EmulatorClient) -> Callable[..., Any]:
    async def make(language_code: str = "en", first_name: str = "Ann") -> SimUser:
        return await client.create_user(language_code=language_code, first_name=first_name)

    return make


@pytest.fixture
async def one_worker_bot(
    emulator: EmulatorServer,
    tmp_path: Path,
    model_cache: Path,
    mirror: str,
    stylizer_factory: SharedStylizer,
) -> AsyncIterator[RunningBot]:
    """A bot that runs one job at a time, so the next ones visibly wait in line."""
    settings = make_settings(emulator.url, tmp_path, model_cache, mirror, workers=1)
    running = await start_bot(settings, stylizer_factory)
    try:
        yield running
    finally:
        await running.stop()
