"""Celery mode when things fail outright: a whole worker killed, Redis restarted or
frozen, a bot gone between storing a job and sending its token.

Real ``celery worker`` processes on the real RabbitMQ, and a Redis server of the
test's own (so that it can be killed, frozen and restarted without touching the
machine's). Nothing here asserts on time: waits are generous deadlines only, and
the short lease (a few seconds instead of 20) just keeps the run short.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from own_redis import OwnRedis
from test_jobs_celery import RABBIT_URL, REDIS_URL, Worker, cleanup, make_config, wait_until

from totoshka.jobs import JobState
from totoshka.jobs.celery_mode import CeleryJobQueue
from totoshka.jobs.celery_settings import CeleryConfig
from totoshka.jobs.queue import QueueUnavailable

LEASE = 4.0


@pytest.fixture
def redis_alive() -> None:
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()  # fails loudly if down


def short_lease(cfg: CeleryConfig) -> CeleryConfig:
    return cfg.model_copy(update={"lease": LEASE, "reconcile_every": 0.5, "token_grace": 2.0})


def worker_of(pid_file: Path) -> int:
    """The process group of the worker whose child wrote `pid_file`."""
    return os.getpgid(int(pid_file.read_text(encoding="utf-8")))


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_whole_worker_killed_mid_job_loses_nothing(
    redis_alive: None, tmp_path: Path, broker: str
) -> None:
    """SIGKILL of a worker's whole process group (main process and pool child): its
    job is painted by the other worker, and its result sent once. On the Redis broker
    the message would sit unacknowledged for the visibility timeout (4 h); the lease
    lapses in seconds and a reconciler puts the job back in line."""
    cfg = short_lease(make_config(REDIS_URL if broker == "redis" else RABBIT_URL))
    q = CeleryJobQueue(cfg)
    workers = [
        Worker(cfg, tmp_path / f"w{i}.log", session=True, via_run_worker=True) for i in range(2)
    ]
    try:
        d = str(tmp_path)
        hang = q.submit("A", {"dir": d, "name": "H", "kind": "hang"}).job_id
        pid_file = tmp_path / "hang.pid"
        wait_until(pid_file.exists, "the job to start and hang")
        group = worker_of(pid_file)
        victim = next(w for w in workers if w.proc.pid == group)
        os.killpg(group, signal.SIGKILL)
        victim.proc.wait(timeout=30)
        survivor = next(w for w in workers if w is not victim)
        others = [q.submit(u, {"dir": d, "name": f"{u}0", "kind": "ok"}).job_id for u in "BC"]

        def finished() -> bool:
            survivor.check_alive()
            return q.stats()["done"] == 3

        wait_until(finished, "the killed worker's job, and the others, on the survivor")
        job = q.get(hang)
        assert job is not None and job.state is JobState.DONE and job.attempt == 2
        assert sorted(line.split()[0] for line in lines(tmp_path / "sent.txt")) == [
            "B0",
            "C0",
            "H",
        ]  # the checkpoint kept the second attempt from sending again
        assert [line for line in lines(tmp_path / "runs.txt") if line.startswith("H ")] == [
            "H 1",
            "H 2",
        ]
        assert all(q.get(j).state is JobState.DONE for j in others)  # type: ignore[union-attr]
        assert q.stats()["running"] == 0 and q.pending_count("A") == 0
    finally:
        for w in workers:
            w.stop()
        cleanup(cfg, q)


@pytest.fixture
def own_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OwnRedis]:
    (tmp_path / "redis").mkdir()
    server = OwnRedis(tmp_path / "redis", persistent=request.param)
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


def own_config(server: OwnRedis) -> CeleryConfig:
    """The server is both the broker and the job store."""
    return short_lease(make_config(server.url)).model_copy(update={"redis_url": server.url})


@pytest.mark.parametrize("own_redis", [True], indirect=True)
def test_redis_restarted_mid_run_with_persistence_loses_and_repeats_nothing(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis is both broker and job store; it restarts while jobs run and wait. With
    the append-only file every job is still there afterwards, each painted and sent
    exactly once, and the worker's connections heal by themselves."""
    cfg = own_config(own_redis)
    q = CeleryJobQueue(cfg)
    d = str(tmp_path)
    names = [f"{u}{i}" for i in range(3) for u in "ABC"]
    worker = Worker(cfg, tmp_path / "worker.log")
    try:
        jobs = [q.submit(n[0], {"dir": d, "name": n, "kind": "slow"}).job_id for n in names]
        wait_until(lambda: len(lines(tmp_path / "sent.txt")) >= 2, "the first jobs")
        own_redis.stop(signal.SIGTERM)
        time.sleep(1.0)  # Redis away for a moment (not a figure: the test waits for outcomes)
        own_redis.start()

        def finished() -> bool:
            worker.check_alive()
            try:
                return q.stats()["done"] == len(names)
            except redis.ConnectionError:
                return False

        wait_until(finished, "every job after the restart")
        sent = [line.split()[0] for line in lines(tmp_path / "sent.txt")]
        assert sorted(sent) == sorted(names)  # nothing lost, nothing sent twice
        assert all(q.get(j).state is JobState.DONE for j in jobs)  # type: ignore[union-attr]
    finally:
        worker.stop()


@pytest.mark.parametrize("own_redis", [False], indirect=True)
def test_redis_restarted_without_persistence_the_lost_jobs_are_known(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Without persistence a restart empties the store. The records are gone, which
    is how the bot tells those users (its status board sees a job it tracks vanish);
    the queue then serves new jobs at once."""
    cfg = own_config(own_redis)
    q = CeleryJobQueue(cfg)
    d = str(tmp_path)
    lost = [q.submit(u, {"dir": d, "name": f"{u}-lost"}).job_id for u in "AB"]
    own_redis.stop(signal.SIGKILL)
    own_redis.start()
    assert [q.get(j) for j in lost] == [None, None]
    assert [q.position(j) for j in lost] == [None, None]
    worker = Worker(cfg, tmp_path / "worker.log")
    try:
        fresh = q.submit("A", {"dir": d, "name": "A-fresh"}).job_id
        wait_until(lambda: q.stats()["done"] == 1, "a job submitted after the restart")
        record = q.get(fresh)
        assert record is not None and record.state is JobState.DONE
        assert [line.split()[0] for line in lines(tmp_path / "sent.txt")] == ["A-fresh"]
    finally:
        worker.stop()


@pytest.mark.parametrize("own_redis", [True], indirect=True)
def test_a_submit_while_redis_is_frozen_is_refused_and_never_runs(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis frozen (SIGSTOP) during a submit: the submit times out and is refused
    with `QueueUnavailable`, and the job never runs even though the server runs the
    script once it thaws. The jobs after it are not shifted by a missing token."""
    cfg = own_config(own_redis)
    q = CeleryJobQueue(cfg)
    d = str(tmp_path)
    worker = Worker(cfg, tmp_path / "worker.log")
    try:
        warm = q.submit("A", {"dir": d, "name": "A-before"}).job_id
        wait_until(lambda: q.stats()["done"] == 1, "a first job")
        own_redis.signal(signal.SIGSTOP)
        try:
            with pytest.raises(QueueUnavailable):
                q.submit("A", {"dir": d, "name": "A-refused"})
        finally:
            own_redis.signal(signal.SIGCONT)
        q.reconcile()  # withdraws the refused job if Redis was still away for that too
        after = [q.submit(u, {"dir": d, "name": f"{u}-after"}).job_id for u in "AB"]

        def finished() -> bool:
            worker.check_alive()
            q.reconcile()
            return q.stats()["done"] == 3

        wait_until(finished, "the jobs submitted after the refused one")
        sent = sorted(line.split()[0] for line in lines(tmp_path / "sent.txt"))
        assert sent == ["A-after", "A-before", "B-after"]
        assert q.stats()["queued"] == 0 and q.pending_count("A") == 0
        assert q.get(warm) is not None
        assert all(q.get(j).state is JobState.DONE for j in after)  # type: ignore[union-attr]
    finally:
        worker.stop()


@pytest.mark.parametrize("own_redis", [True], indirect=True)
def test_a_job_stored_without_its_token_gets_one(own_redis: OwnRedis, tmp_path: Path) -> None:
    """A bot that died between storing a job and sending its token (the store's
    `submit` alone): the workers' reconciler sends the token after the grace."""
    cfg = own_config(own_redis)
    q = CeleryJobQueue(cfg)
    d = str(tmp_path)
    orphan, _ = q.store.submit("A", {"dir": d, "name": "A-orphan"})
    worker = Worker(cfg, tmp_path / "worker.log")
    try:

        def finished() -> bool:
            worker.check_alive()
            return q.stats()["done"] == 1

        wait_until(finished, "the tokenless job")
        record = q.get(orphan)
        assert record is not None and record.state is JobState.DONE
        assert [line.split()[0] for line in lines(tmp_path / "sent.txt")] == ["A-orphan"]
    finally:
        worker.stop()


@pytest.mark.parametrize("own_redis", [True], indirect=True)
def test_a_checkpoint_waits_out_a_redis_restart(own_redis: OwnRedis) -> None:
    """A checkpoint records a side effect already done (a photo sent). Written while
    Redis is away for longer than the client's own retries, it is stored once Redis
    is back, within the patience a worker gives it (its lease), instead of failing
    the run, whose retry would send the photo again; past the patience it fails."""
    import threading

    from totoshka.jobs.redis_store import RedisJobStore

    store = RedisJobStore.from_url(own_redis.url, "totoshka-test:mark")
    own_redis.stop(signal.SIGTERM)
    outcome: list[BaseException | None] = []

    def mark() -> None:
        try:
            store.mark("job1", "sent", True, patience=120.0)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    writer = threading.Thread(target=mark)
    writer.start()
    time.sleep(3.0)  # longer than the client's retries (not a figure: outcomes are checked)
    assert not outcome, "gave up while Redis was away"
    own_redis.start()
    writer.join(timeout=120)
    assert outcome == [None]
    assert store.job_state("job1") == {"sent": True}
    own_redis.stop(signal.SIGTERM)
    with pytest.raises(redis.ConnectionError):
        store.mark("job1", "other", 1, patience=0.0)
