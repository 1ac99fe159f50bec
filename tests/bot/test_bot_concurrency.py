"""Many users at once: each gets exactly one result, painted from their own photo.

The old bot wrote every result to one shared file, so two users at once could see
each other's pictures. Here ten users press a style at the same moment, and each
result is compared with the stylization of *that user's* photo computed directly
with the `Stylizer` (high PSNR) and with everyone else's (low PSNR).

While those jobs keep the queue busy, another user keeps asking /help: its
latency (p50/p99) is a benchmark, printed and written to
``test-output/bot_help_latency.json`` (git-ignored; copy it to benchmarks/results/ to
publish a run) — no timing assertions.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from bot_helpers import WAIT, jpeg, make_settings, start_bot
from PIL import Image, ImageOps

from totoshka.bot.texts import Texts
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.imageio import load_image

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
TEXTS = Texts.load()
WAVE = "The Great Wave off Kanagawa"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


SIZE = 640  # big enough that ten jobs keep the queue busy for a while


async def test_ten_users_at_once_each_get_their_own_picture(
    emulator, new_user, client, shared_dir, tmp_path, model_cache, mirror, stylizer_factory
) -> None:
    settings = make_settings(emulator.url, tmp_path, model_cache, mirror, default_output_size=SIZE)
    bot = await start_bot(settings, stylizer_factory)
    try:
        await run_ten_users(new_user, client, shared_dir, stylizer_factory)
    finally:
        await bot.stop()


async def run_ten_users(new_user, client, shared_dir: Path, stylizer_factory) -> None:
    # Ten different photos: the five shared ones and their mirror images.
    variants = []
    for path in sorted((shared_dir / "images" / "content").glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        image.thumbnail((SIZE, SIZE))
        variants += [jpeg(image), jpeg(ImageOps.mirror(image))]
    users = [await new_user("en" if i % 2 else "ru", f"User{i}") for i in range(10)]
    sent = []
    for user, data in zip(users, variants, strict=True):
        sent.append(await user.send_photo(data))
    pickers = []
    for user in users:
        lang = "en" if users.index(user) % 2 else "ru"
        pickers.append(
            await user.wait_for_message(
                lambda m, lang=lang: m.text == TEXTS.get(lang, "pick_style"), timeout=WAIT
            )
        )
    titles = ["Большая волна в Канагаве" if i % 2 == 0 else WAVE for i in range(10)]

    helper = await new_user("en", "Helper")
    latencies: list[float] = []
    stamps: list[float] = []
    finished = asyncio.Event()

    async def ask_help() -> None:
        while not finished.is_set():
            start = time.perf_counter()
            await helper.send_command("help")
            await helper.wait_for_message(
                lambda m: m.text == TEXTS.get("en", "help", seconds=60), timeout=60
            )
            latencies.append(time.perf_counter() - start)
            stamps.append(start)
            await asyncio.sleep(0.05)

    asker = asyncio.create_task(ask_help())
    started = time.perf_counter()
    # Everyone presses at the same moment.
    await asyncio.gather(
        *(u.press(p, title) for u, p, title in zip(users, pickers, titles, strict=True))
    )
    results = await asyncio.gather(
        *(u.wait_for_message(lambda m: m.photo, timeout=WAIT * 2) for u in users)
    )
    busy = time.perf_counter() - started
    finished.set()
    await asyncio.wait_for(asker, 60)
    await asyncio.sleep(1.0)  # room for any duplicate to show up

    stylizer = await asyncio.to_thread(stylizer_factory)
    expected = []
    for message in sent:
        original = await client.download(message.photo[-1].file_id)
        painted = await asyncio.to_thread(
            stylizer.stylize, load_image(original), "wave", max_side=SIZE
        )
        expected.append(np.asarray(painted))
    got = []
    for user, result in zip(users, results, strict=True):
        photos_sent = [m for m in await user.messages() if m.photo]
        assert len(photos_sent) == 1, f"{user}: {len(photos_sent)} results"
        data = await client.download(result.largest_photo.file_id)
        got.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    for i, picture in enumerate(got):
        own = psnr(picture, expected[i])
        others = [
            psnr(picture, e) for j, e in enumerate(expected) if j != i and e.shape == picture.shape
        ]
        assert own > 30, f"user {i}: PSNR {own:.1f} dB against their own photo"
        assert all(o < own - 10 for o in others), f"user {i}: {own:.1f} vs {others}"

    report = {
        "what": "/help round trip (send -> bot reply seen) while 10 style jobs run, embedded",
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "cpu": cpu_info().model,
        "cores": os.cpu_count(),
        "jobs": 10,
        "output_size": SIZE,
        "busy_s": round(busy, 2),
    }
    print("\n/help latency while busy:", json.dumps(report))
    timeline = zip(stamps, latencies, strict=True)
    slow = [(round(s - started, 2), round(x * 1000)) for s, x in timeline if x > 0.1]
    print("slow /help answers (t since presses, ms):", slow)
    out = REPO / "test-output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bot_help_latency.json").write_text(json.dumps(report, indent=2) + "\n")
