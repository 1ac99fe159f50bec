"""Celery mode end to end: a real ``celery worker`` subprocess, real Redis / RabbitMQ.

The services must be up (CI starts them); these tests fail loudly, never skip, when
they are not. Each test uses its own key prefix and broker queue, so they do not
disturb anything else using the same servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from totoshka.jobs import JobQueue, JobState, TooManyPending
from totoshka.jobs.celery_mode import LANES, CeleryJobQueue, lane_config
from totoshka.jobs.celery_settings import CeleryConfig

HERE = Path(__file__).parent
WAIT = 180.0
REDIS_URL = os.environ.get("TOTOSHKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
RABBIT_URL = os.environ.get("TOTOSHKA_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def wait_until(cond: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def make_config(broker_url: str) -> CeleryConfig:
    tag = uuid.uuid4().hex[:8]
    return CeleryConfig(
        broker_url=broker_url,
        redis_url=REDIS_URL,
        prefix=f"totoshka-test:{tag}",
        queue=f"totoshka-test-{tag}",
        handler_factory="celery_test_handler:make_handler",
        max_attempts=3,
        backoff_base=0.1,
        backoff_max=0.5,
        soft_time_limit=120,
        time_limit=150,
        cpu_workers=1,
    )


def worker_env(cfg: CeleryConfig) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        "TOTOSHKA_BROKER_URL": cfg.broker_url,
        "TOTOSHKA_REDIS_URL": cfg.redis_url,
        "TOTOSHKA_JOBS_PREFIX": cfg.prefix,
        "TOTOSHKA_JOBS_QUEUE": cfg.queue,
        "TOTOSHKA_JOB_HANDLER": cfg.handler_factory or "",
        "TOTOSHKA_JOBS_MAX_ATTEMPTS": str(cfg.max_attempts),
        "TOTOSHKA_JOBS_BACKOFF_BASE": str(cfg.backoff_base),
        "TOTOSHKA_JOBS_BACKOFF_MAX": str(cfg.backoff_max),
        "TOTOSHKA_JOBS_SOFT_TIME_LIMIT": str(cfg.soft_time_limit),
        "TOTOSHKA_JOBS_TIME_LIMIT": str(cfg.time_limit),
        "TOTOSHKA_JOBS_LEASE": str(cfg.lease),
        "TOTOSHKA_JOBS_RECONCILE_EVERY": str(cfg.reconcile_every),
        "TOTOSHKA_JOBS_TOKEN_GRACE": str(cfg.token_grace),
    }


class Worker:
    """``celery -A totoshka.jobs.celery_worker worker`` as a subprocess."""

    def __init__(
        self,
        cfg: CeleryConfig,
        log: Path,
        *,
        via_run_worker: bool = False,
        lanes: tuple[str, ...] = LANES,
        session: bool = False,
    ) -> None:
        """``session``: a process group of its own, so that a test can kill the whole
        worker (main process and pool children) at once."""
        self.log = log
        self._log_file = log.open("w", encoding="utf-8")
        # Either the documented CLI or `run_worker()` (what `totoshka worker` calls).
        run_worker = (
            "from totoshka.jobs.celery_mode import run_worker;"
            " from totoshka.jobs.celery_settings import CeleryConfig;"
            f" run_worker(CeleryConfig(), concurrency=1, lanes={lanes!r},"
            " extra_args=['--without-gossip', '--without-mingle', '--without-heartbeat'])"
        )
        argv = (
            [sys.executable, "-c", run_worker]
            if via_run_worker
            else [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "totoshka.jobs.celery_worker",
                "worker",
                f"--queues={cfg.queue}",
                "--concurrency=1",
                "--pool=prefork",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
            ]
        )
        self.proc = subprocess.Popen(
            argv,
            env=worker_env(cfg),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=session,
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"celery worker exited:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log_file.close()


def cleanup(cfg: CeleryConfig, q: CeleryJobQueue) -> None:
    for key in q.store.r.scan_iter(match=q.store.prefix + ":*", count=500):
        q.store.r.delete(key)
    if cfg.broker_url.startswith("amqp"):
        with q.app.connection_for_write() as conn:
            for lane in LANES:
                conn.default_channel.queue_delete(lane_config(cfg, lane).queue)
    else:
        broker = redis.Redis.from_url(cfg.broker_url)
        for key in broker.scan_iter(match=f"*{cfg.queue}*"):  # the queue + kombu bindings
            broker.delete(key)


@pytest.fixture
def redis_alive() -> None:
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()  # fails loudly if down


@pytest.fixture
def redis_queue(redis_alive: None) -> Iterator[tuple[CeleryConfig, CeleryJobQueue]]:
    cfg = make_config(REDIS_URL).model_copy(update={"token_grace": 1.0})
    q = CeleryJobQueue(cfg)
    yield cfg, q
    cleanup(cfg, q)


def test_bot_side_contract_without_workers(
    redis_queue: tuple[CeleryConfig, CeleryJobQueue],
) -> None:
    cfg, q = redis_queue
    assert isinstance(q, JobQueue)
    a = [q.submit("A", {"i": i}, max_pending=3).job_id for i in range(3)]
    with pytest.raises(TooManyPending) as err:
        q.submit("A", {"i": 3}, max_pending=3)
    assert err.value.limit == 3
    b = q.submit("B", {"i": 0}, dedupe_key="upd-1")
    again = q.submit("B", {"i": 0}, dedupe_key="upd-1")
    assert again.job_id == b.job_id and again.duplicate
    assert b.position == 2  # B's single job is second in line, after A's oldest
    assert [q.position(j) for j in a] == [1, 3, 4]
    assert q.pending_count("A") == 3 and q.pending_count("B") == 1
    assert q.stats()["queued"] == 4

    assert q.cancel_user("A") == a
    assert q.position(a[0]) is None
    assert q.position(b.job_id) == 1
    assert q.pending_count("A") == 0
    assert q.stats() == {"queued": 1, "running": 0, "done": 0, "failed": 0, "cancelled": 3}
    record = q.get(a[0])
    assert record is not None and record.state is JobState.CANCELLED
    q.mark(b.job_id, "status_message_id", 7)
    assert q.job_state(b.job_id) == {"status_message_id": 7}

    broker = redis.Redis.from_url(cfg.broker_url)
    assert broker.llen(cfg.queue) == 4  # one token per accepted job (3 now cancelled)
    broker.delete(cfg.queue)  # the broker loses its messages...
    assert q.reconcile() == {"photos": ([], 0)}  # ...which no one can tell at once;
    # once the line has waited the grace with no worker claiming, the reconciler
    # counts the tokens afresh and sends one per job still in line
    sent: list[int] = []
    wait_until(lambda: sent.append(q.reconcile()["photos"][1]) or sent[-1] > 0, "a token")
    assert sent[-1] == 1 and broker.llen(cfg.queue) == 1
    assert q.reconcile() == {"photos": ([], 0)}  # and only once


def run_end_to_end(cfg: CeleryConfig, tmp_path: Path, *, via_run_worker: bool = False) -> None:
    """Fairness, RetryLater, retried exceptions and a poison job on a real worker."""
    q = CeleryJobQueue(cfg)
    try:
        d = str(tmp_path)
        jobs = {}
        for user, name, kind in [
            ("A", "A0", "ok"), ("A", "A1", "ok"), ("A", "A2", "ok"), ("B", "B0", "ok"),
            ("C", "C-defer", "defer"), ("C", "C-flaky", "flaky"), ("C", "C-poison", "poison"),
        ]:  # fmt: skip
            jobs[name] = q.submit(user, {"dir": d, "name": name, "kind": kind}).job_id
        worker = Worker(cfg, tmp_path / "worker.log", via_run_worker=via_run_worker)
        try:

            def finished() -> bool:
                worker.check_alive()
                s = q.stats()
                return s["done"] == 6 and s["failed"] == 1

            wait_until(finished, "all jobs to finish")
        finally:
            worker.stop()

        runs = [line.split() for line in (tmp_path / "runs.txt").read_text().splitlines()]
        first_runs = [name for name, attempt in runs if attempt == "1"]
        assert [n for n in first_runs if n[0] in "AB"] == ["A0", "B0", "A1", "A2"]  # fair
        assert first_runs.index("C-defer") < first_runs.index("A1")  # C also served in turn
        attempts = Counter(name for name, _ in runs)
        assert attempts["C-defer"] == 2  # RetryLater: once more
        assert attempts["C-flaky"] == 3  # two errors, then success
        assert attempts["C-poison"] == 3  # max_attempts, then it stops looping
        sent = [line.split() for line in (tmp_path / "sent.txt").read_text().splitlines()]
        assert sorted(name for name, *_ in sent) == ["A0", "A1", "A2", "B0", "C-defer", "C-flaky"]
        assert all(thread.startswith("totoshka-cpu") for *_, thread in sent)
        assert (tmp_path / "failed.txt").read_text().split("\n")[:-1] == ["C-poison ValueError"]

        poison = q.get(jobs["C-poison"])
        assert poison is not None and poison.state is JobState.FAILED and poison.attempt == 3
        assert poison.last_error == "ValueError: poison payload"
        flaky = q.get(jobs["C-flaky"])
        assert flaky is not None and flaky.state is JobState.DONE
        assert flaky.checkpoints == {"sent": True}
        assert q.pending_count("A") == q.pending_count("C") == 0
    finally:
        cleanup(cfg, q)


def test_end_to_end_with_redis_broker(redis_alive: None, tmp_path: Path) -> None:
    run_end_to_end(make_config(REDIS_URL), tmp_path)


def test_end_to_end_with_rabbitmq_broker(redis_alive: None, tmp_path: Path) -> None:
    run_end_to_end(make_config(RABBIT_URL), tmp_path, via_run_worker=True)


def test_killed_worker_process_job_is_redelivered_and_sent_once(
    redis_alive: None, tmp_path: Path
) -> None:
    cfg = make_config(REDIS_URL)
    q = CeleryJobQueue(cfg)
    try:
        d = str(tmp_path)
        hang = q.submit("A", {"dir": d, "name": "H", "kind": "hang"}).job_id
        other = q.submit("B", {"dir": d, "name": "B0", "kind": "ok"}).job_id
        worker = Worker(cfg, tmp_path / "worker.log")
        try:
            pid_file = tmp_path / "hang.pid"

            def hanging() -> bool:
                worker.check_alive()
                return pid_file.exists()

            wait_until(hanging, "the job to hang after its side effect")
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the prefork child running it

            def finished() -> bool:
                worker.check_alive()
                return q.stats()["done"] == 2

            wait_until(finished, "the redelivered job to finish")
        finally:
            worker.stop()
        sent = [line.split()[0] for line in (tmp_path / "sent.txt").read_text().splitlines()]
        assert sorted(sent) == ["B0", "H"]  # the checkpoint stopped a second send
        job = q.get(hang)
        assert job is not None and job.state is JobState.DONE and job.attempt == 2
        assert q.get(other) is not None
    finally:
        cleanup(cfg, q)


def test_soft_time_limit_counts_as_a_failed_attempt(redis_alive: None, tmp_path: Path) -> None:
    # Generous max_attempts: on a loaded machine a retry may hit the 2 s limit as well;
    # what matters is that the interrupted run is retried and nothing is sent twice.
    cfg = make_config(REDIS_URL).model_copy(
        update={"soft_time_limit": 2, "time_limit": 60, "max_attempts": 10}
    )
    q = CeleryJobQueue(cfg)
    try:
        jid = q.submit("A", {"dir": str(tmp_path), "name": "H", "kind": "hang"}).job_id
        worker = Worker(cfg, tmp_path / "worker.log")
        try:

            def finished() -> bool:
                worker.check_alive()
                return q.stats()["done"] == 1

            wait_until(finished, "the job to finish after its soft time limit")
        finally:
            worker.stop()
        job = q.get(jid)
        assert job is not None and job.state is JobState.DONE and job.attempt >= 2
        assert job.last_error is not None and "SoftTimeLimitExceeded" in job.last_error
        sent = (tmp_path / "sent.txt").read_text().splitlines()
        assert len(sent) == 1  # the retry found the checkpoint
    finally:
        cleanup(cfg, q)


def test_job_that_kills_its_worker_every_time_stops_looping(
    redis_alive: None, tmp_path: Path
) -> None:
    cfg = make_config(REDIS_URL)  # max_attempts=3
    q = CeleryJobQueue(cfg)
    try:
        d = str(tmp_path)
        bomb = q.submit("A", {"dir": d, "name": "X", "kind": "suicide"}).job_id
        worker = Worker(cfg, tmp_path / "worker.log")
        try:

            def failed() -> bool:
                worker.check_alive()
                return q.stats()["failed"] == 1

            wait_until(failed, "the poison job to be marked failed")
            ok = q.submit("B", {"dir": d, "name": "B0", "kind": "ok"}).job_id

            def done() -> bool:
                worker.check_alive()
                return q.stats()["done"] == 1

            wait_until(done, "the worker to go on with other jobs")
        finally:
            worker.stop()
        runs = (tmp_path / "runs.txt").read_text().splitlines()
        assert [r for r in runs if r.startswith("X ")] == ["X 1", "X 2", "X 3"]
        job = q.get(bomb)
        assert job is not None and job.state is JobState.FAILED and job.attempt == 4
        assert job.last_error is not None and job.last_error.startswith("WorkerLost")
        assert (tmp_path / "failed.txt").read_text().splitlines() == ["X WorkerLost"]
        assert q.pending_count("A") == 0
        okj = q.get(ok)
        assert okj is not None and okj.state is JobState.DONE
    finally:
        cleanup(cfg, q)


def test_a_clip_lane_never_holds_up_photos(redis_alive: None, tmp_path: Path) -> None:
    """One worker per lane, on one host (RabbitMQ: unique hostnames): a clip painting
    for ever on the clips' worker, and the photos behind it still go through; no
    worker takes the other lane's jobs."""
    cfg = make_config(RABBIT_URL)
    photos, clips = CeleryJobQueue(cfg), CeleryJobQueue(cfg, lane="clips")
    d = str(tmp_path)
    workers = []
    try:
        clip = clips.submit("A", {"dir": d, "name": "clip", "kind": "hang"}).job_id
        shots = [photos.submit(u, {"dir": d, "name": f"photo-{u}"}).job_id for u in "AB"]
        workers.append(Worker(cfg, tmp_path / "photos.log", via_run_worker=True, lanes=("photos",)))
        wait_until(lambda: photos.stats()["done"] == 2, "the photos")
        assert clips.stats()["queued"] == 1  # the photos' worker left the clip alone
        workers.append(Worker(cfg, tmp_path / "clips.log", via_run_worker=True, lanes=("clips",)))
        hang = tmp_path / "hang.pid"
        wait_until(hang.exists, "the clip to start painting")
        late = photos.submit("B", {"dir": d, "name": "photo-late"}).job_id
        wait_until(lambda: photos.stats()["done"] == 3, "a photo sent while the clip paints")
        assert clips.stats()["running"] == 1
        os.kill(int(hang.read_text()), signal.SIGKILL)  # ends the clip's first attempt
        wait_until(lambda: clips.stats()["done"] == 1, "the clip, on its second attempt")
        record = photos.get(late)
        assert record is not None and record.state is JobState.DONE
        assert all(photos.get(j).state is JobState.DONE for j in shots)  # type: ignore[union-attr]
        assert clips.get(clip).state is JobState.DONE  # type: ignore[union-attr]
    finally:
        for worker in workers:
            worker.stop()
        cleanup(cfg, photos)
        cleanup(cfg, clips)
