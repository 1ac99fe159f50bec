"""The embedded SQLite queue on real files: persistence, fairness, limits, dedupe, cancel."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from totoshka.jobs import JobQueue, JobState, SQLiteJobQueue, TooManyPending
from totoshka.jobs.fairness import round_robin_position


@pytest.fixture
def queue(tmp_path: Path) -> SQLiteJobQueue:
    q = SQLiteJobQueue(tmp_path / "jobs.sqlite3")
    yield q
    q.close()


def test_implements_the_protocol(queue: SQLiteJobQueue) -> None:
    assert isinstance(queue, JobQueue)


def test_accepted_job_survives_a_new_queue_instance(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SQLiteJobQueue(path)
    res = first.submit("alice", {"photo": "file-1", "style": "wave", "n": [1, 2]})
    first.mark(res.job_id, "status_message_id", 42)
    first.close()

    second = SQLiteJobQueue(path)
    try:
        job = second.get(res.job_id)
        assert job is not None
        assert job.state is JobState.QUEUED
        assert job.payload == {"photo": "file-1", "style": "wave", "n": [1, 2]}
        assert job.user_key == "alice"
        assert job.attempt == 0
        assert job.created_at > 0
        assert second.job_state(res.job_id) == {"status_message_id": 42}
        assert second.position(res.job_id) == 1
        assert second.pending_count("alice") == 1
        claimed = second.claim("w", 60)
        assert claimed is not None and claimed.job_id == res.job_id
        assert claimed.checkpoints == {"status_message_id": 42}
    finally:
        second.close()


def test_fair_order_one_user_does_not_starve_another(queue: SQLiteJobQueue) -> None:
    a = [queue.submit("A", {"i": i}).job_id for i in range(10)]
    b = queue.submit("B", {"i": 0}).job_id
    assert queue.position(a[0]) == 1
    assert queue.position(b) == 2  # B's single job runs second, not eleventh
    assert queue.position(a[1]) == 3
    assert queue.position(a[9]) == 11

    order = []
    while (job := queue.claim("w", 60)) is not None:
        order.append(job.job_id)
        queue.complete(job.job_id, "w")
    assert order[:2] == [a[0], b]
    assert order[2:] == a[1:]


def test_round_robin_between_three_users_and_positions_match_claims(
    queue: SQLiteJobQueue,
) -> None:
    ids = {}
    for user, n in (("A", 3), ("B", 1), ("C", 2)):
        for i in range(n):
            ids[queue.submit(user, {"u": user, "i": i}).job_id] = (user, i)
    predicted = sorted(ids, key=lambda j: queue.position(j) or 0)
    claimed = []
    while (job := queue.claim("w", 60)) is not None:
        claimed.append(job.job_id)
    assert claimed == predicted
    assert [ids[j] for j in claimed] == [
        ("A", 0), ("B", 0), ("C", 0), ("A", 1), ("C", 1), ("A", 2),
    ]  # fmt: skip


def test_recently_served_user_goes_behind_a_newcomer(queue: SQLiteJobQueue) -> None:
    a1 = queue.submit("A", {}).job_id
    a2 = queue.submit("A", {}).job_id
    job = queue.claim("w", 60)
    assert job is not None and job.job_id == a1
    b1 = queue.submit("B", {}).job_id  # arrives later, but A was just served
    assert queue.position(b1) == 1
    assert queue.position(a2) == 2
    nxt = queue.claim("w", 60)
    assert nxt is not None and nxt.job_id == b1


def test_round_robin_position_formula() -> None:
    # users in rotation order with 3, 1, 2 jobs -> A0 B0 C0 A1 C1 A2
    assert round_robin_position([3, 1, 2], 0, 0) == 1
    assert round_robin_position([3, 1, 2], 1, 0) == 2
    assert round_robin_position([3, 1, 2], 2, 1) == 5
    assert round_robin_position([3, 1, 2], 0, 2) == 6
    with pytest.raises(IndexError):
        round_robin_position([3, 1, 2], 1, 1)


def test_per_user_pending_limit(queue: SQLiteJobQueue) -> None:
    for i in range(3):
        queue.submit("A", {"i": i}, max_pending=3)
    with pytest.raises(TooManyPending) as err:
        queue.submit("A", {"i": 3}, max_pending=3)
    assert err.value.limit == 3
    queue.submit("B", {}, max_pending=3)  # the limit is per user
    assert queue.pending_count("A") == 3

    job = queue.claim("w", 60)  # running still counts as pending
    assert job is not None
    assert queue.pending_count("A") == 3
    with pytest.raises(TooManyPending):
        queue.submit("A", {"i": 3}, max_pending=3)
    queue.complete(job.job_id, "w")
    assert queue.pending_count("A") == 2
    queue.submit("A", {"i": 3}, max_pending=3)


def test_dedupe_key_returns_the_existing_job(queue: SQLiteJobQueue) -> None:
    first = queue.submit("A", {"photo": 1}, dedupe_key="update-77")
    again = queue.submit("A", {"photo": 1}, dedupe_key="update-77", max_pending=1)
    assert again.job_id == first.job_id
    assert again.duplicate and not first.duplicate
    assert again.position == 1
    assert queue.stats()["queued"] == 1
    job = queue.claim("w", 60)
    assert job is not None
    queue.complete(job.job_id, "w")
    done = queue.submit("A", {"photo": 1}, dedupe_key="update-77")
    assert done.job_id == first.job_id and done.position == 0


def test_cancel_user_cancels_only_queued_jobs(queue: SQLiteJobQueue) -> None:
    ids = [queue.submit("A", {"i": i}).job_id for i in range(3)]
    other = queue.submit("B", {}).job_id
    running = queue.claim("w", 60)
    assert running is not None and running.job_id == ids[0]

    cancelled = queue.cancel_user("A")
    assert cancelled == ids[1:]
    assert queue.position(ids[1]) is None
    assert queue.position(other) == 1
    assert queue.pending_count("A") == 1  # the running one
    assert queue.stats() == {
        "queued": 1, "running": 1, "done": 0, "failed": 0, "cancelled": 2,
    }  # fmt: skip
    assert queue.cancel_user("A") == []
    j = queue.get(ids[1])
    assert j is not None and j.state is JobState.CANCELLED and j.finished_at


def test_only_the_owner_can_finish_a_job(queue: SQLiteJobQueue) -> None:
    jid = queue.submit("A", {}).job_id
    assert queue.claim("w1", 60) is not None
    assert not queue.complete(jid, "w2")
    assert queue.complete(jid, "w1")
    assert not queue.complete(jid, "w1")  # not running any more


def test_expired_lease_is_recovered_and_poison_fails(queue: SQLiteJobQueue) -> None:
    jid = queue.submit("A", {}).job_id
    assert queue.claim("otherhost:1:x", lease_s=-1) is not None  # lease already over
    requeued, failed = queue.recover(max_attempts=2)
    assert [j.job_id for j in requeued] == [jid] and failed == []
    job = queue.get(jid)
    assert job is not None and job.state is JobState.QUEUED and job.attempt == 1
    assert job.last_error and "WorkerLost" in job.last_error

    assert queue.claim("otherhost:1:x", lease_s=-1) is not None
    requeued, failed = queue.recover(max_attempts=2)
    assert requeued == [] and [j.job_id for j in failed] == [jid]
    job = queue.get(jid)
    assert job is not None and job.state is JobState.FAILED and job.attempt == 2


def test_live_lease_is_left_alone(queue: SQLiteJobQueue) -> None:
    queue.submit("A", {})
    assert queue.claim("otherhost:1:x", lease_s=600) is not None
    assert queue.recover(max_attempts=5) == ([], [])


def test_threads_never_claim_a_job_twice(queue: SQLiteJobQueue) -> None:
    n_jobs = 120
    claimed: list[str] = []
    lock = threading.Lock()
    submitted = threading.Event()

    def producer(user: str) -> None:
        for i in range(n_jobs // 4):
            queue.submit(user, {"i": i})

    def consumer(name: str) -> None:
        while True:
            job = queue.claim(name, 60)
            if job is None:
                if submitted.is_set():
                    return
                continue
            queue.complete(job.job_id, name)
            with lock:
                claimed.append(job.job_id)

    producers = [threading.Thread(target=producer, args=(u,)) for u in "ABCD"]
    consumers = [threading.Thread(target=consumer, args=(f"c{i}",)) for i in range(4)]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join(60)
    submitted.set()
    for t in consumers:
        t.join(60)
    assert len(claimed) == n_jobs
    assert len(set(claimed)) == n_jobs
    assert queue.stats()["done"] == n_jobs


def test_two_processes_never_claim_a_job_twice(queue: SQLiteJobQueue, tmp_path: Path) -> None:
    ids = {queue.submit(f"u{i % 5}", {"i": i}).job_id for i in range(150)}
    script = textwrap.dedent(
        """
        import sys
        from totoshka.jobs import SQLiteJobQueue
        q = SQLiteJobQueue(sys.argv[1])
        with open(sys.argv[2], "w") as out:
            while (job := q.claim(sys.argv[3], 60)) is not None:
                out.write(job.job_id + "\\n")
                q.complete(job.job_id, sys.argv[3])
        """
    )
    outs = [tmp_path / f"out{i}.txt" for i in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(queue.path), str(out), f"p{i}"])
        for i, out in enumerate(outs)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = [line for out in outs for line in out.read_text().split()]
    assert sorted(lines) == sorted(ids)


def test_purge_forgets_finished_jobs_only(queue: SQLiteJobQueue) -> None:
    done = queue.submit("A", {}).job_id
    queued = queue.submit("A", {}).job_id
    job = queue.claim("w", 60)
    assert job is not None and job.job_id == done
    queue.mark(done, "sent", True)
    queue.complete(done, "w")
    assert queue.purge(older_than=time.time() + 1) == 1
    assert queue.get(done) is None and queue.job_state(done) == {}
    assert queue.get(queued) is not None


def test_position_of_a_job_claimed_between_the_reads_is_none(tmp_path: Path) -> None:
    """A worker may claim the job between the position query's reads: no place in line,
    and never a StopIteration (an executor future cannot carry one: the caller hung)."""
    path = tmp_path / "jobs.sqlite3"
    queue, worker = SQLiteJobQueue(path), SQLiteJobQueue(path)
    try:
        job_id = queue.submit("alice", {"i": 0}).job_id
        db = queue._conn()

        class ClaimsAfterFirstRead:
            calls = 0

            def execute(self, *args: object) -> object:
                self.calls += 1
                if self.calls == 2:  # after reading the job as queued, before the users
                    assert worker.claim("w", 60) is not None
                return db.execute(*args)

        assert SQLiteJobQueue._position(ClaimsAfterFirstRead(), job_id) is None  # type: ignore[arg-type]
        assert queue.position(job_id) is None  # running now
    finally:
        queue.close()
        worker.close()
