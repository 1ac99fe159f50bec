"""What the bot and every Celery worker must agree on, as typed settings.

Read from ``TOTOSHKA_*`` variables (the same names as always) by the command that
starts the process, then passed down; importing this module imports neither
Celery nor anything of the engine, so the bot can hold one in embedded mode too.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> str:
    # An explicit name per field: the fields keep short names, the variables their old ones.
    return f"TOTOSHKA_{name.upper()}"


class CeleryConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    broker_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("broker_url"))
    #: Job records, fair lines, counters and checkpoints (must be Redis); by default
    #: the broker when that is Redis.
    redis_url: str = Field("", validation_alias=_env("redis_url"))
    prefix: str = Field("totoshka:jobs", validation_alias=_env("jobs_prefix"))
    queue: str = Field("totoshka", validation_alias=_env("jobs_queue"))
    #: ``"package.module:factory"``; may stay None on the bot side.
    handler_factory: str | None = Field(None, validation_alias=_env("job_handler"))
    max_attempts: int = Field(5, ge=1, validation_alias=_env("jobs_max_attempts"))
    max_deferrals: int = Field(50, ge=0, validation_alias=_env("jobs_max_deferrals"))
    backoff_base: float = Field(2.0, ge=0, validation_alias=_env("jobs_backoff_base"))
    backoff_max: float = Field(300.0, ge=0, validation_alias=_env("jobs_backoff_max"))
    soft_time_limit: float = Field(600.0, gt=0, validation_alias=_env("jobs_soft_time_limit"))
    time_limit: float = Field(660.0, gt=0, validation_alias=_env("jobs_time_limit"))
    #: Redis broker only: must exceed the longest queue wait + work, or jobs run twice.
    visibility_timeout: float = Field(
        4 * 3600.0, gt=0, validation_alias=_env("jobs_visibility_timeout")
    )
    #: A running job's lease: a worker that stops renewing it (killed outright, its
    #: host gone) loses the job this many seconds later, on either broker, and the
    #: job goes back to the head of its user's line. The heartbeat renews it 4× as often.
    lease: float = Field(20.0, ge=2, validation_alias=_env("jobs_lease"))
    #: How often every worker and bot looks for lapsed leases and tokenless jobs.
    reconcile_every: float = Field(5.0, gt=0, validation_alias=_env("jobs_reconcile_every"))
    #: A job that has waited this long in line with no token gets one sent.
    token_grace: float = Field(30.0, ge=1, validation_alias=_env("jobs_token_grace"))
    #: Threads per worker process for ``ctx.run_blocking``; None = what the handler asks.
    cpu_workers: int | None = Field(None, ge=1, validation_alias=_env("jobs_cpu_workers"))

    @model_validator(mode="after")
    def _redis_from_broker(self) -> CeleryConfig:
        if not self.redis_url:
            redis = self.broker_url.startswith(("redis://", "rediss://"))
            object.__setattr__(
                self, "redis_url", self.broker_url if redis else "redis://127.0.0.1:6379/0"
            )
        return self

    @classmethod
    def for_bot(cls, settings: Any) -> CeleryConfig:
        """The environment's values, with the bot's own ``broker_url``, ``redis_url``
        and ``max_attempts`` (duck-typed: this package imports no bot code)."""
        overrides = {
            "broker_url": settings.broker_url,
            "redis_url": settings.redis_url or "",
            "max_attempts": settings.max_attempts,
        }
        job_handler = getattr(settings, "job_handler", None)
        if job_handler:
            overrides["handler_factory"] = job_handler
        return cls(**overrides)
