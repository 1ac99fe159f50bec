"""`totoshka run` (long polling), `totoshka webhook` and `totoshka worker` (Celery mode).

Configuration comes from the environment / ``.env`` (`totoshka.config.Settings`,
prefix ``TOTOSHKA_``); the few options here override it for one run. A missing
token or a bad value is reported in one line, never with a traceback that could
echo the environment.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from totoshka.bot.logs import install_redaction
from totoshka.cli.group import settings_problem
from totoshka.config import Settings
from totoshka.engine.errors import EngineError
from totoshka.jobs.celery_settings import CeleryConfig

SCALE_FIX = "bash scripts/setup.sh scale (or pip install 'totoshka[scale]')"


def require_packages(settings: Settings) -> None:
    """Celery mode and Redis state need the scale-out packages, which the default
    install leaves out: say so in one line, with the command that fixes it."""
    import importlib

    needed = []
    if settings.jobs_backend == "celery":
        needed += [("celery", "TOTOSHKA_JOBS_BACKEND=celery"), ("redis", "Celery mode")]
    if settings.redis_url:
        needed.append(("redis", "TOTOSHKA_REDIS_URL"))
    for module, why in needed:
        try:
            importlib.import_module(module)
        except ImportError:
            raise EngineError(
                f"{why} needs the {module} package: install it with {SCALE_FIX}"
            ) from None


def _settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise EngineError(settings_problem(exc)) from None
    require_packages(settings)
    return settings


def run(
    api_url: Annotated[
        str | None, typer.Option(help="Bot API base URL (default $TOTOSHKA_API_URL or Telegram).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Jobs run at once (default: sized to the machine).")
    ] = None,
) -> None:
    """Run the bot with long polling (embedded job queue and workers by default)."""
    from totoshka.bot.app import run_polling

    run_polling(_settings(api_url=api_url, workers=workers))


def webhook(
    url: Annotated[
        str | None, typer.Option(help="Public URL Telegram posts to ($TOTOSHKA_WEBHOOK_URL).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to listen on.")] = None,
) -> None:
    """Run the bot as a webhook server (secret token from $TOTOSHKA_WEBHOOK_SECRET)."""
    from totoshka.bot.app import run_webhook

    run_webhook(_settings(webhook_url=url, webhook_host=host, webhook_port=port))


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: one per two cores).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    lane: Annotated[
        str,
        typer.Option(
            help="Jobs to take: photos, clips or all. One worker per lane: no clip "
            "ever holds up a photo."
        ),
    ] = "all",
    hostname: Annotated[
        str | None,
        typer.Option(
            help="Celery node name, unique per worker (default: "
            "totoshka-<lane>-<pid>@<host>, so two workers on one host never clash)."
        ),
    ] = None,
) -> None:
    """Run a Celery worker that paints and delivers jobs queued by a bot in celery mode."""
    settings = _settings(jobs_backend="celery")
    from totoshka.bot.wiring import WORKER_HANDLERS
    from totoshka.jobs.celery_mode import LANES, run_worker

    if lane not in (*LANES, "all"):
        raise typer.BadParameter(f"one of: {', '.join(LANES)}, all", param_hint="--lane")
    install_redaction(settings.token())
    announce_inference(settings)
    run_worker(
        CeleryConfig.for_bot(settings),  # TOTOSHKA_JOBS_* and the broker, with the bot's values
        handler_factory=WORKER_HANDLERS,
        concurrency=concurrency,
        loglevel=loglevel,
        lanes=LANES if lane == "all" else (lane,),
        hostname=hostname,
    )


def announce_inference(settings: Settings) -> None:
    """The start-up inference line of a worker host, measured in a short-lived child:
    Celery forks its pool from this process, and a forked OpenVINO or torch thread
    pool is broken; the child also leaves the converted models on disk for them."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "totoshka.engine.diagnose"]
    for flag, value in (
        ("--cache-dir", settings.cache_dir),
        ("--mirror", settings.model_mirror),
        ("--data-dir", settings.data_dir),
    ):
        if value:
            command += [flag, str(value)]
    subprocess.run(command, check=False, stdin=subprocess.DEVNULL)
