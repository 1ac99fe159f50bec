"""`totoshka run` (long polling), `totoshka webhook` and `totoshka worker` (Celery mode).

Configuration comes from the environment / ``.env`` (`totoshka.config.Settings`,
prefix ``TOTOSHKA_``); the few options here override it for one run. A missing
token or a bad value is reported in one line, never with a traceback that could
echo the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from totoshka.cli.group import settings_problem
from totoshka.config import Settings
from totoshka.engine.errors import EngineError

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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of this worker's /metrics, /healthz, /readyz (default "
            "$TOTOSHKA_METRICS_PORT; each worker on a host needs its own).",
        ),
    ] = None,
) -> None:
    """Run a Celery worker that paints and delivers jobs queued by a bot in celery mode.

    With a metrics port it serves /metrics (its pool's figures added up), /healthz
    and /readyz; $TOTOSHKA_LOG_FORMAT=json makes its log JSON lines."""
    settings = _settings(jobs_backend="celery", metrics_port=metrics_port)
    # prometheus_client picks its mode when first imported: the folder comes first
    with pool_metrics_dir(settings.metrics_port is not None) as metrics_dir:
        _worker(settings, metrics_dir, concurrency, loglevel, lane, hostname)


def _worker(
    settings: Settings,
    metrics_dir: str | None,
    concurrency: int | None,
    loglevel: str,
    lane: str,
    hostname: str | None,
) -> None:
    # Only here, and only heavy modules: importing totoshka.jobs or totoshka.bot.logs
    # imports prometheus_client, which must come after `pool_metrics_dir`.
    from celery import Celery

    from totoshka.bot import ops  # aiohttp
    from totoshka.bot.wiring import WORKER_HANDLERS
    from totoshka.jobs.celery_mode import LANES, CeleryConfig, CeleryJobQueue, run_worker

    if lane not in (*LANES, "all"):
        raise typer.BadParameter(f"one of: {', '.join(LANES)}, all", param_hint="--lane")
    ops.worker_logging(loglevel, settings.log_format, settings.token())
    json_logs = settings.log_format == "json"
    announce_inference(settings, to_log=json_logs)
    warm_styles(settings, to_log=json_logs)
    config = CeleryConfig.for_bot(settings)  # TOTOSHKA_JOBS_* and the broker, the bot's values
    lanes = LANES if lane == "all" else (lane,)
    endpoints = None
    if metrics_dir is not None and settings.metrics_port is not None:
        # /readyz asks the job store and the broker (the same for every lane) through an
        # app without tasks: a second worker app's tasks would clash with the worker's
        queue = CeleryJobQueue(config, celery_app=Celery("totoshka-ops", broker=config.broker_url))
        endpoints = ops.WorkerEndpoints(
            settings.metrics_host, settings.metrics_port, metrics_dir, queue.ping, lanes
        )
        try:
            endpoints.start()
        except OSError as exc:  # painting matters more than being watched: go on
            logging.getLogger("totoshka.worker").error(
                "no /metrics: port %s: %s (give each worker on a host its own "
                "--metrics-port or TOTOSHKA_METRICS_PORT)",
                settings.metrics_port,
                exc.strerror or type(exc).__name__,
            )
            endpoints = None
    try:
        run_worker(
            config,
            # the bot's handler, or another by dotted path ($TOTOSHKA_JOB_HANDLER)
            handler_factory=config.handler_factory or WORKER_HANDLERS,
            concurrency=concurrency,
            loglevel=loglevel,
            lanes=lanes,
            hostname=hostname,
            quiet=json_logs,  # no banner: every line of the log is JSON
        )
    finally:
        if endpoints is not None:
            endpoints.stop()


@contextlib.contextmanager
def pool_metrics_dir(wanted: bool) -> Iterator[str | None]:
    """A fresh, private ``PROMETHEUS_MULTIPROC_DIR`` for this worker and the pool it
    forks, removed when the worker stops (None, and nothing set, unless ``wanted``).

    prometheus_client reads the variable once, when first imported, so this runs
    before anything imports it (this module imports nothing that does at its top);
    a folder shared with another worker, or left from an earlier run, would add its
    figures in.
    """
    if not wanted:
        yield None
        return
    if "prometheus_client" in sys.modules:  # a bug here, not a setting: say so at once
        raise RuntimeError("prometheus_client was imported before its multiprocess folder")
    path = tempfile.mkdtemp(prefix="totoshka-metrics-")
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # the pool children inherit it
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(path, ignore_errors=True)


def announce_inference(settings: Settings, *, to_log: bool = False) -> None:
    """The start-up inference line of a worker host, measured in a short-lived child:
    Celery forks its pool from this process, and a forked OpenVINO or torch thread
    pool is broken; the child also leaves the converted models on disk for them.

    ``to_log``: the child's lines become log records (JSON logs: no line of plain
    text in between); else they go straight to stderr, as Celery's log does."""
    _engine_child(settings, "totoshka.engine.diagnose", [], to_log=to_log)


def warm_styles(settings: Settings, *, to_log: bool = False) -> None:
    """Convert and compile the styles this worker serves (`TOTOSHKA_WORKER_WARM`)
    before it takes a job, in a short-lived child for the same reason as
    `announce_inference`: on a fresh host each style costs its first user tens of
    seconds of conversion otherwise. What is on disk already costs about a second."""
    if settings.worker_warm.strip().lower() == "none":
        return
    _engine_child(
        settings, "totoshka.engine.warm", ["--styles", settings.worker_warm], to_log=to_log
    )


def _engine_child(settings: Settings, module: str, extra: list[str], *, to_log: bool) -> None:
    import subprocess

    command = [sys.executable, "-m", module, *extra]
    for flag, value in (
        ("--cache-dir", settings.cache_dir),
        ("--mirror", settings.model_mirror),
        ("--data-dir", settings.data_dir),
    ):
        if value:
            command += [flag, str(value)]
    if not to_log:
        subprocess.run(command, check=False, stdin=subprocess.DEVNULL)
        return
    out = subprocess.run(
        command,
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    log = logging.getLogger("totoshka.worker")
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip():
            log.log(logging.WARNING if line.startswith("warning") else logging.INFO, "%s", line)
