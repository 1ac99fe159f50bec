"""Static stickers: painted, 512 px on the long side, transparency kept, WebP."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from totoshka.engine.catalog import load_builtin_catalog
from totoshka.engine.errors import ImageError
from totoshka.engine.sticker import MAX_BYTES, paint_sticker, sticker_size
from totoshka.engine.store import ModelStore
from totoshka.engine.stylizer import Stylizer


@pytest.fixture(scope="module")
def stylizer(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    tmp = tmp_path_factory.mktemp("sticker")
    store = ModelStore(tmp / "cache", mirror=shared_dir / "models", data_dir=tmp / "data")
    return Stylizer(load_builtin_catalog(), store, backend="eager")


def sticker_bytes(size: tuple[int, int] = (300, 200)) -> bytes:
    """A cat-ish disc on a transparent background, as Telegram stickers are."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w // 6, h // 6, 5 * w // 6, 5 * h // 6), fill=(230, 160, 60, 255))
    draw.rectangle((w // 3, h // 3, w // 2, h // 2), fill=(40, 90, 200, 255))
    buffer = io.BytesIO()
    img.save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def test_a_sticker_comes_back_painted_with_its_outline(stylizer: Stylizer) -> None:
    data = sticker_bytes()
    out = paint_sticker(stylizer, data, "wave")
    assert len(out) <= MAX_BYTES
    painted = Image.open(io.BytesIO(out))
    assert painted.format == "WEBP" and painted.mode == "RGBA"
    assert painted.size == (512, 341)  # one side exactly 512, the other in proportion
    source = Image.open(io.BytesIO(data)).convert("RGBA").resize(painted.size)
    alpha_in = np.asarray(source.getchannel("A"), np.float32)
    alpha_out = np.asarray(painted.getchannel("A"), np.float32)
    assert np.abs(alpha_out - alpha_in).mean() < 3  # transparency kept
    inside = alpha_in > 250
    rgb_in = np.asarray(source.convert("RGB"), np.float32)[inside]
    rgb_out = np.asarray(painted.convert("RGB"), np.float32)[inside]
    assert np.abs(rgb_out - rgb_in).mean() > 15  # and the inside is repainted


def test_an_opaque_picture_becomes_an_opaque_sticker(stylizer: Stylizer) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 128), (10, 200, 30)).save(buffer, "PNG")
    painted = Image.open(io.BytesIO(paint_sticker(stylizer, buffer.getvalue(), "wave")))
    assert painted.size == (256, 512)
    assert painted.mode == "RGB"


def test_a_broken_sticker_is_an_image_error(stylizer: Stylizer) -> None:
    with pytest.raises(ImageError):
        paint_sticker(stylizer, b"RIFF\x00\x00\x00\x00WEBPbroken", "wave")


def test_sticker_sizes() -> None:
    assert sticker_size((512, 512)) == (512, 512)
    assert sticker_size((100, 50)) == (512, 256)
    assert sticker_size((10, 4000)) == (1, 512)
