"""Own style at full resolution through the Stylizer: the photo comes back at its
own size (even and odd sides) and in the painting's style.

Pictures are written to pytest's tmp dir (and to $TOTOSHKA_TEST_OUTPUT when set)
so a person can look at them; the numeric check is that the output's colours
move toward the painting's: the histogram intersection with the painting rises
and the mean colour gets closer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from totoshka.engine.models import magenta
from totoshka.engine.models.layers import StatsTape, record_stats, replay_stats
from totoshka.engine.stylizer import OwnStyle, Stylizer, to_tensor


def colour_histogram(image: Image.Image, bins: int = 8) -> np.ndarray:
    a = np.asarray(image.convert("RGB").resize((256, 256)), dtype=np.int64) * bins // 256
    index = (a[..., 0] * bins + a[..., 1]) * bins + a[..., 2]
    h = np.bincount(index.ravel(), minlength=bins**3).astype(np.float64)
    return h / h.sum()


def intersection(a: Image.Image, b: Image.Image) -> float:
    return float(np.minimum(colour_histogram(a), colour_histogram(b)).sum())


def mean_colour(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)


def photo_at(path: Path, size: tuple[int, int]) -> Image.Image:
    """The photo cropped to the size's aspect ratio, then resized to it."""
    image = Image.open(path).convert("RGB")
    w, h = size
    s = min(image.width / w, image.height / h)
    cw, ch = round(w * s), round(h * s)
    left, top = (image.width - cw) // 2, (image.height - ch) // 2
    return image.crop((left, top, left + cw, top + ch)).resize(size, Image.Resampling.LANCZOS)


def save(image: Image.Image, tmp_path: Path, name: str) -> None:
    image.save(tmp_path / name)
    out = os.environ.get("TOTOSHKA_TEST_OUTPUT")
    if out:
        Path(out, "own_style").mkdir(parents=True, exist_ok=True)
        image.save(Path(out, "own_style", name))


@pytest.fixture(scope="module")
def scream(styles_dir: Path) -> Image.Image:
    return Image.open(styles_dir / "the_scream.jpg").convert("RGB")


@pytest.fixture(scope="module")
def scream_vector(stylizer: Stylizer, scream: Image.Image) -> tuple[float, ...]:
    return tuple(stylizer.style_vector(scream))


@pytest.mark.parametrize(
    ("photo", "size"), [("amber.jpg", (1280, 960)), ("venice-boat.jpg", (1001, 667))]
)
def test_full_resolution_in_the_painting_style(
    stylizer, scream, scream_vector, photos_dir, tmp_path, photo, size
) -> None:
    image = photo_at(photos_dir / photo, size)
    out = stylizer.stylize(image, OwnStyle(vectors=((scream_vector, 1.0),)), max_side=None)
    save(out, tmp_path, f"{Path(photo).stem}_{size[0]}x{size[1]}_scream.png")
    assert out.size == size
    before, after = intersection(image, scream), intersection(out, scream)
    d_before = np.linalg.norm(mean_colour(image) - mean_colour(scream))
    d_after = np.linalg.norm(mean_colour(out) - mean_colour(scream))
    print(f"{photo} {size}: histogram intersection {before:.3f} -> {after:.3f}, "
          f"mean colour distance {d_before:.1f} -> {d_after:.1f}")  # fmt: skip
    assert after > before + 0.1
    assert d_after < d_before


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (17, 33), (64, 48), (101, 67), (384, 384)])
def test_any_size_comes_back_at_its_size(transfer, size) -> None:
    w, h = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(w * h)) * 255
    bound = magenta.BoundTransfer(transfer, torch.zeros(magenta.STYLE_DIM))
    with torch.inference_mode():
        y = bound(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 255


def test_statistics_replay_for_tiling(transfer, scream_vector, photos_dir) -> None:
    """Every norm goes through layers.InstanceNorm: recorded statistics replay exactly."""
    x = to_tensor(photo_at(photos_dir / "amber.jpg", (160, 120)))
    bound = magenta.BoundTransfer(transfer, scream_vector)
    tape = StatsTape()
    with torch.inference_mode():
        with record_stats(tape):
            y = bound(x)
        with replay_stats(tape):
            y2 = bound(x)
    norms = 2 * len(transfer.residual) + len(transfer.expand)
    assert len(tape) == norms
    assert torch.equal(y, y2)
