"""Issue 14's figure: every built-in style's time at 1280×960 on the fast path.

    .venv/bin/python benchmarks/style_times.py [--runs 5] [--out FILE.md]

Each offered style paints venice-boat.jpg (../shared) resized to 1280×960 through
the runner `auto` picks here, as the CLI and the bot do: one warm-up (which converts
and compiles for OpenVINO the first time a network is seen), then the median of
`--runs` timed calls, the eager fp32 reference of each family once for the ratio.
Styles of one shared network (Magenta presets, Dumoulin styles) share its compiled
model, so their times differ only by noise. Prints the CPU it ran on. Needs the model
mirror (TOTOSHKA_MODEL_MIRROR: ../shared/models and build/mirror).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from PIL import Image

from totoshka.engine.backends import select_runner
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings
from totoshka.engine.stylizer import Stylizer, to_tensor

REPO = Path(__file__).resolve().parents[1]


def median_time(stylizer: Stylizer, photo: Image.Image, style: str, runs: int) -> float:
    stylizer.stylize(photo, style, max_side=None)  # warm: load, convert, compile
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        stylizer.stylize(photo, style, max_side=None)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    shared = Path(os.environ.get("TOTOSHKA_SHARED", REPO.parent / "shared"))
    photo = Image.open(shared / "images" / "content" / "venice-boat.jpg").convert("RGB")
    photo = photo.resize((1280, 960), Image.Resampling.LANCZOS)
    engine = open_engine(EngineSettings())
    fast = engine.stylizer()
    eager = Stylizer(engine.catalog, engine.store, runner=select_runner("eager"))
    lines = [f"CPU: {cpu_info().line()}", "", "| style | family | fast path | s | × eager |"]
    lines.append("|---|---|---|---|---|")
    reference: dict[str, float] = {}
    for style_id, _ in engine.offered_styles():
        style = engine.catalog.style(style_id)
        family = engine.catalog.model(style.model).family
        seconds = median_time(fast, photo, style_id, args.runs)
        key = style.model if family in ("magenta", "dumoulin") else style_id
        if key not in reference:
            reference[key] = median_time(eager, photo, style_id, max(1, args.runs // 2))
        choose = getattr(fast.runner, "choose", None)  # AutoRunner: the path it serves
        probe = to_tensor(photo)
        path = choose(fast.network(style_id), probe).name if choose else fast.runner.name
        row = f"| {style_id} | {family} | {path} | {seconds:.2f} | {reference[key] / seconds:.1f} |"
        lines.append(row)
        print(row, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
