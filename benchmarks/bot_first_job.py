"""The bot's first job after `totoshka run` against its warm jobs (issue 13).

A real `python -m totoshka run` process (embedded mode, one worker) against the local
emulator in this process, caches warm (the process before it served the same style
and size, so nothing is converted or calibrated while timed). Once the bot has
printed its start-up inference line (the warm-up is done, the workers are serving),
one user sends a 1280×960 photo and presses a style button; the first job is timed
from the press to the moment the emulator has stored the bot's sendPhoto, and then
`--warm` more presses of the same button are timed the same way. Each round is a
fresh process; the ratio first / median(warm) is reported per round.

    .venv/bin/python benchmarks/bot_first_job.py [--rounds 3] [--warm 3] [--style mosaic]

Needs the model mirror (TOTOSHKA_MODEL_MIRROR or ../shared/models) and the shared
photos (TOTOSHKA_SHARED or ../shared). `--src` runs another checkout's code (its
`src/`, e.g. from `git archive HEAD src`) in the bot process: before/after rounds
alternate when it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from totoshka.emulator.client import EmulatorClient
from totoshka.emulator.server import EmulatorServer
from totoshka.engine.backends.hardware import cpu_info

REPO = Path(__file__).resolve().parents[1]
TOKEN = "777000:bench-token"
READY_LINE = "inference:"


def photo_bytes(shared: Path) -> bytes:
    """amber.jpg cropped to 4:3 and resized to 1280×960 (as cold_serving's photo)."""
    source = Image.open(shared / "images" / "content" / "amber.jpg").convert("RGB")
    w, h = source.size
    tw = min(w, h * 4 // 3)
    th = tw * 3 // 4
    left, top = (w - tw) // 2, (h - th) // 2
    photo = source.crop((left, top, left + tw, top + th)).resize(
        (1280, 960), Image.Resampling.LANCZOS
    )
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_round(
    server: EmulatorServer, env: dict[str, str], data: bytes, style_title: str, warm: int
) -> dict[str, float | list[float]]:
    """Start a bot process, wait for its warm-up, time the first and `warm` jobs."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "bot.log"
        run_env = {**env, "TOTOSHKA_QUEUE_PATH": str(Path(tmp) / "jobs.sqlite3")}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "totoshka", "run"],
            cwd=tmp,  # no stray .env
            env=run_env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            while READY_LINE not in log.read_text(errors="replace"):
                if proc.poll() is not None:
                    raise SystemExit(f"the bot exited: {log.read_text()[-3000:]}")
                if time.perf_counter() - started > 600:
                    raise SystemExit("the bot did not warm up in 600 s")
                await asyncio.sleep(0.1)
            ready = time.perf_counter() - started
            await asyncio.sleep(1.0)  # the workers start right after the line
            async with EmulatorClient(server.url, bot_token=TOKEN) as client:
                user = await client.create_user(first_name="Bench", language_code="en")
                await user.send_photo(data)
                picker = await user.wait_for_message(lambda m: m.buttons, timeout=120)
                times: list[float] = []
                for _ in range(warm + 1):
                    t0 = time.perf_counter()
                    await user.press(picker, style_title)
                    await user.wait_for_message(lambda m: m.photo, timeout=600)
                    times.append(time.perf_counter() - t0)
                    await user.wait_for_message(
                        lambda m: (m.text or "").startswith("✅"), timeout=120
                    )
                    await asyncio.sleep(0.5)
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    first, rest = times[0], times[1:]
    return {
        "ready_s": ready,
        "first_s": first,
        "warm_s": rest,
        "ratio": first / statistics.median(rest),
        "peak_rss_mb": rss,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--style", default="mosaic", help="a catalog style id")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bot-first-job/cache"))
    parser.add_argument("--src", type=Path, default=None, help="src/ of the code to compare")
    opts = parser.parse_args()
    shared = Path(os.environ.get("TOTOSHKA_SHARED", REPO.parent / "shared"))
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR") or str(shared / "models")
    from totoshka.engine.catalog import load_catalog

    title = load_catalog().style(opts.style).title["en"]
    print(f"CPU: {cpu_info().line()}; load {os.getloadavg()[0]:.2f}")
    data = photo_bytes(shared)
    server = EmulatorServer()
    await server.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TOTOSHKA_")}
    base.pop("PYTHONPATH", None)
    base.update(
        TOTOSHKA_BOT_TOKEN=TOKEN,
        TOTOSHKA_API_URL=server.url,
        TOTOSHKA_CACHE_DIR=str(opts.cache),
        TOTOSHKA_MODEL_MIRROR=mirror,
        TOTOSHKA_DEFAULT_OUTPUT_SIZE="1280",
        TOTOSHKA_WORKERS="1",
        TOTOSHKA_LOG_LEVEL="WARNING",
    )
    versions = {"after": base}
    if opts.src is not None:
        versions = {"before": {**base, "PYTHONPATH": str(opts.src.resolve())}, "after": base}
    try:
        for env in versions.values():  # warms the caches: converts, calibrates
            await one_round(server, env, data, title, 1)
        print("| version | round | ready s | first s | warm s (median) | first / warm | RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for i in range(opts.rounds):
            for name, env in versions.items():
                r = await one_round(server, env, data, title, opts.warm)
                warm = statistics.median(r["warm_s"])  # type: ignore[arg-type]
                print(
                    f"| {name} | {i + 1} | {r['ready_s']:.1f} | {r['first_s']:.2f} | "
                    f"{warm:.2f} | {r['ratio']:.2f} | {r['peak_rss_mb']:.0f} |",
                    flush=True,
                )
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
