"""Issue 16's figures: each crafted hostile file through a whole `totoshka stylize`
process (wall time, peak RSS, what it printed), and the JPEG draft decode of a
7000×5000 camera-sized photo asked for at 1280 px against a full decode + resize.

    .venv/bin/python benchmarks/hostile_files.py [--out FILE.json]

Needs the model mirror (TOTOSHKA_MODEL_MIRROR or ../shared/models) and the photos
(TOTOSHKA_SHARED or ../shared). Prints the CPU it ran on.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))

import hostile_files as hf  # noqa: E402

from totoshka.engine.backends.hardware import cpu_info  # noqa: E402
from totoshka.engine.imageio import load_image  # noqa: E402
from totoshka.engine.stylizer import fit_within  # noqa: E402

CASES = {
    "tiff, ICC tag = 2^64-1": lambda: hf.tiff_with_integer_icc(2**64 - 1),
    "tiff, ICC tag = 2^62": lambda: hf.tiff_with_integer_icc(2**62),
    "tiff, ICC tag = 4294967295": lambda: hf.tiff_with_integer_icc(4294967295),
    "progressive JPEG, 1000 scans, 7000²": hf.progressive_jpeg_repeated_scan,
    "BMP RLE8, 7000², 29 KB": hf.bmp_rle8,
    "PNG 16-bit, 7071²": hf.png_16bit,
    "TIFF float, 7071²": hf.tiff_float,
    "TIFF 1×1, one 16384² tile": hf.tiff_huge_tile,
    "animated WebP, 7000² canvas": hf.animated_webp_huge_canvas,
    "JPEG 16² claiming 7071²": hf.jpeg_claiming_bigger,
}


def run_measured(path: Path, env: dict[str, str]) -> dict:
    """`totoshka stylize` under GNU time, so the peak RSS is that process's own (a child
    forked from this script would inherit this script's peak as its starting point)."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, sys.executable, "-m", "totoshka",
             "stylize", str(path), "--style", "wave", "-o", str(path.with_suffix(".out.jpg"))],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8",
            check=False,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        peak_kb = int(Path(rss.name).read_text(encoding="utf-8").split()[-1])
    err = proc.stderr.strip()
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024),
        "exit": proc.returncode,
        "said": err.splitlines()[-1][:200] if err else "(a picture)",
        "traceback": "Traceback" in err,
    }


def draft_figures(shared: Path) -> dict:
    photo = Image.open(shared / "images" / "content" / "amber.jpg").convert("RGB")
    buf = io.BytesIO()
    photo.resize((7000, 5000), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=92)
    data = buf.getvalue()

    def best(fn, n: int = 3) -> tuple[float, Image.Image]:
        times, out = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    full_s, full = best(lambda: fit_within(load_image(data), 1280))
    draft_s, small = best(lambda: fit_within(load_image(data, max_side=1280), 1280))
    a, b = np.asarray(full, dtype=np.float64), np.asarray(small, dtype=np.float64)
    mse = float(((a - b) ** 2).mean())
    return {
        "file_mb": round(len(data) / 2**20, 1),
        "full_decode_then_resize_s": round(full_s, 3),
        "draft_decode_then_resize_s": round(draft_s, 3),
        "speedup": round(full_s / draft_s, 1),
        "psnr_db": round(10 * math.log10(255**2 / mse), 1) if mse else float("inf"),
        "size": list(small.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    shared = Path(os.environ.get("TOTOSHKA_SHARED") or REPO.parent / "shared")
    env = dict(os.environ)
    env.setdefault("TOTOSHKA_MODEL_MIRROR", str(shared / "models"))
    work = Path(tempfile.mkdtemp(prefix="totoshka-hostile-"))
    env.setdefault("TOTOSHKA_CACHE_DIR", str(work / "cache"))
    print(f"CPU: {cpu_info().line()}")
    rows = {}
    for name, make in CASES.items():
        path = work / (name.split(",")[0].replace(" ", "_") + ".bin")
        path.write_bytes(make())
        row = run_measured(path, env)
        row["bytes"] = path.stat().st_size
        rows[name] = row
        print(f"{name:40s} {row['bytes']:>7d} B {row['wall_s']:6.2f} s "
              f"{row['peak_rss_mb']:5d} MB  exit {row['exit']}  {row['said']}")  # fmt: skip
    report = {
        "cpu": cpu_info().line(),
        "stylize": rows,
        "draft_7000x5000_at_1280": draft_figures(shared),
    }
    print(json.dumps(report["draft_7000x5000_at_1280"]))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
