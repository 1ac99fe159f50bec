"""Child process for the kill-and-restart test: a WorkerPool that hangs on one job.

Usage: python kill_worker.py DB OUT READY_FILE HANG_N

The handler appends the job id to OUT once (guarded by a checkpoint). On the job
whose payload has ``n == HANG_N`` it then touches READY_FILE and hangs, so the
parent can SIGKILL the process after the side effect but before completion — the
exact crash the checkpoint exists for.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from totoshka.jobs import JobContext, SQLiteJobQueue, WorkerPool


def append_once(out: Path, payload: dict[str, Any], ctx: JobContext) -> bool:
    """The side effect; returns whether it happened now."""
    if "sent" in ctx.checkpoints:
        return False
    with out.open("a", encoding="utf-8") as f:
        f.write(f"{ctx.job_id} {payload['n']}\n")
    return True


async def main(db: str, out: str, ready: str, hang_n: int) -> None:
    queue = SQLiteJobQueue(db)

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        if append_once(Path(out), payload, ctx):
            await ctx.checkpoint("sent", True)
        if payload["n"] == hang_n:
            tmp = Path(ready + ".tmp")
            tmp.write_text(ctx.job_id, encoding="utf-8")
            tmp.rename(ready)  # atomic: the parent never reads a half-written id
            await asyncio.sleep(3600)

    # One slot: with two, the other job could be killed between its side effect and
    # its checkpoint — the window checkpoints cannot close, which is not under test.
    pool = WorkerPool(queue, handler, concurrency=1, cpu_workers=1, poll_interval=0.05)
    await pool.start()
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
