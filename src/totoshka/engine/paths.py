"""Where Totoshka keeps its files (XDG base directories through platformdirs).

- cache: downloaded model weights; safe to delete, they are fetched again.
  `TOTOSHKA_CACHE_DIR` overrides it.
- data: what an operator added (own styles, their weights and previews); not a cache.
  `TOTOSHKA_DATA_DIR` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "totoshka"


def cache_dir() -> Path:
    """The model cache: `$TOTOSHKA_CACHE_DIR` or `~/.cache/totoshka/models`."""
    override = os.environ.get("TOTOSHKA_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path(APP_NAME) / "models"


def data_dir() -> Path:
    """Operator data: `$TOTOSHKA_DATA_DIR` or `~/.local/share/totoshka`."""
    override = os.environ.get("TOTOSHKA_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME)
