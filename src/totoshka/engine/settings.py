"""The engine's configuration: one typed object, read once where a process starts.

Operators configure Totoshka through ``TOTOSHKA_*`` environment variables or a
``.env`` file. Only the command that starts a process (a CLI command, the bot,
a benchmark's main, a child's entry point) builds an `EngineSettings`; everything
below receives it, or the few values it needs, as arguments. So no engine module
reads ``os.environ``, tests configure an engine by constructing one object, and
two engines in one process never share configuration by accident.

The bot's `totoshka.config.Settings` extends this class, so whatever takes an
`EngineSettings` also takes the bot's settings.

Variables (unchanged from before this class existed, so deployed configurations
keep working): ``TOTOSHKA_CACHE_DIR``, ``TOTOSHKA_DATA_DIR``,
``TOTOSHKA_MODEL_MIRROR``, ``TOTOSHKA_MEMORY_BUDGET_MB``,
``TOTOSHKA_OWN_STYLE_ENGINE``, ``TOTOSHKA_BACKEND``, ``TOTOSHKA_CONVERT_IN_PROCESS``.
An empty variable counts as unset, as it always has.

This module must stay light: the CLI builds settings for commands that never
paint, so nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from totoshka.engine import paths
from totoshka.engine.backends import NAMES as BACKEND_NAMES

# The worker's memory budget when the operator sets none: the same number as
# `backends.eager.DEFAULT_MEMORY_BUDGET_MB` (which imports torch, so it cannot be
# imported here; tests/engine/test_settings.py keeps the two equal). See eager.py for
# how the budget decides which pictures are painted in tiles.
DEFAULT_MEMORY_BUDGET_MB = 1500.0

OwnStyleEngine = Literal["magenta", "msgnet"]
OWN_STYLE_ENGINES: tuple[str, ...] = get_args(OwnStyleEngine)

_ENGINE_FIELDS = (
    "cache_dir",
    "data_dir",
    "model_mirror",
    "memory_budget_mb",
    "own_style_engine",
    "backend",
    "convert_in_process",
)


class EngineSettings(BaseSettings):
    """What an operator can set about painting: where files live, where weights come
    from, how much memory a picture may take, which own-style engine and inference
    path serve."""

    model_config = SettingsConfigDict(
        env_prefix="TOTOSHKA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    cache_dir: Path | None = Field(
        default=None, description="Model cache (default: ~/.cache/totoshka/models)."
    )
    data_dir: Path | None = Field(
        default=None, description="Operator data: own styles (default: ~/.local/share/totoshka)."
    )
    model_mirror: str | None = Field(
        default=None,
        description=(
            "A folder or URL prefix laid out like ../shared/models, or several separated "
            "by os.pathsep (':' on POSIX), tried in order."
        ),
    )
    memory_budget_mb: float = Field(
        default=DEFAULT_MEMORY_BUDGET_MB,
        gt=0,
        description="Peak memory one picture may take; bigger pictures are painted in tiles.",
    )
    own_style_engine: OwnStyleEngine = Field(
        default="magenta", description="The engine of own styles given as paintings."
    )
    backend: str = Field(
        default="auto", description="Inference path: auto, best, eager-fp32, openvino-bf16, ..."
    )
    convert_in_process: bool = Field(
        default=False,
        description="Convert models for OpenVINO in this process instead of a child (debugging).",
    )
    # Clips (GIFs, videos, round videos): caps that keep one clip's painting in minutes
    # and its memory bounded. Longer sides are scaled down, faster clips thinned to
    # the cap; a longer clip is refused with a message that names the limit.
    video_max_side: int = Field(default=720, ge=64, le=4096)
    video_max_seconds: float = Field(default=60.0, gt=0)
    video_max_fps: float = Field(default=30.0, gt=0, le=120)
    # engine.video.METHODS (not imported here: it loads OpenCV); a typo fails at start
    video_consistency: (
        Literal["none", "stats", "flow", "stats+flow", "trust", "fastflow", "keyframes"] | None
    ) = Field(
        default=None, description="Temporal consistency method for clips (None: the default)."
    )

    @field_validator(*_ENGINE_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        # `TOTOSHKA_MODEL_MIRROR=` in a .env or a shell has always meant "none"
        if isinstance(value, str) and not value.strip():
            assert info.field_name is not None
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKEND_NAMES:  # the value is not echoed: settings errors never are
            raise ValueError(f"unknown backend (known: {', '.join(BACKEND_NAMES)})")
        return value

    def cache_path(self) -> Path:
        """The model cache this engine uses: `cache_dir`, or the platform's default."""
        return paths.cache_dir(self.cache_dir)

    def data_path(self) -> Path:
        """The operator's data folder: `data_dir`, or the platform's default."""
        return paths.data_dir(self.data_dir)

    def compiled_path(self) -> Path:
        """Converted models and path verdicts, beside the weights they were made from."""
        return paths.compiled_dir(self.cache_path())
