"""The asyncio WorkerPool on a real SQLite queue: order, retries, poison, CPU executor."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from totoshka.jobs import JobContext, JobState, RetryLater, SQLiteJobQueue, WorkerPool
from totoshka.observability import JOB_ID, USER_ID, Metrics

WAIT = 60.0  # upper bound for any wait; never an assertion on duration


@pytest.fixture
def queue(tmp_path: Path) -> SQLiteJobQueue:
    q = SQLiteJobQueue(tmp_path / "jobs.sqlite3")
    yield q
    q.close()


async def wait_for(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def all_final(queue: SQLiteJobQueue) -> Callable[[], bool]:
    def cond() -> bool:
        s = queue.stats()
        return s["queued"] == 0 and s["running"] == 0

    return cond


def make_pool(queue: SQLiteJobQueue, handler: Any, **kw: Any) -> WorkerPool:
    kw.setdefault("concurrency", 1)
    kw.setdefault("cpu_workers", 1)
    kw.setdefault("backoff_base", 0.0)
    kw.setdefault("poll_interval", 0.05)
    return WorkerPool(queue, handler, **kw)


async def test_fairness_b_runs_second(queue: SQLiteJobQueue) -> None:
    order: list[str] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        order.append(f"{payload['user']}{payload['i']}")

    for i in range(10):
        queue.submit("A", {"user": "A", "i": i})
    queue.submit("B", {"user": "B", "i": 0})
    pool = make_pool(queue, handler)
    await pool.start()
    try:
        await wait_for(lambda: len(order) == 11)
    finally:
        await pool.stop()
    assert order[:3] == ["A0", "B0", "A1"]
    assert queue.stats()["done"] == 11


async def test_submit_wakes_a_sleeping_pool_and_on_change_fires(queue: SQLiteJobQueue) -> None:
    done = asyncio.Event()
    changes = 0

    async def on_change() -> None:
        nonlocal changes
        changes += 1

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        done.set()

    pool = make_pool(queue, handler, poll_interval=3600, on_change=on_change)
    await pool.start()
    try:
        await asyncio.sleep(0)
        await asyncio.to_thread(queue.submit, "A", {})  # another thread, like the bot would
        await asyncio.wait_for(done.wait(), WAIT)
        await wait_for(lambda: changes >= 1)
    finally:
        await pool.stop()


async def test_retry_later_requeues_with_attempt_plus_one(queue: SQLiteJobQueue) -> None:
    attempts: list[int] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RetryLater(0.01, "flood wait")

    jid = queue.submit("A", {}).job_id
    pool = make_pool(queue, handler, max_attempts=1)  # deferrals do not use the error budget
    await pool.start()
    try:
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    assert attempts == [1, 2, 3]
    job = queue.get(jid)
    assert job is not None and job.state is JobState.DONE
    assert job.deferrals == 2 and job.attempt == 3


async def test_exception_is_retried_then_succeeds(queue: SQLiteJobQueue) -> None:
    attempts: list[int] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("telegram hiccup")

    jid = queue.submit("A", {}).job_id
    pool = make_pool(queue, handler, max_attempts=5)
    await pool.start()
    try:
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    assert attempts == [1, 2, 3]
    job = queue.get(jid)
    assert job is not None and job.state is JobState.DONE
    assert job.last_error == "ConnectionError: telegram hiccup"


async def test_poison_job_stops_after_max_attempts(queue: SQLiteJobQueue) -> None:
    calls: list[int] = []
    failed: list[tuple[dict[str, Any], BaseException]] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError("corrupt photo")

    async def on_failed(payload: dict[str, Any], exc: BaseException) -> None:
        failed.append((payload, exc))

    jid = queue.submit("A", {"photo": "x"}).job_id
    ok = queue.submit("B", {"photo": "y"}).job_id
    ran_ok = asyncio.Event()

    async def dispatch(payload: dict[str, Any], ctx: JobContext) -> None:
        if payload["photo"] == "y":
            ran_ok.set()
            return
        await handler(payload, ctx)

    pool = make_pool(queue, dispatch, max_attempts=3, on_failed=on_failed)
    await pool.start()
    try:
        await wait_for(all_final(queue))
        await wait_for(lambda: len(failed) == 1)
        await asyncio.sleep(0.2)  # give a looping job the chance to show itself
    finally:
        await pool.stop()
    assert ran_ok.is_set()
    assert calls == [1, 2, 3]
    job = queue.get(jid)
    assert job is not None and job.state is JobState.FAILED
    assert job.last_error == "ValueError: corrupt photo"
    assert failed[0][0] == {"photo": "x"}
    assert isinstance(failed[0][1], ValueError)
    done = queue.get(ok)
    assert done is not None and done.state is JobState.DONE


async def test_endless_deferrals_end_in_failed(queue: SQLiteJobQueue) -> None:
    failed: list[BaseException] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        raise RetryLater(0)

    async def on_failed(payload: dict[str, Any], exc: BaseException) -> None:
        failed.append(exc)

    jid = queue.submit("A", {}).job_id
    pool = make_pool(queue, handler, max_deferrals=4, on_failed=on_failed)
    await pool.start()
    try:
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    job = queue.get(jid)
    assert job is not None and job.state is JobState.FAILED and job.attempt == 5
    assert len(failed) == 1 and isinstance(failed[0], RetryLater)


async def test_checkpoints_survive_a_retry(queue: SQLiteJobQueue) -> None:
    sent: list[str] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        if "result_message_id" not in ctx.checkpoints:
            sent.append(ctx.job_id)
            await ctx.checkpoint("result_message_id", 1001)
        assert ctx.checkpoints["result_message_id"] == 1001
        if ctx.attempt == 1:
            raise RuntimeError("crash after sending")

    jid = queue.submit("A", {}).job_id
    pool = make_pool(queue, handler)
    await pool.start()
    try:
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    assert sent == [jid]  # sent once although the job ran twice
    assert queue.job_state(jid) == {"result_message_id": 1001}
    job = queue.get(jid)
    assert job is not None and job.state is JobState.DONE and job.attempt == 2


async def test_run_blocking_keeps_the_event_loop_responsive(queue: SQLiteJobQueue) -> None:
    ticks = 0
    stop_ticking = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop_ticking.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    def blocking_inference() -> tuple[int, int, str]:
        """Blocks its thread until the loop has ticked 5 more times (or gives up)."""
        start = ticks
        deadline = time.monotonic() + WAIT
        while ticks < start + 5 and time.monotonic() < deadline:
            time.sleep(0.005)  # a blocking call: would freeze the loop if run on it
        return start, ticks, threading.current_thread().name

    result: list[tuple[int, int, str]] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        result.append(await ctx.run_blocking(blocking_inference))

    hb = asyncio.create_task(heartbeat())
    queue.submit("A", {})
    pool = make_pool(queue, handler)
    await pool.start()
    try:
        await wait_for(lambda: bool(result))
    finally:
        await pool.stop()
        stop_ticking.set()
        await hb
    start, end, thread_name = result[0]
    assert end >= start + 5  # the loop kept ticking while fn blocked
    assert thread_name.startswith("totoshka-cpu")
    assert thread_name != threading.current_thread().name


async def test_concurrency_runs_io_jobs_in_parallel(queue: SQLiteJobQueue) -> None:
    inside = 0
    peak = 0
    release = asyncio.Event()

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await release.wait()
        inside -= 1

    for i in range(6):
        queue.submit(f"u{i}", {})
    pool = make_pool(queue, handler, concurrency=3)
    await pool.start()
    try:
        await wait_for(lambda: peak == 3)
        release.set()
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    assert peak == 3


async def test_stop_not_graceful_gives_the_job_back(queue: SQLiteJobQueue) -> None:
    started = asyncio.Event()

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    jid = queue.submit("A", {}).job_id
    pool = make_pool(queue, handler)
    await pool.start()
    await asyncio.wait_for(started.wait(), WAIT)
    await pool.stop(graceful=False)
    job = queue.get(jid)
    assert job is not None and job.state is JobState.QUEUED
    assert job.attempt == 0  # refunded: stopping is not the job's fault
    assert queue.position(jid) == 1


async def test_graceful_stop_lets_the_running_job_finish(queue: SQLiteJobQueue) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        await release.wait()

    jid = queue.submit("A", {}).job_id
    queue.submit("A", {})
    pool = make_pool(queue, handler)
    await pool.start()
    await asyncio.wait_for(started.wait(), WAIT)
    stopping = asyncio.create_task(pool.stop(graceful=True, timeout=WAIT))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(stopping, WAIT)
    job = queue.get(jid)
    assert job is not None and job.state is JobState.DONE
    assert queue.stats()["queued"] == 1  # the second job was not started


async def test_live_pool_takes_over_a_job_whose_lease_ran_out(queue: SQLiteJobQueue) -> None:
    ran: list[int] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        ran.append(ctx.attempt)

    jid = queue.submit("A", {}).job_id
    # Claimed by a worker elsewhere that then stops renewing its lease (no pid check
    # possible across hosts): the running pool's heartbeat takes the job back.
    assert queue.claim("otherhost:1:gone", lease_s=0.2) is not None
    pool = make_pool(queue, handler, lease_s=0.3)
    await pool.start()
    try:
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    job = queue.get(jid)
    assert job is not None and job.state is JobState.DONE and job.attempt == 2
    assert ran == [2]


async def test_start_fails_a_job_that_killed_its_worker_every_time(
    queue: SQLiteJobQueue,
) -> None:
    failed: list[tuple[dict[str, Any], BaseException]] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        raise AssertionError("must not run again")

    async def on_failed(payload: dict[str, Any], exc: BaseException) -> None:
        failed.append((payload, exc))

    jid = queue.submit("A", {"photo": "bomb"}).job_id
    for _ in range(2):  # two runs that died with their worker
        assert queue.claim("otherhost:1:gone", lease_s=-1) is not None
        queue.recover(max_attempts=5)
    assert queue.claim("otherhost:1:gone", lease_s=-1) is not None
    pool = make_pool(queue, handler, max_attempts=3, on_failed=on_failed)
    await pool.start()
    await pool.stop()
    job = queue.get(jid)
    assert job is not None and job.state is JobState.FAILED and job.attempt == 3
    assert len(failed) == 1 and failed[0][0] == {"photo": "bomb"}
    assert type(failed[0][1]).__name__ == "WorkerLost"


async def test_metrics_count_attempts_retries_and_outcomes(queue: SQLiteJobQueue) -> None:
    """One job fails once then succeeds, one defers once then succeeds, one always
    fails: the pool's counters say so, and each run names its job in the log context."""
    runs: dict[str, int] = {}
    seen: list[tuple[str | None, str | None, str]] = []

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        name = payload["name"]
        runs[name] = runs.get(name, 0) + 1
        seen.append((JOB_ID.get(), USER_ID.get(), ctx.job_id))
        if name == "flaky" and runs[name] == 1:
            raise RuntimeError("first run fails")
        if name == "deferred" and runs[name] == 1:
            raise RetryLater(0.0)
        if name == "poison":
            raise RuntimeError("always")

    metrics = Metrics()
    for name in ("flaky", "deferred", "poison"):
        queue.submit(name, {"name": name})
    pool = make_pool(queue, handler, max_attempts=2, metrics=metrics, lane="clips")
    await pool.start()
    try:
        await wait_for(all_final(queue))
    finally:
        await pool.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("totoshka_job_attempts_total", lane="clips") == 6  # 2 + 2 + 2
    assert value("totoshka_jobs_done_total", lane="clips") == 2
    assert value("totoshka_jobs_failed_total", lane="clips") == 1
    assert value("totoshka_jobs_retried_total", lane="clips", reason="error") == 2
    assert value("totoshka_jobs_retried_total", lane="clips", reason="deferred") == 1
    assert value("totoshka_jobs_running", lane="clips") == 0
    assert value("totoshka_job_stage_seconds_count", stage="wait") == 3  # first runs only
    assert all(job_id == ctx_id and user is not None for job_id, user, ctx_id in seen)
    assert JOB_ID.get() is None and USER_ID.get() is None  # nothing left behind
