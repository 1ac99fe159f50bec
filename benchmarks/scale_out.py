"""Photos per minute in Celery mode with 1, 2 and 3 workers on this machine (issue 15).

The deployment a user's operator runs, at small scale: a Redis server of its own
(broker, job store and conversation state), one bot (`python -m totoshka run`,
Celery mode) and N `totoshka worker --concurrency 1` processes, against the local
emulator in this process. Users each send a 1280×960 photo and press a style; the
round is timed from the first press to the last painted photo the emulator stored.
Each worker count first paints a warm-up batch (models loaded and compiled in every
worker's pool child), then `--jobs` timed photos.

    .venv/bin/python benchmarks/scale_out.py [--workers 1 2 3] [--jobs 12] [--style mosaic]

Needs the model mirror (TOTOSHKA_MODEL_MIRROR or ../shared/models) and the shared
photos (TOTOSHKA_SHARED or ../shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot_first_job import photo_bytes

from totoshka.emulator.client import EmulatorClient, SimUser
from totoshka.emulator.server import EmulatorServer
from totoshka.engine.backends.hardware import cpu_info

REPO = Path(__file__).resolve().parents[1]
TOKEN = "777001:bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(log: Path, proc: subprocess.Popen[bytes], line: str, limit: float) -> None:
    started = time.perf_counter()
    while line not in log.read_text(encoding="utf-8", errors="replace"):
        if proc.poll() is not None:
            raise SystemExit(f"{log.name}: exited\n{log.read_text(encoding='utf-8')[-3000:]}")
        if time.perf_counter() - started > limit:
            raise SystemExit(f"{log.name}: no {line!r} within {limit} s")
        time.sleep(0.2)


async def paint_all(users: list[SimUser], data: bytes, title: str) -> float:
    """Every user sends one photo and presses `title`; seconds from the first press
    to the last painted photo."""
    pickers = []
    for user in users:
        await user.send_photo(data)
    for user in users:
        pickers.append(await user.wait_for_message(lambda m: m.buttons, timeout=120))
    t0 = time.perf_counter()
    await asyncio.gather(*(u.press(p, title) for u, p in zip(users, pickers, strict=True)))
    await asyncio.gather(
        *(u.wait_for_message(lambda m: m.photo, timeout=1800, include_edits=False) for u in users)
    )
    return time.perf_counter() - t0


async def one_round(
    server: EmulatorServer, env: dict[str, str], data: bytes, title: str, workers: int, jobs: int
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", tmp]
        redis_server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        env = {**env, "TOTOSHKA_BROKER_URL": url, "TOTOSHKA_REDIS_URL": url}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            time.sleep(0.5)
            for i in range(workers):
                log = d / f"worker{i}.log"
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "totoshka", "worker", "--concurrency", "1"],
                        cwd=tmp,
                        env=env,
                        stdout=log.open("wb"),
                        stderr=subprocess.STDOUT,
                    )
                )
                wait_for_line(log, procs[-1], "ready.", 600)
            log = d / "bot.log"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "totoshka", "run"],
                    cwd=tmp,
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            await asyncio.sleep(3.0)  # polling starts at once in Celery mode (no warm-up)
            async with EmulatorClient(server.url, bot_token=TOKEN) as client:
                warm = [await client.create_user(first_name=f"W{i}") for i in range(2 * workers)]
                await paint_all(warm, data, title)
                users = [await client.create_user(first_name=f"U{i}") for i in range(jobs)]
                return await paint_all(users, data, title)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            redis_server.kill()
            redis_server.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--style", default="mosaic", help="a catalog style id")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/scale-out/cache"))
    opts = parser.parse_args()
    shared = Path(os.environ.get("TOTOSHKA_SHARED", REPO.parent / "shared"))
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR") or str(shared / "models")
    from totoshka.engine.catalog import load_catalog

    title = load_catalog().style(opts.style).title["en"]
    print(f"CPU: {cpu_info().line()}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    data = photo_bytes(shared)
    server = EmulatorServer()
    await server.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TOTOSHKA_")}
    base.update(
        TOTOSHKA_BOT_TOKEN=TOKEN,
        TOTOSHKA_API_URL=server.url,
        TOTOSHKA_JOBS_BACKEND="celery",
        TOTOSHKA_CACHE_DIR=str(opts.cache),
        TOTOSHKA_MODEL_MIRROR=mirror,
        TOTOSHKA_DEFAULT_OUTPUT_SIZE="1280",
        TOTOSHKA_MAX_PENDING="3",
        TOTOSHKA_LOG_LEVEL="INFO",
        TOTOSHKA_WORKER_WARM=opts.style,  # the style painted: warm, as all would be
    )
    try:
        print(f"{opts.jobs} photos of 1280×960, style {opts.style}, one pool process per worker")
        print("| workers | seconds | photos / min | × one worker |")
        print("|---|---|---|---|")
        one = None
        for n in opts.workers:
            seconds = await one_round(server, base, data, title, n, opts.jobs)
            rate = opts.jobs / seconds * 60
            one = one or rate
            print(f"| {n} | {seconds:.1f} | {rate:.1f} | {rate / one:.2f} |", flush=True)
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
