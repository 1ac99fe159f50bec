"""A pool SIGKILLed mid-job: a new pool finishes every job, each side effect exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from totoshka.jobs import JobContext, JobState, SQLiteJobQueue, WorkerPool

HERE = Path(__file__).parent
WAIT = 120.0


async def test_sigkilled_pool_jobs_are_finished_exactly_once(tmp_path: Path) -> None:
    db, out, ready = tmp_path / "jobs.sqlite3", tmp_path / "out.txt", tmp_path / "ready"
    queue = SQLiteJobQueue(db)
    ids = [queue.submit(f"user{i % 3}", {"n": i}).job_id for i in range(10)]
    hang_n = 2

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, str(HERE / "kill_worker.py"), str(db), str(out), str(ready), str(hang_n)],
        env=env,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not ready.exists():
            assert child.poll() is None, "worker process died on its own"
            assert time.monotonic() < deadline, "worker never reached the hanging job"
            await asyncio.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=WAIT)
    assert child.returncode == -signal.SIGKILL

    hung = ready.read_text()
    job = queue.get(hung)
    assert job is not None and job.state is JobState.RUNNING  # left behind by the dead process
    assert queue.job_state(hung) == {"sent": True}

    sys.path.insert(0, str(HERE))
    try:
        from kill_worker import append_once
    finally:
        sys.path.remove(str(HERE))

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        if append_once(out, payload, ctx):
            await ctx.checkpoint("sent", True)

    pool = WorkerPool(queue, handler, concurrency=2, cpu_workers=1, poll_interval=0.05)
    await pool.start()
    try:

        async def finished() -> None:
            while queue.stats()["done"] < len(ids):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(finished(), WAIT)
    finally:
        await pool.stop()

    lines = out.read_text().split("\n")[:-1]
    counts = Counter(line.split()[0] for line in lines)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}, f"duplicated side effects: {counts}"
    assert queue.stats() == {"queued": 0, "running": 0, "done": 10, "failed": 0, "cancelled": 0}
    recovered = queue.get(hung)
    assert recovered is not None and recovered.attempt == 2  # the killed run counted
    assert recovered.last_error and recovered.last_error.startswith("WorkerLost")
    queue.close()
