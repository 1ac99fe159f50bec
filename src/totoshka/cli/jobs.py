"""`totoshka jobs status`: what the job queue holds, for the operator (issue 15).

It reads the queue the configured bot uses (`Settings.jobs_backend`) and writes
nothing to it, so it is safe beside a live bot or worker: the embedded mode's SQLite
file per lane, or Celery mode's Redis job store per lane (plus a short broadcast to
find the workers). The token is not needed (`InspectSettings`): an operator on a
worker host may have none. No engine, no bot, no torch: the command must answer at
once on a box that is busy painting.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from totoshka.cli.group import settings_problem
from totoshka.config import InspectSettings
from totoshka.engine.errors import EngineError
from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.jobs.queue import JobRecord, JobState, QueueUnavailable
from totoshka.jobs.sqlite_queue import SQLiteJobQueue

app = typer.Typer(
    help="The job queue: depth, running and stuck jobs, workers.", no_args_is_help=True
)

LANES = ("photos", "clips")  # = celery_mode.LANES, which imports Celery
#: Embedded mode has no job time limit; a photo paints in seconds, a clip in a minute.
EMBEDDED_STUCK_AFTER = 600.0
EMBEDDED_WORKERS = "embedded: workers live in the bot process"
#: How long the worker broadcast waits for answers: workers busy painting still
#: answer control messages at once (a separate thread), so one second is plenty.
INSPECT_TIMEOUT = 1.0


@dataclass
class LaneStatus:
    name: str
    where: str
    counts: dict[str, int]
    running: list[JobRecord]
    workers: list[str] = field(default_factory=list)


def _settings() -> InspectSettings:
    try:
        return InspectSettings()
    except ValidationError as exc:
        raise EngineError(settings_problem(exc)) from None


def lane_path(queue_path: Path, lane: str) -> Path:
    """The lane's SQLite file, as `bot.wiring.make_queue` names it (the test holds
    the two together; wiring itself pulls in aiogram and the engine)."""
    if lane == "photos":
        return queue_path
    return queue_path.with_name(f"{queue_path.stem}-{lane}{queue_path.suffix}")


def _lanes(settings: InspectSettings) -> tuple[str, ...]:
    return LANES if settings.clip_lane else LANES[:1]


def _embedded(settings: InspectSettings) -> list[LaneStatus]:

    lanes = []
    for lane in _lanes(settings):
        path = lane_path(settings.queue_path, lane)
        # Opening creates a missing file: a typo in the path would then report an
        # empty queue instead of the mistake.
        if not path.is_file():
            raise EngineError(
                f"{lane} queue: no job database at {path} (has the bot run with this "
                "TOTOSHKA_QUEUE_PATH?)"
            )
        queue = None
        try:
            queue = SQLiteJobQueue(path)
            queue.ping()
            lanes.append(LaneStatus(lane, str(path), queue.stats(), queue.running()))
        except QueueUnavailable as exc:
            raise EngineError(f"{lane} queue at {path}: {exc}") from None
        except sqlite3.Error as exc:
            raise EngineError(f"{lane} queue at {path}: unreadable ({exc})") from None
        finally:
            if queue is not None:
                queue.close()
    return lanes


def _celery(settings: InspectSettings, config: CeleryConfig) -> list[LaneStatus]:
    import redis

    from totoshka.jobs.celery_mode import lane_config, make_app
    from totoshka.jobs.redis_store import RedisJobStore

    try:
        client = redis.Redis.from_url(
            config.redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )
    except ValueError as exc:  # not a redis:// URL; its text may hold a password: not echoed
        raise EngineError(f"job store: bad TOTOSHKA_REDIS_URL ({type(exc).__name__})") from None
    lanes = []
    try:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise EngineError(str(QueueUnavailable("job store", exc))) from None
        for lane in _lanes(settings):
            store = RedisJobStore(client, lane_config(config, lane).prefix)
            where = f"redis store, prefix {store.prefix}"
            lanes.append(LaneStatus(lane, where, store.stats(), store.running()))
    except redis.RedisError as exc:
        raise EngineError(str(QueueUnavailable("job store", exc))) from None
    finally:
        client.close()
    celery_app = make_app(config)
    _check_broker(celery_app)
    queues = {lane_config(config, lane.name).queue: lane for lane in lanes}
    replies = celery_app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    for hostname, consumed in sorted(replies.items()):
        for queue in consumed or []:
            lane_status = queues.get(queue.get("name"))
            if lane_status is not None:
                lane_status.workers.append(hostname)
    return lanes


def _check_broker(celery_app: Any) -> None:
    """A broker that does not answer: tokens cannot reach workers, so the queue is
    down whatever the store says (what the bot's /readyz says too)."""
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:
        raise EngineError(str(QueueUnavailable("broker", exc))) from None


def _require_scale_packages() -> None:
    """Celery mode needs the scale-out extra; say which command installs it (the
    message of `cli.run.require_packages`, whose module pulls in the bot)."""
    import importlib

    for module in ("celery", "redis"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise EngineError(
                f"TOTOSHKA_JOBS_BACKEND=celery needs the {module} package: install it with "
                "bash scripts/setup.sh scale (or pip install 'totoshka[scale]')"
            ) from None


def _job(job: JobRecord, now: float, stuck_after: float) -> dict[str, Any]:
    running_s = max(0.0, now - (job.started_at or now))
    return {
        "job_id": job.job_id,
        "user_key": job.user_key,
        "attempt": job.attempt,
        "running_s": round(running_s, 1),
        "stuck": running_s > stuck_after,
    }


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def report(settings: InspectSettings, stuck_after: float | None) -> dict[str, Any]:
    """The status as plain data: what ``--json`` prints and the table is drawn from."""
    config = None
    if settings.jobs_backend == "celery":
        _require_scale_packages()
        try:
            config = CeleryConfig.for_bot(settings)
        except ValidationError as exc:
            raise EngineError(settings_problem(exc)) from None
        lanes = _celery(settings, config)
        # past the hard time limit Celery has killed the task: still running = lost
        threshold = config.time_limit if stuck_after is None else stuck_after
    else:
        lanes = _embedded(settings)
        threshold = EMBEDDED_STUCK_AFTER if stuck_after is None else stuck_after
    now = time.time()
    out: dict[str, Any] = {"backend": settings.jobs_backend, "stuck_after_s": threshold}
    out["lanes"] = {}
    for lane in lanes:
        running = [_job(job, now, threshold) for job in lane.running]
        out["lanes"][lane.name] = {
            "where": lane.where,
            "queued": lane.counts.get(JobState.QUEUED.value, 0),
            "counts": lane.counts,
            "running": running,
            "stuck": [job["job_id"] for job in running if job["stuck"]],
            **({"workers": lane.workers} if config is not None else {}),
        }
    if config is None:
        out["workers"] = {"known": False, "note": EMBEDDED_WORKERS}
    else:
        seen = sorted({w for lane in lanes for w in lane.workers})
        out["workers"] = {"known": True, "seen": seen}
    return out


def _print(data: dict[str, Any]) -> None:
    echo = typer.echo
    echo(
        f"jobs backend: {data['backend']} (stuck = running over {_duration(data['stuck_after_s'])})"
    )
    for name, lane in data["lanes"].items():
        counts = lane["counts"]
        echo(f"\n{name}  ({lane['where']})")
        echo("  " + "  ".join(f"{state} {counts.get(state, 0)}" for state in JobState))
        for job in lane["running"]:
            mark = "  STUCK" if job["stuck"] else ""
            echo(
                f"  running {job['job_id']}  user {job['user_key']}  attempt {job['attempt']}"
                f"  for {_duration(job['running_s'])}{mark}"
            )
        if lane["stuck"]:
            echo(f"  stuck: {len(lane['stuck'])}")
        if "workers" in lane:
            echo(f"  workers: {', '.join(lane['workers']) or 'none answered'}")
    workers = data["workers"]
    echo(f"\nworkers: {workers['note'] if not workers['known'] else len(workers['seen'])}")


@app.command("status")
def status(
    stuck_after: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds after which a running job counts as stuck (default: Celery's "
            "hard time limit, $TOTOSHKA_JOBS_TIME_LIMIT; embedded: 600).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
) -> None:
    """Per lane: jobs queued, running (and for how long), stuck, done and failed; the
    workers seen. Exit 1 with one line when the queue cannot be reached."""
    data = report(_settings(), stuck_after)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(data)
