"""The handler factory the Celery end-to-end tests give their workers by dotted path.

Payload: ``{"dir": <tmp dir>, "name": "A0", "kind": "ok" | "defer" | "flaky" |
"poison" | "hang" | "suicide" | "slow"}``. Every run appends to ``runs.txt``; the
side effect (a line in ``sent.txt``) happens once per job, guarded by a checkpoint;
``failed.txt`` records ``on_failed`` calls.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

from totoshka.jobs import JobContext, JobHandlers, RetryLater


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
    d = Path(payload["dir"])
    name, kind = payload["name"], payload.get("kind", "ok")
    _append(d / "runs.txt", f"{name} {ctx.attempt}")
    if kind == "defer" and ctx.attempt == 1:
        raise RetryLater(0.2, "flood wait")
    if kind == "flaky" and ctx.attempt < 3:
        raise ConnectionError("flaky network")
    if kind == "suicide":  # kills its worker process on every attempt
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "poison":
        raise ValueError("poison payload")
    if kind == "slow":  # keeps jobs in flight while a test breaks something
        await asyncio.sleep(0.5)
    thread = await ctx.run_blocking(lambda: threading.current_thread().name)
    if "sent" not in ctx.checkpoints:
        _append(d / "sent.txt", f"{name} {ctx.job_id} {thread}")
        await ctx.checkpoint("sent", True)
    if kind == "hang" and ctx.attempt == 1:
        (d / "hang.pid.tmp").write_text(str(os.getpid()))
        (d / "hang.pid.tmp").rename(d / "hang.pid")  # atomic for the test reading it
        await asyncio.sleep(3600)


async def on_failed(payload: dict[str, Any], exc: BaseException) -> None:
    _append(Path(payload["dir"]) / "failed.txt", f"{payload['name']} {type(exc).__name__}")


def make_handler() -> JobHandlers:
    return JobHandlers(handler, on_failed=on_failed)
