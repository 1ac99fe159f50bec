"""Benchmark (not a test): own style at 1280x960, warm — the painting's vector
(predictor, three crops) plus the bound transfer network — time and peak RSS of a
fresh process. `python tests/own_style/bench_own_style.py [runs]`."""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from own_style_helpers import make_stylizer
from PIL import Image

from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.stylizer import OwnStyle

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    stylizer = make_stylizer(Path(tempfile.mkdtemp()), SHARED / "models")
    painting = Image.open(SHARED / "images" / "styles" / "the_scream.jpg").convert("RGB")
    photo = Image.open(SHARED / "images" / "content" / "amber.jpg").convert("RGB")
    photo = photo.crop((0, 135, 1080, 945)).resize((1280, 960), Image.Resampling.LANCZOS)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timings: dict[str, list[float]] = {"vector": [], "stylize": [], "total": [], "s0.7": []}
    for i in range(runs + 1):  # the first run warms up (loading, allocator)
        t0 = time.perf_counter()
        vector = tuple(stylizer.style_vector(painting))
        t1 = time.perf_counter()
        out = stylizer.stylize(photo, OwnStyle(vectors=((vector, 1.0),)), max_side=None)
        t2 = time.perf_counter()
        weak = OwnStyle(vectors=((vector, 1.0),), style_strength=0.7)
        stylizer.stylize(photo, weak, max_side=None)
        t3 = time.perf_counter()
        assert out.size == (1280, 960)
        if i:
            timings["vector"].append(t1 - t0)
            timings["stylize"].append(t2 - t1)
            timings["total"].append(t2 - t0)
            timings["s0.7"].append(t3 - t2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"CPU: {cpu_info().model}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"own style 1280x960, median of {runs} warm runs (eager fp32):")
    print(f"  painting -> vector (3 crops): {statistics.median(timings['vector']) * 1000:.0f} ms")
    print(f"  photo -> painting (transfer): {statistics.median(timings['stylize']):.2f} s")
    print(f"  both: {statistics.median(timings['total']):.2f} s")
    print(
        f"  with style strength 0.7 (+ photo's vector): {statistics.median(timings['s0.7']):.2f} s"
    )
    print(f"peak RSS: {peak:.0f} MB (after imports and setup: {rss_before:.0f} MB)")


if __name__ == "__main__":
    main()
