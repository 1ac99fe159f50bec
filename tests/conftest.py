"""Fixtures shared by the whole test suite (keep it small: parts add their own
fixtures in their own folder's conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    """`$TOTOSHKA_SHARED` or `<repo>/../shared`: third-party data read, never copied."""
    return Path(os.environ.get("TOTOSHKA_SHARED", REPO / ".." / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; fails loudly (never skips) when it is absent."""
    path = shared_path()
    if not (path / "models" / "ml5").is_dir():
        pytest.fail(
            f"shared data not found at {path} (expected models/ml5 inside); "
            "set TOTOSHKA_SHARED to its location"
        )
    return path


@pytest.fixture
def mirror_env(shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TOTOSHKA_MODEL_MIRROR -> ../shared/models, fresh tmp cache and data dirs.

    Returns the cache dir."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TOTOSHKA_MODEL_MIRROR", str(shared_dir / "models"))
    monkeypatch.setenv("TOTOSHKA_CACHE_DIR", str(cache))
    monkeypatch.setenv("TOTOSHKA_DATA_DIR", str(tmp_path / "data"))
    return cache
