#!/usr/bin/env python
"""Photos per second on a GPU, one style, 1280×960 (issue "Speed and memory").

Three levels, each against the eager fp32 CPU reference computed in the same run:

1. engine: `CudaRunner.run_batch` from CPU float tensors to CPU float tensors
   (host↔device copies included), per precision × layout × batch size;
2. device only: the network on pictures already on the GPU, CUDA events
   (what the copies and the CPU side cost is the difference to level 1);
3. product: `Stylizer` (backend ``auto``: calibration, `BatchingRunner`) called
   by N threads at once, each decoding a JPEG, stylizing and encoding the result
   as JPEG, which is what the bot's workers do per job.

    python benchmarks/gpu_throughput.py --mirror .devdata/models \\
        --photo .devdata/images/content/amber.jpg \\
        --painting .devdata/images/styles/the_scream.jpg --json out.json

Prints the CPU and GPU it ran on, a table, and writes JSON with every number.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from totoshka.engine import bench
from totoshka.engine.backends.cuda import CudaRunner
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def engine_rate(
    net: torch.nn.Module,
    x: torch.Tensor,
    dtype: str,
    channels_last: bool,
    batch: int,
    seconds: float,
    graphs: bool = True,
) -> dict[str, Any]:
    runner = CudaRunner(
        dtype=DTYPES[dtype], max_batch=batch, channels_last=channels_last, use_graphs=graphs
    )
    xs = [x.clone() for _ in range(batch)]
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        ys = runner.run_batch(net, xs)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        ys = runner.run_batch(net, xs)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "batch": batch,
        "median_batch_s": med,
        "photos_per_s": batch / med,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        "out": ys[0],
    }


def device_rate(
    net: torch.nn.Module, x: torch.Tensor, dtype: str, channels_last: bool, batch: int
) -> dict[str, Any]:
    runner = CudaRunner(dtype=DTYPES[dtype], max_batch=batch, channels_last=channels_last)
    model = runner._on_device(net)
    xb = x.repeat(batch, 1, 1, 1).cuda()
    with torch.inference_mode():
        for _ in range(3):
            runner._forward(model, xb)
        torch.cuda.synchronize()
        times = []
        for _ in range(20):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            runner._forward(model, xb)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
    med = statistics.median(times)
    return {"batch": batch, "median_batch_s": med, "photos_per_s": batch / med}


def product_rate(
    family: str,
    style: str,
    photo_jpeg: bytes,
    painting: Path | None,
    settings: EngineSettings,
    threads: int,
    seconds: float,
    torch_threads: int | None = None,
    own_per_job: bool = True,
) -> dict[str, Any]:
    """Stylizer('auto') from N threads: JPEG in, JPEG out, as the bot's workers do.

    `torch_threads` overrides the intra-op threads the product sets (to show why
    it sets them); own styles get a slightly different vector per job, as
    different users' paintings would (`own_per_job`)."""
    from totoshka.engine.stylizer import OwnStyle

    stylizer = open_engine(settings.model_copy(update={"backend": "auto"})).stylizer()
    target: Any = style
    vector: list[float] = []
    if family == "magenta":
        assert painting is not None
        vector = stylizer.style_vector(Image.open(painting))
        target = OwnStyle(vectors=((tuple(vector), 1.0),))
    if torch_threads:
        torch.set_num_threads(torch_threads)
    counter = iter(range(10**9))

    def one() -> int:
        image = Image.open(io.BytesIO(photo_jpeg))
        image.load()
        job_target = target
        if family == "magenta" and own_per_job:
            k = next(counter) % 97
            job_target = OwnStyle(vectors=((tuple(v * (1 + k / 1000) for v in vector), 1.0),))
        result = stylizer.stylize(image, job_target, max_side=1280)
        buf = io.BytesIO()
        result.save(buf, "JPEG", quality=90)
        return len(buf.getvalue())

    one()  # calibration of the path, network load
    runner = stylizer.runner
    check = batched_vs_alone(stylizer, family, target, vector, photo_jpeg, threads)
    done = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            one()
            with lock:
                done += 1

    # a first window at this concurrency captures the graphs of the batch sizes it
    # forms (and cuDNN tunes them); it is reported as the cold rate
    def window(length: float) -> tuple[int, float]:
        nonlocal done, stop
        done, stop = 0, time.perf_counter() + length
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(loop) for _ in range(threads)]:
                f.result()
        return done, time.perf_counter() - t0

    cold_done, cold_s = window(seconds / 2)
    sizes_before = len(getattr(runner, "batch_sizes", []))
    done, elapsed = window(seconds)
    sizes = list(getattr(runner, "batch_sizes", []))[sizes_before:]
    return {
        "batched_vs_alone_psnr_db": check,
        "torch_threads": torch.get_num_threads(),
        "threads": threads,
        "photos": done,
        "seconds": elapsed,
        "photos_per_s": done / elapsed,
        "cold_photos_per_s": cold_done / cold_s,
        "served_by": getattr(runner, "last_path", getattr(runner, "name", "?")),
        "mean_batch": statistics.mean(sizes) if sizes else None,
    }


def batched_vs_alone(
    stylizer: Any, family: str, target: Any, vector: list[float], photo_jpeg: bytes, n: int
) -> float | None:
    """The worst PSNR between a picture painted inside a concurrent batch and the
    same job painted alone (own styles: a different vector per job, stacked)."""
    from totoshka.engine.stylizer import OwnStyle

    if n < 2:
        return None
    image = Image.open(io.BytesIO(photo_jpeg)).convert("RGB")
    targets = [
        OwnStyle(vectors=((tuple(v * (1 - k / 50) for v in vector), 1.0),))
        if family == "magenta"
        else target
        for k in range(n)
    ]
    with ThreadPoolExecutor(n) as pool:
        together = list(pool.map(lambda t: np.asarray(stylizer.stylize(image, t)), targets))
    worst = float("inf")
    for t, got in zip(targets, together, strict=True):
        alone = np.asarray(stylizer.stylize(image, t))
        worst = min(worst, psnr(torch.tensor(got), torch.tensor(alone)))
    return worst


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mirror", required=True)
    p.add_argument("--photo", required=True)
    p.add_argument("--painting", required=True)
    p.add_argument("--style", default="wave")
    p.add_argument("--families", default="ml5,magenta")
    p.add_argument("--dtypes", default="fp32,fp16,bf16")
    p.add_argument("--layouts", default="nchw,channels_last")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--graphs", default="on,off", help="CUDA graphs: on, off or both")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--product-threads", default="1,16,32")
    p.add_argument("--product-seconds", type=float, default=8.0)
    p.add_argument(
        "--oversubscribed",
        action="store_true",
        help="also the product run with torch's default intra-op threads",
    )
    p.add_argument("--json", default=None)
    args = p.parse_args()
    settings = EngineSettings(model_mirror=args.mirror)

    gpu = torch.cuda.get_device_name()
    head = {
        "cpu": cpu_info().line(),
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    for k, v in head.items():
        print(f"{k}: {v}", flush=True)
    report: dict[str, Any] = {**head, "engine": [], "device": [], "product": []}
    # the product level gets a 1280×960 JPEG (q 92), what a phone photo becomes in Telegram
    buf = io.BytesIO()
    Image.open(args.photo).convert("RGB").resize((1280, 960), Image.Resampling.LANCZOS).save(
        buf, "JPEG", quality=92
    )
    photo_jpeg = buf.getvalue()
    rows = []
    for family in args.families.split(","):
        torch.set_num_threads(os.cpu_count() or 1)  # the CPU reference: every core
        spec = bench.RowSpec(
            family=family,
            style=args.style,
            width=1280,
            height=960,
            path="eager-fp32",
            repeats=1,
            warmup=0,
            out="",
            settings=bench.row_settings(settings),
            photo=args.photo,
            painting=args.painting,
        )
        net = bench.load_net(spec, open_engine(settings)).eval()
        x = bench.load_photo(spec)
        with torch.inference_mode():
            t0 = time.perf_counter()
            ref = net(x).clamp(0, 255)
            ref_s = time.perf_counter() - t0
        gflop = bench.flops_per_pixel(net) * 1280 * 960 / 1e9
        print(
            f"{family}: CPU eager fp32 reference {ref_s:.3f} s "
            f"({torch.get_num_threads()} threads), {gflop:.0f} GFLOP/photo",
            flush=True,
        )
        report.setdefault("reference", {})[family] = {"cpu_s": ref_s, "gflop": gflop}
        for dtype in args.dtypes.split(","):
            for layout in args.layouts.split(","):
                cl = layout == "channels_last"
                for batch, graphs in [
                    (int(b), g == "on")
                    for b in args.batches.split(",")
                    for g in args.graphs.split(",")
                ]:
                    try:
                        r = engine_rate(net, x, dtype, cl, batch, args.seconds, graphs)
                        d = device_rate(net, x, dtype, cl, batch)
                    except Exception as exc:  # e.g. out of memory: say so, go on
                        print(f"{family} {dtype} {layout} b{batch}: {exc!r}"[:300], flush=True)
                        continue
                    db = psnr(r.pop("out"), ref)
                    row = {
                        "family": family,
                        "dtype": dtype,
                        "layout": layout,
                        **r,
                        "psnr_db": db,
                        "device_photos_per_s": d["photos_per_s"],
                        "tflops": gflop * d["photos_per_s"] / 1000,
                        "x_cpu_ref": ref_s * r["photos_per_s"],
                    }
                    report["engine"].append(row)
                    rows.append(row)
                    print(
                        f"{family:8} {dtype:5} {layout:13} batch {batch:3} "
                        f"graphs {'on ' if graphs else 'off'}: "
                        f"{r['photos_per_s']:7.1f} photos/s engine, "
                        f"{d['photos_per_s']:7.1f} device-only, {db:6.1f} dB, "
                        f"GPU peak {r['gpu_peak_mb']:.0f} MB",
                        flush=True,
                    )
                    torch.cuda.empty_cache()
        product_runs = [(int(t), None) for t in args.product_threads.split(",") if t]
        if args.oversubscribed:
            product_runs.append((max(t for t, _ in product_runs), os.cpu_count() or 1))
        for threads, torch_threads in product_runs:
            try:
                pr = product_rate(
                    family,
                    args.style,
                    photo_jpeg,
                    Path(args.painting),
                    settings,
                    threads,
                    args.product_seconds,
                    torch_threads,
                )
            except Exception as exc:
                print(f"{family} product {threads} threads: {exc!r}"[:300], flush=True)
                continue
            pr["family"] = family
            report["product"].append(pr)
            print(
                f"{family:8} product (JPEG in/out, Stylizer auto) {threads:3} threads "
                f"(torch intra-op {pr['torch_threads']}): "
                f"{pr['photos_per_s']:6.1f} photos/s, served by {pr['served_by']}, "
                f"mean batch {pr['mean_batch']}",
                flush=True,
            )

    print(
        "\n| family | precision | layout | batch | photos/s (CPU tensors in/out) "
        "| photos/s (device only) | device TFLOP/s | × CPU ref | PSNR dB | GPU peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r['dtype']} | {r['layout']} | {r['batch']} "
            f"| {r['photos_per_s']:.1f} | {r['device_photos_per_s']:.1f} | {r['tflops']:.1f} "
            f"| {r['x_cpu_ref']:.0f} | {r['psnr_db']:.1f} | {r['gpu_peak_mb']:.0f} |"
        )
    for pr in report["product"]:
        print(
            f"product {pr['family']}: {pr['threads']} threads, torch intra-op "
            f"{pr['torch_threads']} -> {pr['photos_per_s']:.1f} "
            f"photos/s ({pr['served_by']}, mean batch {pr['mean_batch']})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
