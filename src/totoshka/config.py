"""Bot configuration: environment variables with the prefix ``TOTOSHKA_`` and a ``.env`` file.

Read once at start-up, by the command that starts the process, into a typed
`Settings`; everything downstream receives the object (nothing below reads
``os.environ``), so tests build a `Settings` directly and
two bots in one process never share configuration. The token is a `SecretStr` so it
does not leak through ``repr`` or a settings dump into logs.

``TOTOSHKA_API_URL`` is the Bot API base URL: Telegram's by default, or a local
``telegram-bot-api`` server, or the project's emulator — the bot is the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from totoshka.engine.settings import EngineSettings

OUTPUT_SIZES: tuple[int, ...] = (1024, 1280, 2048, 0)
"""Sizes offered in /settings (longest side in pixels); 0 means the photo's full size."""


def _default_state_dir() -> Path:
    return platformdirs.user_state_path("totoshka")


class Settings(EngineSettings):
    """Everything an operator can set; defaults make ``totoshka run`` work with a token.

    The engine's own settings (cache, mirror, memory budget...) are inherited, so the
    bot hands this object to the engine's factory as it is."""

    model_config = SettingsConfigDict(
        env_prefix="TOTOSHKA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a mistyped token must not be echoed into logs
    )

    bot_token: SecretStr = Field(description="The bot's token from @BotFather.")
    api_url: str = Field(
        default="https://api.telegram.org",
        description="Bot API base URL (Telegram, a local telegram-bot-api, or the emulator).",
    )

    # Webhook mode: Telegram posts updates to webhook_url; we listen on host:port.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(
        default=None, description="secret_token for setWebhook, checked on every update."
    )
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8080
    webhook_path: str = "/telegram/webhook"

    # Jobs: embedded SQLite queue + in-process workers, or Celery workers elsewhere.
    jobs_backend: Literal["embedded", "celery"] = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    queue_path: Path = Field(default_factory=lambda: _default_state_dir() / "jobs.sqlite3")
    workers: int | None = Field(
        default=None, description="Concurrent jobs; None = sized to the machine by the pool."
    )
    max_pending: int = Field(default=3, ge=1, description="Jobs a user may have queued.")
    # Clips (GIFs, videos, round videos) paint for up to a minute: in the embedded mode
    # they get a queue and workers of their own, so photos never wait behind them.
    clip_lane: bool = True
    clip_workers: int = Field(default=1, ge=1, description="Clips painted at once.")
    clip_progress_every: float = Field(
        default=3.0, gt=0, description="Seconds between a clip's progress edits."
    )
    max_attempts: int = Field(default=5, ge=1)
    worker_warm: str = Field(
        default="all",
        description="Styles a Celery worker converts and compiles before it takes jobs: "
        "all (every offered style), none, or style ids separated by commas.",
    )
    # Celery mode: no worker tells this bot when places move, so it looks itself.
    line_refresh_every: float = Field(
        default=5.0,
        gt=0,
        description="Celery mode: seconds between refreshes of 'place in line' and the "
        "repairs of the job store (jobs of dead workers, jobs without a token).",
    )

    # FSM storage: memory by default, Redis when a URL is given.
    redis_url: str | None = None
    redis_prefix: str = Field(default="totoshka:fsm", description="Key prefix in Redis.")

    # Pictures.
    # Bounds: a result photo goes by sendPhoto (Telegram: width + height ≤ 10000, so a
    # longest side of 5000 fits any shape); the full-resolution file is a JPEG
    # document (the format stops at 65500 a side; 16384 is already 1 GB to paint).
    default_output_size: int = Field(
        default=1280, ge=0, le=5000, description="Longest side of a result; 0 = full size."
    )
    full_output_cap: int = Field(
        default=4096, ge=256, le=16384, description="Longest side for 'full resolution' results."
    )
    preview_size: int = Field(default=384, ge=64, le=1280)

    # Telegram behaviour.
    album_wait: float = Field(
        default=0.8, ge=0.0, description="Seconds to wait for the rest of an album."
    )
    send_retries: int = Field(default=6, ge=1)
    request_timeout: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="json: one JSON object a line (time, level, logger, message, job and "
        "user ids) for a log collector.",
    )

    # The operator's endpoints: /metrics (Prometheus), /healthz, /readyz. In webhook
    # mode they are on the webhook server unless a port of their own is given; in
    # polling mode only with a port.
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of /metrics, /healthz, /readyz."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics port listens on."
    )

    @field_validator("api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so a typo is one clear line at start-up; the value is never echoed.
        if value is None:  # only `InspectSettings` allows it
            return value
        left, sep, right = value.get_secret_value().partition(":")
        if not (sep and left.isdigit() and right):
            raise ValueError("must look like 123456789:ABC... (the token from @BotFather)")
        return value

    @field_validator("default_output_size")
    @classmethod
    def _known_size(cls, value: int) -> int:
        if value != 0 and value < 64:
            raise ValueError("default_output_size must be 0 (full) or at least 64 pixels")
        return value

    def token(self) -> str:
        """The raw token, for the few places that must send it (the HTTP session)."""
        if self.bot_token is None:
            raise ValueError("TOTOSHKA_BOT_TOKEN is not set")
        return self.bot_token.get_secret_value()


class InspectSettings(Settings):
    """The same settings with the token optional: `totoshka doctor` reports on a
    machine before the operator has one (and then skips the Bot API check)."""

    bot_token: SecretStr | None = None  # type: ignore[assignment]
