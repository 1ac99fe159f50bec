"""What the bot adds around inference: one 1280×960 job, photo received → result sent.

Embedded mode (SQLite queue + in-process workers), warm (one job first loads the
network), against the local emulator over real HTTP. The end-to-end time runs
from the user's press of a style button to the moment the emulator has stored the
bot's sendPhoto; it includes the update's long poll, the queue, the status edits,
getFile + download, decoding, inference, JPEG encoding and the upload. The pure
inference time is `Stylizer.stylize` on the same decoded photo in the same process.
Target: end-to-end ≤ 1.3 × inference.

    .venv/bin/python benchmarks/bot_job_overhead.py [--runs 3] [--style wave]

Needs the model mirror (TOTOSHKA_MODEL_MIRROR or ../shared/models) and the shared
photos (TOTOSHKA_SHARED or ../shared). Prints the figures and writes
benchmarks/results/bot_job_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from totoshka.bot.app import BotApp
from totoshka.config import Settings
from totoshka.emulator.client import EmulatorClient
from totoshka.emulator.server import EmulatorServer
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.factory import open_engine
from totoshka.engine.imageio import load_image

REPO = Path(__file__).resolve().parents[1]
TOKEN = "777000:bench-token"


async def main(runs: int, style: str) -> dict[str, object]:
    shared = Path(os.environ.get("TOTOSHKA_SHARED", REPO.parent / "shared"))
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR") or str(shared / "models")
    photo = Image.open(shared / "images" / "content" / "amber.jpg").convert("RGB")
    photo = photo.resize((1280, 960), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()

    with tempfile.TemporaryDirectory() as tmp:
        server = EmulatorServer()
        await server.start()
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            bot_token=TOKEN,
            api_url=server.url,
            queue_path=Path(tmp) / "jobs.sqlite3",
            cache_dir=Path(tmp) / "models",
            model_mirror=mirror,
            default_output_size=1280,
            max_pending=10,
        )
        stylizer_factory = open_engine(settings).stylizer
        app = BotApp(settings, stylizer_factory=stylizer_factory)
        polling = asyncio.create_task(
            app.dispatcher.start_polling(app.bot, handle_signals=False, close_bot_session=False)
        )
        client = EmulatorClient(server.url, bot_token=TOKEN)
        try:
            user = await client.create_user(first_name="Bench", language_code="en")
            sent = await user.send_photo(data)
            picker = await user.wait_for_message(lambda m: m.buttons, timeout=60)
            title = next(titles["en"] for sid, titles in app.services.styles if sid == style)
            original = load_image(await client.download(sent.photo[-1].file_id))
            stylizer = stylizer_factory()
            end_to_end: list[float] = []
            inference: list[float] = []
            # Interleaved, so a neighbour's load on a shared machine hits both alike.
            for i in range(runs + 1):  # the first run is the warm-up
                start = time.perf_counter()
                await user.press(picker, title)
                result = await user.wait_for_message(lambda m: m.photo, timeout=600)
                elapsed = time.perf_counter() - start
                size = (result.largest_photo.width, result.largest_photo.height)
                await user.wait_for_message(lambda m: (m.text or "").startswith("✅"), timeout=60)
                start = time.perf_counter()
                await asyncio.to_thread(stylizer.stylize, original, style, max_side=1280)
                pure = time.perf_counter() - start
                if i:
                    end_to_end.append(elapsed)
                    inference.append(pure)
        finally:
            await app.dispatcher.stop_polling()
            await polling
            await app.close()
            await client.close()
            await server.stop()

    e2e = statistics.median(end_to_end)
    pure = statistics.median(inference)
    return {
        "what": "embedded mode, warm: press style -> result photo stored by the emulator",
        "photo": f"{original.width}x{original.height}",
        "result": f"{size[0]}x{size[1]}",
        "style": style,
        "runs": runs,
        "end_to_end_s": [round(x, 3) for x in end_to_end],
        "inference_s": [round(x, 3) for x in inference],
        "median_end_to_end_s": round(e2e, 3),
        "median_inference_s": round(pure, 3),
        "overhead_ratio": round(e2e / pure, 3),
        "target_ratio": 1.3,
        "cpu": cpu_info().model,
        "cores": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--style", default="wave")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("totoshka.bot.job_handler").setLevel(logging.INFO)  # per-phase timings
    report = asyncio.run(main(args.runs, args.style))
    print(json.dumps(report, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bot_job_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
