"""Fixtures of the speed-and-memory tests: small real photos and real networks.

Real weights and photos come from the shared data (`tests/conftest.py::shared_dir`);
OpenVINO conversions go to a per-session temporary cache (`compiled_dir`, given to
the runners the tests build), so every CI run exercises conversion and the on-disk
cache from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from totoshka.engine import paths
from totoshka.engine.models import magenta
from totoshka.engine.models.ml5 import load_ml5


def photo(shared: Path, name: str, height: int, width: int) -> Tensor:
    """A real photo scaled to cover (height, width) and cropped there: 0..255 NCHW."""
    image = Image.open(shared / "images" / "content" / name).convert("RGB")
    scale = max(height / image.height, width / image.width)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS).crop((0, 0, width, height))
    array = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="session")
def make_photo(shared_dir: Path) -> Callable[[str, int, int], Tensor]:
    """`make_photo(name, height, width)`: a real photo from the shared data at that size."""
    return lambda name, height, width: photo(shared_dir, name, height, width)


@pytest.fixture(scope="session")
def compiled_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh model cache for the session (what `EngineSettings.cache_dir` would name),
    so conversions happen here."""
    return tmp_path_factory.mktemp("totoshka-cache")


@pytest.fixture(scope="session")
def compiled_dir(compiled_cache: Path) -> Path:
    """Where runners made by the tests keep converted models and verdicts: the
    `compiled/` folder of the session's cache, as the engine's factory passes it."""
    return paths.compiled_dir(compiled_cache)


@pytest.fixture(scope="session")
def ml5_net(shared_dir: Path) -> nn.Module:
    return load_ml5(shared_dir / "models" / "ml5" / "wave")


@pytest.fixture(scope="session")
def magenta_net(shared_dir: Path) -> nn.Module:
    folder = shared_dir / "models" / "magenta"
    predictor = magenta.load_predictor(magenta.model_files(folder)[0])
    painting = Image.open(shared_dir / "images" / "styles" / "starry_night.jpg").convert("RGB")
    painting = painting.resize((magenta.PREDICTOR_SIZE,) * 2, Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(painting, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        vector = predictor(x)[0].numpy()
    return magenta.load_bound(folder, vector)


@pytest.fixture(scope="session")
def nets(ml5_net: nn.Module, magenta_net: nn.Module) -> dict[str, nn.Module]:
    return {"ml5": ml5_net, "magenta": magenta_net}


class TickClock:
    """A clock for `AutoRunner(clock=...)` whose every reading is one second after the
    last: each timed run then takes exactly 1 s, so whether a path is "slower than
    eager fp32" never depends on how busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def ticks() -> TickClock:
    return TickClock()
