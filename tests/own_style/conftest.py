"""Fixtures for the own-style tests: the real Magenta files and paintings from
../shared (read in place, never copied into the repository), and a Stylizer whose
store pulls from ../shared/models as its mirror into a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from own_style_helpers import make_stylizer

from totoshka.engine.models import magenta
from totoshka.engine.stylizer import Stylizer


@pytest.fixture(scope="session")
def magenta_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "models" / "magenta"
    for name in (magenta.PREDICTION_FILE, magenta.TRANSFER_FILE):
        if not (folder / name).is_file():
            pytest.fail(f"{folder / name} is missing (the real Magenta .tflite files)")
    return folder


@pytest.fixture(scope="session")
def styles_dir(shared_dir: Path) -> Path:
    return shared_dir / "images" / "styles"


@pytest.fixture(scope="session")
def photos_dir(shared_dir: Path) -> Path:
    return shared_dir / "images" / "content"


@pytest.fixture(scope="session")
def predictor(magenta_dir: Path) -> magenta.StylePredictor:
    return magenta.load_predictor(str(magenta_dir / magenta.PREDICTION_FILE))


@pytest.fixture(scope="session")
def transfer(magenta_dir: Path) -> magenta.TransferNetwork:
    return magenta.load_transfer(str(magenta_dir / magenta.TRANSFER_FILE))


@pytest.fixture(scope="module")
def stylizer(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    return make_stylizer(tmp_path_factory.mktemp("own_style"), shared_dir / "models")
