"""Seconds from SIGKILL of a whole Celery worker to its job done by another (issue 15).

Two real workers (the `run_worker` that `totoshka worker` calls) on the local Redis or
RabbitMQ broker, with the job store in the local Redis and the *default* lease,
reconcile period and grace (`CeleryConfig`): a job that hangs on its first attempt
is started, the worker running it is killed with its pool child, and the clock runs
until the other worker has finished the job. The jobs come from the test suite's
handler (tests/jobs/celery_test_handler.py), so the paint is instant: the figure is
the repair's own delay.

    .venv/bin/python benchmarks/worker_kill.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "jobs"))

from test_jobs_celery import (  # noqa: E402
    RABBIT_URL,
    REDIS_URL,
    Worker,
    cleanup,
    make_config,
    wait_until,
)

from totoshka.engine.backends.hardware import cpu_info  # noqa: E402
from totoshka.jobs.celery_mode import CeleryJobQueue  # noqa: E402
from totoshka.jobs.celery_settings import CeleryConfig  # noqa: E402


def one_round(broker: str) -> float:
    defaults = CeleryConfig()
    cfg = make_config(broker).model_copy(
        update={
            "lease": defaults.lease,
            "reconcile_every": defaults.reconcile_every,
            "token_grace": defaults.token_grace,
        }
    )
    q = CeleryJobQueue(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        workers = [Worker(cfg, d / f"w{i}.log", session=True, via_run_worker=True) for i in (0, 1)]
        try:
            q.submit("A", {"dir": tmp, "name": "H", "kind": "hang"})
            wait_until((d / "hang.pid").exists, "the job to hang", timeout=300)
            os.killpg(os.getpgid(int((d / "hang.pid").read_text())), signal.SIGKILL)
            killed = time.perf_counter()
            wait_until(lambda: q.stats()["done"] == 1, "the job on the other worker", timeout=600)
            return time.perf_counter() - killed
        finally:
            for w in workers:
                w.stop()
            cleanup(cfg, q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    d = CeleryConfig()
    print(f"CPU: {cpu_info().line()}; load {os.getloadavg()[0]:.2f}")
    print(f"lease {d.lease:g} s, reconcile every {d.reconcile_every:g} s (defaults)")
    print("| broker | kill → done, s (each round) |")
    print("|---|---|")
    for name, url in (("redis", REDIS_URL), ("rabbitmq", RABBIT_URL)):
        times = [one_round(url) for _ in range(opts.rounds)]
        print(f"| {name} | {', '.join(f'{t:.1f}' for t in times)} |", flush=True)


if __name__ == "__main__":
    main()
