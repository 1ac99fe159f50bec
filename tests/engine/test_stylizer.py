"""Stylizer with a real ml5 style from the mirror: strength, colours, sizes, cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from totoshka.engine.catalog import load_builtin_catalog
from totoshka.engine.errors import EngineError, UnknownStyleError
from totoshka.engine.imageio import load_image
from totoshka.engine.store import ModelStore
from totoshka.engine.stylizer import Stylizer


@pytest.fixture(scope="module")
def stylizer(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    tmp = tmp_path_factory.mktemp("stylizer")
    store = ModelStore(tmp / "cache", mirror=shared_dir / "models", data_dir=tmp / "data")
    return Stylizer(load_builtin_catalog(), store)


@pytest.fixture(scope="module")
def amber(shared_dir: Path) -> Image.Image:
    return load_image(shared_dir / "images" / "content" / "amber.jpg").resize((96, 80))


def chroma(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("YCbCr"), dtype=np.float32)[..., 1:]


def test_full_strength_is_a_painting(stylizer: Stylizer, amber: Image.Image) -> None:
    out = stylizer.stylize(amber, "wave", max_side=None)
    assert out.size == amber.size
    diff = np.abs(np.asarray(out, np.float32) - np.asarray(amber, np.float32)).mean()
    assert diff > 15


def test_strength_zero_returns_the_photo(stylizer: Stylizer, amber: Image.Image) -> None:
    out = stylizer.stylize(amber, "wave", max_side=None, strength=0.0)
    assert np.array_equal(np.asarray(out), np.asarray(amber))


def test_half_strength_lies_between(stylizer: Stylizer, amber: Image.Image) -> None:
    full = np.asarray(stylizer.stylize(amber, "wave", max_side=None), np.float32)
    half = np.asarray(stylizer.stylize(amber, "wave", max_side=None, strength=0.5), np.float32)
    expected = (full + np.asarray(amber, np.float32)) / 2
    assert np.abs(half - expected).max() <= 1.5


def test_preserve_colors_keeps_the_photos_chroma(stylizer: Stylizer, amber: Image.Image) -> None:
    painted = stylizer.stylize(amber, "wave", max_side=None)
    kept = stylizer.stylize(amber, "wave", max_side=None, preserve_colors=True)
    photo_chroma = chroma(amber)
    assert np.abs(chroma(painted) - photo_chroma).mean() > 5  # the wave is blue
    assert np.abs(chroma(kept) - photo_chroma).mean() < 2.5
    # ...while the brush strokes (luminance) still come from the painting
    kept_y = np.asarray(kept.convert("L"), np.float32)
    painted_y = np.asarray(painted.convert("L"), np.float32)
    assert np.abs(kept_y - painted_y).mean() < 4


def test_max_side_downscales_only(stylizer: Stylizer, amber: Image.Image) -> None:
    assert stylizer.stylize(amber, "wave", max_side=48).size == (48, 40)
    assert stylizer.stylize(amber, "wave", max_side=4096).size == amber.size


def test_errors(stylizer: Stylizer, amber: Image.Image) -> None:
    with pytest.raises(UnknownStyleError):
        stylizer.stylize(amber, "no-such-style")
    with pytest.raises(EngineError, match="strength"):
        stylizer.stylize(amber, "wave", strength=1.5)


def test_network_is_cached(stylizer: Stylizer) -> None:
    assert stylizer.network("wave") is stylizer.network("wave")
