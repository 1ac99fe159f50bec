"""A Celery worker's operator view (issue 15): /metrics, /healthz, /readyz and JSON logs.

A real ``totoshka worker`` process (two prefork children, the local Redis as broker
and job store, a key prefix and queue of its own) runs jobs that go through every
outcome: done, retried after errors, deferred, failed after its attempts, and one
that kills its worker process on every attempt. Then its /metrics, the sum of what
its children counted, must say exactly that. Its log (``TOTOSHKA_LOG_FORMAT=json``)
must be JSON lines that name the jobs, with the bot token nowhere, although one job
fails with the token in its error, as Bot API errors carry it in their URL.

This module is also the worker's handler factory (``test_worker_metrics:make_handler``,
on the worker's PYTHONPATH): the end-to-end tests' handler, with a `Metrics` for the
task to count in, as the bot's `worker_handlers` gives it.
"""

from __future__ import annotations

import functools
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import celery_test_handler
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_jobs_celery import (
    REDIS_URL,
    WAIT,
    cleanup,
    make_config,
    redis_alive,
    wait_until,
    worker_env,
)

from totoshka.jobs import JobContext, JobHandlers
from totoshka.jobs.celery_mode import CeleryJobQueue
from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.observability import Metrics

__all__ = ["make_handler", "redis_alive"]  # the fixture, imported for the tests below

pytestmark = [pytest.mark.slow]

TOKEN = "123456789:AAE-worker-metrics-test_secret-half"
SECRET = TOKEN.split(":", 1)[1]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- the worker side: runs in the worker's pool children ----------------------------


@functools.cache
def _metrics() -> Metrics:
    return Metrics()  # one per worker process, as `worker_handlers` has it


async def _handler(payload: dict[str, Any], ctx: JobContext) -> None:
    if payload.get("kind") == "leak":  # what aiohttp says of a Bot API call that failed
        url = f"https://api.telegram.org/bot{TOKEN}/getFile"
        raise ConnectionError(f"Cannot connect to host for {url}")
    await celery_test_handler.handler(payload, ctx)


def make_handler() -> JobHandlers:
    return JobHandlers(_handler, on_failed=celery_test_handler.on_failed, metrics=_metrics())


# -- the test side -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> Samples:
    _, text = get(f"http://127.0.0.1:{port}/metrics")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def figure(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


class TotoshkaWorker:
    """``totoshka worker`` as a subprocess: the CLI's own start-up (the metrics folder,
    the log set-up, the endpoints), with this module's handler factory."""

    def __init__(self, cfg: CeleryConfig, tmp: Path, port: int) -> None:
        self.stdout, self.stderr = tmp / "worker.out", tmp / "worker.err"
        self.tmpdir = tmp / "worker-tmp"  # where its private metrics folder goes
        self.tmpdir.mkdir()
        env = {
            **worker_env(cfg),
            "TOTOSHKA_JOB_HANDLER": "test_worker_metrics:make_handler",
            "TOTOSHKA_BOT_TOKEN": TOKEN,
            "TOTOSHKA_MAX_ATTEMPTS": str(cfg.max_attempts),  # the bot's figure wins
            "TOTOSHKA_METRICS_PORT": str(port),
            "TOTOSHKA_METRICS_HOST": "127.0.0.1",
            "TOTOSHKA_LOG_FORMAT": "json",
            "TMPDIR": str(self.tmpdir),
            "TOTOSHKA_WORKER_WARM": "none",  # this handler paints nothing
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "totoshka", "worker", "--concurrency", "2"],
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"totoshka worker exited:\n{self.stderr.read_text()[-4000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=60)


JOBS = [  # (user, name, kind)
    ("A", "A-ok", "ok"),
    ("B", "B-ok", "ok"),
    ("C", "C-flaky", "flaky"),  # two errors, then done
    ("D", "D-poison", "poison"),  # three errors: failed
    ("E", "E-defer", "defer"),  # a flood wait, then done
    ("F", "F-leak", "leak"),  # three errors with the token in them: failed
    ("G", "G-suicide", "suicide"),  # kills its pool child on three runs: failed
]
EXPECTED = {  # what happened, with max_attempts=3
    ("totoshka_job_attempts_total", ()): 1 + 1 + 3 + 3 + 2 + 3 + 3,
    ("totoshka_jobs_done_total", ()): 4,
    ("totoshka_jobs_failed_total", ()): 3,
    ("totoshka_jobs_retried_total", (("reason", "error"),)): 2 + 2 + 2,
    ("totoshka_jobs_retried_total", (("reason", "deferred"),)): 1,
    ("totoshka_jobs_retried_total", (("reason", "worker_lost"),)): 2,  # runs 2 and 3
    ("totoshka_jobs_running", ()): 0,
}


def photos(samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | None]:
    return {
        (name, extra): figure(samples, name, lane="photos", **dict(extra))
        for name, extra in EXPECTED
    }


def test_worker_metrics_and_json_logs_show_what_happened(redis_alive: None, tmp_path: Path) -> None:
    cfg = make_config(REDIS_URL)
    q = CeleryJobQueue(cfg)
    port = free_port()
    worker = None
    try:
        d = str(tmp_path)
        ids = {name: q.submit(user, {"dir": d, "name": name, "kind": kind}).job_id
               for user, name, kind in JOBS}  # fmt: skip
        worker = TotoshkaWorker(cfg, tmp_path, port)

        def ready() -> bool:
            worker.check_alive()
            try:
                return get(f"http://127.0.0.1:{port}/readyz")[0] == 200
            except OSError:  # not listening yet
                return False

        wait_until(ready, "the worker's /readyz")
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status": "ok"}')

        def finished() -> bool:
            worker.check_alive()
            s = q.stats()
            return s["done"] == 4 and s["failed"] == 3

        wait_until(finished, "every job to finish")
        want = {key: float(value) for key, value in EXPECTED.items()}
        # the store hears of a job's end a moment before the child counts it
        wait_until(lambda: photos(scrape(port)) == want, "the figures to add up")
        samples = scrape(port)
        assert photos(samples) == want
        # every job waited in line once (its first run), and no stage else ran here
        assert figure(samples, "totoshka_job_stage_seconds_count", stage="wait") == len(JOBS)
        assert figure(samples, "totoshka_job_stage_seconds_count", stage="paint") == 0
        # the other lane, idle, is there at zero; no label names a job or a user
        assert figure(samples, "totoshka_jobs_done_total", lane="clips") == 0
        assert figure(samples, "totoshka_jobs_running", lane="clips") == 0
        labels = {value for _, pairs in samples for _, value in pairs}
        assert not labels & set(ids.values())
        # the gauge adds its live children up: no series per process
        assert all("pid" not in dict(pairs) for _, pairs in samples)
        assert sorted((tmp_path / "failed.txt").read_text().splitlines()) == [
            "D-poison ValueError",
            "F-leak ConnectionError",
            "G-suicide WorkerLost",
        ]
        metrics_dirs = list(worker.tmpdir.glob("totoshka-metrics-*"))
        assert len(metrics_dirs) == 1 and any(metrics_dirs[0].iterdir())  # the children's
    finally:
        code = worker.stop() if worker is not None else 0
        cleanup(cfg, q)
    assert code == 0
    assert list(worker.tmpdir.glob("totoshka-metrics-*")) == []  # its folder went with it

    # -- the log: JSON lines, the jobs named, the token nowhere ---------------------
    err, out = worker.stderr.read_text(), worker.stdout.read_text()
    assert SECRET not in err + out, "the token leaked into the worker's output"
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    named = {line["job_id"] for line in lines if "job_id" in line}
    assert named == set(ids.values())
    users = {line["user_id"] for line in lines if "job_id" in line}
    assert users == set("ABCDEFG")
    leak = [line for line in lines if line.get("job_id") == ids["F-leak"]]
    assert any("<token>" in line["message"] for line in leak)  # redacted, not silent
    assert any(line["message"].startswith("inference:") for line in lines)  # diagnose
    assert any("ready" in line["message"] for line in lines if line["logger"].startswith("celery"))
    # stdout: no banner; Celery's shutdown notice ("worker: Warm shutdown") at most
    assert all(line.startswith("worker: ") for line in out.splitlines() if line.strip())


def test_importing_the_worker_command_leaves_prometheus_client_unimported() -> None:
    """`totoshka worker` must set its multiprocess folder before prometheus_client is
    imported (the library picks its mode at import): its module may not import it."""
    code = (
        "import sys, totoshka.cli.main, totoshka.cli.run\nprint('prometheus_client' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "False"
