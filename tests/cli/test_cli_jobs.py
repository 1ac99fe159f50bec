"""`totoshka jobs status` (issue 15): the operator sees the queue.

Real SQLite queues in tmp_path and the machine's Redis (a prefix of its own per
test, deleted after), filled through the queues' own API, read back by the CLI.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from totoshka.cli.jobs import lane_path
from totoshka.cli.main import app
from totoshka.jobs.queue import JobState
from totoshka.jobs.redis_store import RedisJobStore
from totoshka.jobs.sqlite_queue import SQLiteJobQueue

REDIS_URL = "redis://127.0.0.1:6379/15"
OWNER = "test-host:1:cli"


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A port nothing listens on while the block runs (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run(*args: str):
    return CliRunner().invoke(app, ["jobs", *args])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded mode on a queue path in tmp_path, away from any .env."""
    monkeypatch.chdir(tmp_path)
    for name in ("TOTOSHKA_JOBS_BACKEND", "TOTOSHKA_REDIS_URL", "TOTOSHKA_CLIP_LANE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "state" / "jobs.sqlite3"
    monkeypatch.setenv("TOTOSHKA_QUEUE_PATH", str(path))
    return path


def fill(path: Path) -> str:
    """Two queued, one running, one done, one failed; returns the running job's id."""
    queue = SQLiteJobQueue(path)
    try:
        for user in ("ann", "bob", "cat", "dan", "eve"):
            queue.submit(user, {"photo": user})
        done = queue.claim(OWNER, 60)
        failed = queue.claim(OWNER, 60)
        running = queue.claim(OWNER, 60)
        assert done and failed and running
        queue.complete(done.job_id, OWNER)
        queue.fail(failed.job_id, OWNER, "boom")
        return running.job_id
    finally:
        queue.close()


def test_embedded_status_counts_lanes_and_lists_the_running_job(env: Path) -> None:
    running = fill(env)
    fill(lane_path(env, "clips"))
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["backend"] == "embedded"
    assert set(data["lanes"]) == {"photos", "clips"}
    photos = data["lanes"]["photos"]
    assert photos["queued"] == 2
    assert photos["counts"] == {"queued": 2, "running": 1, "done": 1, "failed": 1, "cancelled": 0}
    [job] = photos["running"]
    assert (job["job_id"], job["user_key"], job["attempt"]) == (running, "cat", 1)
    assert photos["stuck"] == []
    assert data["workers"] == {"known": False, "note": "embedded: workers live in the bot process"}

    table = run("status")
    assert table.exit_code == 0, table.stderr
    assert running in table.stdout and "workers live in the bot process" in table.stdout


def test_a_job_started_long_ago_is_stuck(env: Path) -> None:
    running = fill(env)
    fill(lane_path(env, "clips"))
    with sqlite3.connect(env) as db:  # started at the epoch's first second
        db.execute("UPDATE jobs SET started_at = 1.0 WHERE id = ?", (running,))
    data = json.loads(run("status", "--json").stdout)
    assert data["lanes"]["photos"]["stuck"] == [running]
    assert data["lanes"]["clips"]["stuck"] == []
    assert "STUCK" in run("status").stdout


def test_clip_lane_off_shows_one_lane(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(env)
    monkeypatch.setenv("TOTOSHKA_CLIP_LANE", "false")
    data = json.loads(run("status", "--json").stdout)
    assert list(data["lanes"]) == ["photos"]


def test_missing_database_is_one_line_and_creates_nothing(env: Path) -> None:
    result = run("status", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no job database at" in result.stderr
    assert not env.exists()


def test_lane_files_are_the_ones_the_bot_opens(tmp_path: Path) -> None:
    from totoshka.bot.wiring import make_queue
    from totoshka.config import Settings

    settings = Settings(bot_token="123456:ABC-test", queue_path=tmp_path / "q.sqlite3")
    for lane in ("photos", "clips"):
        queue = make_queue(settings, lane=lane)
        assert isinstance(queue, SQLiteJobQueue)
        assert queue.path == lane_path(settings.queue_path, lane)
        queue.close()


def test_status_loads_no_torch(env: Path) -> None:
    fill(env)
    fill(lane_path(env, "clips"))
    code = (
        "import sys; from typer.testing import CliRunner; from totoshka.cli.main import app\n"
        "assert CliRunner().invoke(app, ['jobs', 'status']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'openvino', 'aiogram') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.fixture
def celery_env(env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Celery mode on Redis db 15 with a prefix and broker queue of this test's own."""
    prefix = f"test-cli-jobs-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TOTOSHKA_JOBS_BACKEND", "celery")
    monkeypatch.setenv("TOTOSHKA_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TOTOSHKA_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("TOTOSHKA_JOBS_PREFIX", prefix)
    monkeypatch.setenv("TOTOSHKA_JOBS_QUEUE", prefix)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def test_celery_status_reads_the_redis_store(celery_env: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    photos = RedisJobStore(client, celery_env)
    clips = RedisJobStore(client, f"{celery_env}:clips")
    for user in ("ann", "bob", "cat"):
        photos.submit(user, {"photo": user})
    done, running = photos.claim("token-1"), photos.claim("token-2")
    assert done and running
    photos.start(done, "token-1", "run-1", lease=60)
    photos.finish(done, JobState.DONE)
    photos.start(running, "token-2", "run-2", lease=60)
    clips.submit("dan", {"clip": "dan"})
    client.close()

    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    lane = data["lanes"]["photos"]
    assert lane["counts"] == {"queued": 1, "running": 1, "done": 1, "failed": 0, "cancelled": 0}
    assert [(j["job_id"], j["user_key"], j["attempt"]) for j in lane["running"]] == [
        (running, "bob", 1)
    ]
    assert data["lanes"]["clips"]["queued"] == 1 and data["lanes"]["clips"]["running"] == []
    assert data["workers"] == {"known": True, "seen": []}  # no worker on this test's queue
    assert data["stuck_after_s"] == 660.0  # Celery's hard time limit


def test_unreachable_redis_is_one_line(celery_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with dead_port() as dead:
        monkeypatch.setenv("TOTOSHKA_REDIS_URL", f"redis://:s3cret@127.0.0.1:{dead}/0")
        result = run("status")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "totoshka: error: job store unreachable (ConnectionError)\n"
