#!/usr/bin/env python
"""Big photos in bounded memory: time, peak RSS and PSNR of each way to paint one.

Each row runs in a fresh process (its own peak RSS): the untiled eager fp32
reference, untiled OpenVINO (a budget that lets it run untiled), the OpenVINO tiles
with exact statistics measured norm by norm (`ovtiles`, the path before issue 13)
and the stage-by-stage bands (`ovstream`). The rows that are compared run
alternately, `--rounds` times, so a neighbour's load falls on both alike; every
picture is compared with the reference (PSNR) and crops at band/tile junctions
are saved as PNG for looking at.

    .venv/bin/python benchmarks/tiling_12mp.py --size 4000x3000 --styles wave,mosaic

Needs TOTOSHKA_MODEL_MIRROR (or the models cached) and the photo from
../shared/images/content (read, never copied). IRs are made by a warm-up at a
small size of the same residue class first, as a server has them on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = ("eager-untiled", "ov-untiled", "ov-tiles", "ov-stream")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load(style: str, size: tuple[int, int], photo: str) -> tuple[Any, Any]:
    import numpy as np
    import torch
    from PIL import Image

    from totoshka.engine.factory import open_engine
    from totoshka.engine.models.registry import load_network
    from totoshka.engine.settings import EngineSettings

    engine = open_engine(EngineSettings())
    record = engine.catalog.style(style)
    model = engine.catalog.model(record.model)
    net = load_network(engine.store.ensure(model), model, record).eval()
    image = Image.open(photo).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return net, x.contiguous()


def run_row(row: str, style: str, size: tuple[int, int], photo: str, cache: str, out: str) -> None:
    import numpy as np
    import torch

    from totoshka.engine.backends.openvino import OpenVinoRunner

    net, x = load(style, size, photo)
    runner = OpenVinoRunner("bf16", cache_dir=Path(cache), max_pixels=None)
    t0 = time.perf_counter()
    with torch.inference_mode():
        if row == "eager-untiled":
            y = net(x).clamp(0, 255)
        elif row == "ov-untiled":
            y = runner.run(net, x)
        elif row == "ov-tiles":
            y = runner.tiles().stylize(net, x)
        elif row == "ov-stream":
            y = runner.stream().stylize(net, x, runner.tiles().norms(net, x))
        else:
            raise ValueError(row)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out:
        np.save(out, y.numpy()[0].transpose(1, 2, 0).astype(np.float32))
    print("ROW " + json.dumps({"row": row, "s": seconds, "peak_mb": peak}), flush=True)


def child(row: str, style: str, size: tuple[int, int], photo: str, cache: str, out: str) -> dict:
    code = (
        "import sys, json; from benchmarks.tiling_12mp import run_row; "
        "run_row(*json.loads(sys.argv[1]))"
    )
    args = json.dumps([row, style, list(size), photo, cache, out])
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-c", code, args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=root,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    return {"row": row, "error": proc.stderr.strip().splitlines()[-3:]}


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = 0.0
    for i in range(0, a.shape[0], 500):  # in strips: two 12-MP float64 copies are 600 MB
        d = a[i : i + 500].astype(np.float64) - b[i : i + 500].astype(np.float64)
        mse += float((d * d).sum())
    mse /= a.size
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def crops(
    ref: Any, pictures: dict[str, Any], rows: list[int], cols: list[int], folder: Path
) -> None:
    """128×128 crops centred on junctions: reference | painted | |difference| × 25."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        for c in cols:
            r0, c0 = max(0, r - 64), max(0, c - 64)
            parts = [ref[r0 : r0 + 128, c0 : c0 + 128]]
            for y in pictures.values():
                part = y[r0 : r0 + 128, c0 : c0 + 128]
                parts += [part, np.clip(np.abs(part - parts[0]) * 25, 0, 255)]
            strip = np.concatenate([p.clip(0, 255).astype(np.uint8) for p in parts], axis=1)
            big = Image.fromarray(strip).resize((strip.shape[1] * 2, 256), Image.Resampling.NEAREST)
            big.save(folder / f"crop-r{r}-c{c}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default="4000x3000")
    p.add_argument("--styles", default="wave,mosaic")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--rounds", type=int, default=2, help="alternating runs of the compared rows")
    shared = Path(os.environ.get("TOTOSHKA_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    p.add_argument("--photo", default=str(shared / "images" / "content" / "venice-boat.jpg"))
    p.add_argument("--out", default=None, help="folder for crops and pictures (default: temp)")
    p.add_argument(
        "--reference",
        default=None,
        help="folder keeping the eager fp32 pictures between runs ({style}-{size}.npy):\n"
        "read when there, painted (row eager-untiled) and kept when not",
    )
    p.add_argument("--crop-rows", default="", help="rows to crop at (default: tile junctions)")
    args = p.parse_args(argv)
    import numpy as np

    width, height = (int(v) for v in args.size.split("x"))
    out = Path(args.out or tempfile.mkdtemp(prefix="tiling12mp-"))
    out.mkdir(parents=True, exist_ok=True)
    cache = str(out / "compiled")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; size {width}x{height}; out {out}")
    asked = [r for r in args.rows.split(",") if r]
    for style in args.styles.split(","):
        rows = list(asked)
        # the IRs every row reads, made once (a server has them on disk)
        for row in ("ov-untiled", "ov-tiles", "ov-stream"):
            if row in rows:
                child(row, style, (400 + width % 4, 300 + height % 4), args.photo, cache, "")
        files = {r: str(out / f"{style}-{r}.npy") for r in rows}
        kept = Path(args.reference) / f"{style}-{width}x{height}.npy" if args.reference else None
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            files["eager-untiled"] = str(kept)
            if kept.exists():
                rows = [r for r in rows if r != "eager-untiled"]
                print(f"reference: {kept} (kept from an earlier run)")
            elif "eager-untiled" not in rows:
                rows = ["eager-untiled", *rows]
        results: dict[str, list[dict]] = {r: [] for r in rows}
        if "eager-untiled" in rows:
            results["eager-untiled"].append(
                child(
                    "eager-untiled",
                    style,
                    (width, height),
                    args.photo,
                    cache,
                    files["eager-untiled"],
                )
            )
        for _ in range(args.rounds):
            for r in rows:
                if r != "eager-untiled":
                    results[r].append(child(r, style, (width, height), args.photo, cache, files[r]))
        has_ref = "eager-untiled" in files and Path(files["eager-untiled"]).exists()
        if "eager-untiled" in rows and any("error" in x for x in results["eager-untiled"]):
            has_ref = False
        ref = np.load(files["eager-untiled"], mmap_mode="r") if has_ref else None
        print(f"\n{style} {width}x{height}")
        print("| row | s (each round) | peak RSS MB (max) | PSNR dB vs eager fp32 untiled |")
        print("|---|---|---|---|")
        pictures = {}
        for r in rows:
            runs = results[r]
            if any("error" in x for x in runs):
                print(f"| {r} | error: {runs} | | |")
                continue
            db = "ref"
            if ref is not None and r != "eager-untiled":
                pictures[r] = np.load(files[r], mmap_mode="r")
                db = f"{psnr(pictures[r], ref):.1f}"
            times = ", ".join(f"{x['s']:.1f}" for x in runs)
            print(f"| {r} | {times} | {max(x['peak_mb'] for x in runs):.0f} | {db} |")
        if ref is not None and pictures:
            from totoshka.engine import tile_geometry

            cfg = tile_geometry.TileConfig(tile=512, overlap=64)
            rws = [b for _, b, _, _ in tile_geometry.axis_tiles(height, cfg)[:-1]][:3]
            cls = [b for _, b, _, _ in tile_geometry.axis_tiles(width, cfg)[:-1]][:2]
            if args.crop_rows:  # e.g. the bands' junctions, which tile junctions miss
                rws = [int(v) for v in args.crop_rows.split(",")]
            crops(
                np.asarray(ref),
                {k: np.asarray(v) for k, v in pictures.items()},
                rws,
                cls,
                out / style,
            )
            print(f"crops at junctions rows {rws} cols {cls}: {out / style}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
