"""Helpers for the playground's browser tests (Chromium discovery, screenshots).

Chromium comes from Debian (``scripts/install-browser.sh``), never from Playwright's
own download (its CDN is unreachable in CI). A missing browser is a failure, not a
skip: the browser test is the playground's acceptance test and must run in CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_OUTPUT = REPO / "test-output"  # git-ignored; CI keeps it as an artifact

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """``$TOTOSHKA_CHROMIUM``, else ``chromium`` on PATH, else fail with the fix."""
    candidates = [
        os.environ.get("TOTOSHKA_CHROMIUM"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Chromium not found (looked at $TOTOSHKA_CHROMIUM, PATH, /usr/bin/chromium); "
        "install it with: bash scripts/install-browser.sh"
    )


def keep_screenshot(path: Path) -> Path:
    """Copy a screenshot from the test's tmp folder to ``test-output/`` at the repo root."""
    TEST_OUTPUT.mkdir(exist_ok=True)
    target = TEST_OUTPUT / path.name
    shutil.copyfile(path, target)
    return target
