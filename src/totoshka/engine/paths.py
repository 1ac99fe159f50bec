"""Where Totoshka keeps its files (XDG base directories through platformdirs).

- cache: downloaded model weights (and, under `compiled/`, converted models and
  path verdicts); safe to delete, they are fetched or made again.
- data: what an operator added (own styles, their weights and previews); not a cache.

This module reads no environment: the operator's overrides (`TOTOSHKA_CACHE_DIR`,
`TOTOSHKA_DATA_DIR`) are fields of `totoshka.engine.settings.EngineSettings`, read
once by the command that starts the process and passed in as `override`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import platformdirs

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: atomic replaces alone keep files safe
    fcntl = None  # type: ignore[assignment]

APP_NAME = "totoshka"
COMPILED = "compiled"


def cache_dir(override: Path | str | None = None) -> Path:
    """The model cache: `override`, or `~/.cache/totoshka/models`."""
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path(APP_NAME) / "models"


def data_dir(override: Path | str | None = None) -> Path:
    """Operator data: `override`, or `~/.local/share/totoshka`."""
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME)


def compiled_dir(cache: Path | str | None = None) -> Path:
    """Converted models and calibration verdicts: `<model cache>/compiled`."""
    return cache_dir(cache) / COMPILED


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock on `path` (created with its folder), so that two processes
    do not do the same work at once (download one model, rewrite one catalog)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with path.open("a", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
