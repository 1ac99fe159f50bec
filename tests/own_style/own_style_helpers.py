"""Helpers of the own-style tests (a module name of its own, unlike conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings
from totoshka.engine.stylizer import Stylizer


def tutorial_crop(path: Path, side: int) -> np.ndarray:
    """PROVENANCE.md's recipe: short side to `side` (bilinear), centre crop, [0, 1] NHWC."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    s = side / min(w, h)
    nw, nh = max(side, round(w * s)), max(side, round(h * s))
    image = image.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - side) // 2, (nh - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image, dtype=np.float32)[None] / 255.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def make_stylizer(root: Path, mirror: Path, *, own_style_engine: str = "magenta") -> Stylizer:
    """A Stylizer with its own cache and data dir under `root`, pulling from `mirror`,
    as the engine's factory builds it from an operator's settings."""
    settings = EngineSettings(
        cache_dir=root / "cache",
        data_dir=root / "data",
        model_mirror=str(mirror),
        own_style_engine=own_style_engine,  # type: ignore[arg-type]
    )
    return open_engine(settings).stylizer()
