"""Paintings' style vectors on disk: keyed by pixels and maker, torn files are misses."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from totoshka.engine import vector_cache
from totoshka.engine.vector_cache import VectorCache, painting_key


def picture(colour: str, size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, colour)
    image.putpixel((3, 4), (1, 2, 3))
    return image


def test_keys_follow_the_pixels_and_the_maker() -> None:
    red = picture("red")
    assert painting_key(red, "ir-a") == painting_key(red.copy(), "ir-a")
    assert painting_key(red, "ir-a") == painting_key(red.convert("RGBA"), "ir-a")
    assert painting_key(red, "ir-a") != painting_key(red, "ir-b")
    assert painting_key(red, "ir-a") != painting_key(picture("blue"), "ir-a")
    assert painting_key(red, "ir-a") != painting_key(picture("red", (48, 64)), "ir-a")


def test_round_trip_and_misses(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "vectors", dim=3)
    assert cache.get("k") is None  # no folder yet
    cache.put("k", [0.25, -1.5, 3.0])
    assert cache.get("k") == [0.25, -1.5, 3.0]
    for torn in ("[0.25, ", "[1.0, 2.0]", '{"a": 1}', "[1.0, NaN, 2.0]", '[1, "x", 2.0]'):
        (tmp_path / "vectors" / "t.json").write_text(torn)
        assert cache.get("t") is None, torn
    assert not list((tmp_path / "vectors").glob("*.tmp"))


def test_the_oldest_go_past_the_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(vector_cache, "KEEP", 2)
    cache = VectorCache(tmp_path, dim=1)
    for i, key in enumerate(("old", "mid", "new")):
        cache.put(key, [float(i)])
        os.utime(tmp_path / f"{key}.json", (1000 + i, 1000 + i))
    cache.put("newest", [9.0])
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["new", "newest"]


def test_an_unwritable_folder_only_costs_the_prediction(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = VectorCache(blocked / "vectors", dim=1)
    cache.put("k", [1.0])  # logs, does not raise
    assert cache.get("k") is None
