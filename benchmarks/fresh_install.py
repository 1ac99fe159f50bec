"""The README's install, measured as a user gets it (issue 10's acceptance figures).

Run with the Python of an environment built by `bash scripts/setup.sh` in a fresh
clone (not the test venv), e.g.

    /path/to/fresh/.venv/bin/python benchmarks/fresh_install.py [--big]

In one run, alternating so that load on the machine hits both alike:

- `totoshka stylize` of a 1280×960 photo (style wave), whole process: once with
  one photo and once with `--batch` copies; the steady per-photo time is the
  difference over the extra photos;
- the reference: eager fp32 forward of the same network on the same picture,
  in this process (the best of three, after a warm-up);
- with `--big`: one 4000×3000 full-resolution `stylize` (`--max-side 4000`), its
  wall time and the peak RSS of that process (its children included: getrusage).

Every stylize run gets the same warm model cache (TOTOSHKA_CACHE_DIR, filled from
TOTOSHKA_MODEL_MIRROR), so conversions and calibrations are measured once, in the
first, cold run, which is reported apart. Prints the CPU it ran on, and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def cpu_line() -> str:
    from totoshka.engine.backends.hardware import cpu_info

    return cpu_info().line()


def make_photo(shared: Path, size: tuple[int, int], path: Path) -> Path:
    source = shared / "images" / "content" / "venice-boat.jpg"
    Image.open(source).convert("RGB").resize(size, Image.Resampling.LANCZOS).save(path, quality=92)
    return path


def peak_of(command: list[str], env: dict[str, str]) -> tuple[int, float, str, int]:
    """Run `command`; (exit code, wall s, stderr, its own peak RSS in MB).

    Through GNU time, which forks it from a small process: Linux gives a child the
    peak RSS of the process it was forked from, so getrusage/wait4 from this script
    (torch loaded) would report at least this script's own peak."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8",
            check=False,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        peak_kb = int(Path(rss.name).read_text(encoding="utf-8").split()[-1])
    return proc.returncode, wall, proc.stderr, round(peak_kb / 1024)


def stylize(photos: list[Path], out: Path, env: dict[str, str], *extra: str) -> dict:
    """One whole `totoshka stylize` process: wall time, its own peak RSS, warnings."""
    command = [str(BIN / "totoshka"), "stylize", *map(str, photos), "--style", "wave",
               "--out-dir", str(out), *extra]  # fmt: skip
    code, wall, stderr, peak = peak_of(command, env)
    if code != 0:
        raise SystemExit(f"stylize failed: {stderr[-2000:]}")
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mb": peak,
        "warnings": [line for line in stderr.splitlines() if "not used" in line or "falls" in line],
    }


def eager_reference(cache: Path, mirror: str, photo: Path) -> float:
    from totoshka.engine.factory import open_engine
    from totoshka.engine.models.registry import load_network
    from totoshka.engine.settings import EngineSettings
    from totoshka.engine.stylizer import to_tensor

    # the network alone, eager: no runner (and no OpenVINO) in this process
    engine = open_engine(EngineSettings(cache_dir=cache, model_mirror=mirror))
    style = engine.catalog.style("wave")
    model = engine.catalog.model(style.model)
    net = load_network(engine.store.ensure(model), model, style)
    x = to_tensor(Image.open(photo).convert("RGB"))
    times = []
    with torch.inference_mode():
        net(x)
        for _ in range(3):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=5, help="photos in the batched run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also 4000×3000 full resolution")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args()
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR") or str(REPO.parent / "shared" / "models")
    shared = Path(os.environ.get("TOTOSHKA_SHARED") or REPO.parent / "shared")
    work = Path(tempfile.mkdtemp(prefix="totoshka-fresh-"))
    cache = work / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTOSHKA_")}
    env.update(TOTOSHKA_CACHE_DIR=str(cache), TOTOSHKA_MODEL_MIRROR=mirror)
    photo = make_photo(shared, (1280, 960), work / "photo.jpg")
    many = [photo] + [work / f"copy{i}.jpg" for i in range(1, args.batch)]
    for p in many[1:]:
        p.write_bytes(photo.read_bytes())

    print(f"CPU: {cpu_line()}", flush=True)
    print(f"environment: {sys.prefix}", flush=True)
    cold = stylize([photo], work / "out", env)  # converts, calibrates: the first run ever
    print(f"cold stylize (empty compiled cache): {cold['wall_s']} s", flush=True)
    singles, batches, refs = [], [], []
    for _ in range(args.rounds):
        singles.append(stylize([photo], work / "out", env)["wall_s"])
        batches.append(stylize(many, work / "out", env)["wall_s"])
        refs.append(eager_reference(cache, mirror, photo))
    single, batch, ref = statistics.median(singles), statistics.median(batches), min(refs)
    per_photo = (batch - single) / (args.batch - 1)
    report = {
        "cpu": cpu_line(),
        "environment": sys.prefix,
        "cold_single_s": cold["wall_s"],
        "cold_warnings": cold["warnings"],
        "single_process_s": single,
        "batch_process_s": batch,
        "batch": args.batch,
        "per_photo_steady_s": round(per_photo, 3),
        "eager_fp32_forward_s": round(ref, 3),
        "speedup_steady_vs_eager_forward": round(ref / per_photo, 2),
        "rounds": {"single": singles, "batch": batches, "eager": [round(r, 3) for r in refs]},
    }
    if args.big:
        big = make_photo(shared, (4000, 3000), work / "big.jpg")
        report["full_4000x3000"] = stylize([big], work / "out", env, "--max-side", "4000")
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
