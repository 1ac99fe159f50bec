"""`totoshka bench`: every inference path against the reference, in one run.

The reference is what pytorch/examples does: eager fp32, one picture, untiled.
Each row (family × size × path) runs in its own fresh Python process, so its
peak RSS (`getrusage` max RSS of that process) is its own and no allocator
state leaks between rows; the child writes its picture to a temporary .npy and
the parent computes PSNR against the reference row of the same run. Speed-ups
are ratios to the reference measured in the same run, because other work on a
shared machine makes absolute times drift.

GFLOP/s is the network's useful work (multiply-adds × 2, counted once with
`torch.utils.flop_counter` at a small size and scaled by pixels) over the
median time; tiled rows do more arithmetic than that (overlaps, measuring
passes), which is why their GFLOP/s is lower than the engine they use.

Child protocol (internal): `python -m totoshka.engine.bench --row '<json>'`
prints one line `ROW <json>`. The row carries the parent's engine settings (their
`EngineSettings` fields only, never a bot's token), so a child measures what the
parent was configured for and reads no configuration of its own.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.factory import Engine, open_engine, runner_for
from totoshka.engine.settings import EngineSettings
from totoshka.engine.store import split_mirrors

if TYPE_CHECKING:  # torch is imported by the functions that measure, not by the CLI
    from torch import Tensor, nn

REFERENCE = "eager-fp32"
SIZES: dict[str, tuple[int, int]] = {  # name -> (width, height)
    "640x480": (640, 480),
    "1280x960": (1280, 960),
    "4000x3000": (4000, 3000),
}
DEFAULT_PATHS = ("auto", "best", "torch-bf16", "openvino-bf16", "openvino-fp32")
FAMILIES = ("ml5", "magenta")
BIG_PIXELS = 4_000_000  # above this a row runs once, without warm-up (minutes each)


@dataclass
class RowSpec:
    family: str
    style: str
    width: int
    height: int
    path: str
    repeats: int
    warmup: int
    out: str  # where the child writes its picture (.npy)
    settings: dict[str, Any] = field(default_factory=dict)  # `row_settings` of the parent
    photo: str | None = None
    painting: str | None = None
    threads: int | None = None
    batch: int = 1


@dataclass
class Row:
    family: str
    style: str
    size: str
    path: str
    # the child's measures (`run_row`); a row that failed has only `error`
    served_by: str = "-"
    median_s: float = math.nan
    times_s: list[float] = field(default_factory=list)
    peak_rss_mb: float = math.nan
    gflop: float = math.nan
    gflops_per_s: float = math.nan
    speedup: float | None = None
    psnr_db: float | None = None
    error: str | None = None


@dataclass
class Report:
    cpu: str
    torch: str
    openvino: str | None
    threads: int
    rows: list[Row] = field(default_factory=list)


# ------------------------------------------------------------------------------------
# What is measured: the network, the picture


def row_settings(settings: EngineSettings) -> dict[str, Any]:
    """The engine settings a row carries to its child, as JSON: every `EngineSettings`
    field and nothing else (a bot's `Settings` holds its token)."""
    return settings.model_dump(mode="json", include=set(EngineSettings.model_fields))


def load_net(spec: RowSpec, engine: Engine) -> nn.Module:
    """The network of `spec.family`: an ml5 style, or Magenta bound to a painting's vector.

    Loaded afresh, not through the engine's Stylizer: a row measures one network
    alone, with no cache of others in its process."""
    from totoshka.engine.models.registry import load_network

    catalog, store = engine.catalog, engine.store
    if spec.family == "ml5":
        style = catalog.style(spec.style)
        model = catalog.model(style.model)
        return load_network(store.ensure(model), model, style)
    if spec.family == "magenta":
        from totoshka.engine.models import magenta

        folder = store.ensure(catalog.model("magenta"))
        return magenta.load_bound(folder, magenta_vector(folder, spec.painting))
    raise ValueError(f"unknown family {spec.family!r}")


def magenta_vector(folder: Path, painting: str | None) -> np.ndarray:
    """The style vector of `painting` (the predictor at 256×256), or a fixed one without it."""
    import torch
    from PIL import Image

    from totoshka.engine.models import magenta

    if painting is None or not Path(painting).exists():
        gen = torch.Generator().manual_seed(0)
        return (torch.randn(magenta.STYLE_DIM, generator=gen) * 0.5).numpy()
    predictor = magenta.load_predictor(magenta.model_files(folder)[0])
    size = (magenta.PREDICTOR_SIZE, magenta.PREDICTOR_SIZE)
    image = Image.open(painting).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return predictor(x)[0].numpy()


def load_photo(spec: RowSpec) -> Tensor:
    """The photo at the row's size (a smooth synthetic picture when there is none)."""
    import torch
    from PIL import Image

    size = (spec.width, spec.height)
    if spec.photo and Path(spec.photo).exists():
        image = Image.open(spec.photo).convert("RGB").resize(size, Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.float32)
    else:
        yy, xx = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float32)
        array = np.stack(
            [
                127 + 100 * np.sin(xx / 57.0) * np.cos(yy / 43.0),
                127 + 100 * np.cos((xx + yy) / 91.0),
                127 + 80 * np.sin(yy / 29.0),
            ],
            axis=-1,
        )
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0)
    return x.contiguous()


def flops_per_pixel(net: nn.Module, side: int = 128) -> float:
    """FLOPs (2 × multiply-adds) per input pixel, counted by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, side, side) * 255
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(x)
    return counter.get_total_flops() / (side * side)


# ------------------------------------------------------------------------------------
# The child: one row, one process


def run_row(spec: RowSpec) -> dict[str, Any]:
    import torch

    from totoshka.engine.backends.eager import EagerRunner

    if spec.threads:
        torch.set_num_threads(spec.threads)
    settings = EngineSettings(**spec.settings)  # every field given: nothing is read here
    net = load_net(spec, open_engine(settings))
    x = load_photo(spec)
    # the reference never tiles (it is what tiling is compared to)
    runner: Any = (
        EagerRunner(max_pixels=None) if spec.path == REFERENCE else runner_for(settings, spec.path)
    )
    batch = [x] * spec.batch
    times = []
    y: Tensor | None = None
    with torch.inference_mode():
        for i in range(spec.warmup + spec.repeats):
            t0 = time.perf_counter()
            if spec.batch > 1:
                y = runner.run_batch(net, batch)[0]
            else:
                y = runner.run(net, x)
            elapsed = (time.perf_counter() - t0) / spec.batch
            if i >= spec.warmup:
                times.append(elapsed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert y is not None
    np.save(spec.out, y.float().numpy())
    served = getattr(runner, "last_path", None) or getattr(runner, "name", spec.path)
    pixels = spec.width * spec.height
    # the runner that served (auto's choice): its own limit says whether it tiled
    serving = getattr(runner, "last_runner", None) or runner
    limit = getattr(serving, "max_pixels", None)
    if spec.path != REFERENCE and isinstance(limit, int) and pixels > limit:
        # Above the memory budget every runner tiles, each with its own engine
        # (OpenVINO runners fall back to eager tiles only on an error, which is logged).
        served = f"tiled {served}"
    gflop = flops_per_pixel(net) * pixels / 1e9
    median = statistics.median(times)
    return {
        "served_by": served,
        "median_s": median,
        "times_s": times,
        "peak_rss_mb": peak_mb,
        "gflop": gflop,
        "gflops_per_s": gflop / median,
    }


# ------------------------------------------------------------------------------------
# The parent: rows in fresh processes, the table


def spawn_row(spec: RowSpec, timeout: float | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "totoshka.engine.bench", "--row", json.dumps(asdict(spec))]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"[:300]}


def default_pictures(
    settings: EngineSettings, photo: str | None, painting: str | None
) -> tuple[str | None, str | None]:
    """The photo and painting to measure with: those given, else the ones beside a
    mirror folder laid out like ../shared (images/ beside models/), else None (a
    synthetic photo; a fixed style vector)."""
    folders = [m for m in split_mirrors(settings.model_mirror) if isinstance(m, Path)]
    if folders and folders[0].is_dir():
        shared = folders[0].resolve().parent
        photo = photo or str(shared / "images" / "content" / "venice-boat.jpg")
        painting = painting or str(shared / "images" / "styles" / "starry_night.jpg")
    return photo, painting


def run_bench(
    settings: EngineSettings,
    *,
    families: tuple[str, ...] = FAMILIES,
    sizes: tuple[str, ...] = ("640x480", "1280x960"),
    paths: tuple[str, ...] = DEFAULT_PATHS,
    repeats: int = 3,
    style: str = "wave",
    photo: str | None = None,
    painting: str | None = None,
    threads: int | None = None,
    batch: int = 1,
    timeout: float | None = 1800,
    progress: Any = None,
) -> Report:
    """Measure the reference and every path, per family and size, in fresh processes,
    each with the engine `settings` (mirror, cache, memory budget, ...)."""
    import torch

    from totoshka.engine.backends.quality import psnr

    carried = row_settings(settings)
    photo, painting = default_pictures(settings, photo, painting)
    try:
        import openvino

        ov_version: str | None = openvino.__version__
    except ImportError:
        ov_version = None
    report = Report(
        cpu=cpu_info().line(),
        torch=torch.__version__,
        openvino=ov_version,
        threads=threads or torch.get_num_threads(),
    )
    with tempfile.TemporaryDirectory(prefix="totoshka-bench-") as tmp:
        for family in families:
            for size in sizes:
                width, height = parse_size(size)
                big = width * height > BIG_PIXELS
                ref_out: str | None = None
                ref_time: float | None = None
                for path in (REFERENCE, *[p for p in paths if p != REFERENCE]):
                    out = str(Path(tmp) / f"{family}-{size}-{path}.npy")
                    spec = RowSpec(
                        family=family,
                        style=style if family == "ml5" else "magenta",
                        width=width,
                        height=height,
                        path=path,
                        repeats=1 if big else repeats,
                        warmup=0 if big else 1,
                        out=out,
                        settings=carried,
                        photo=photo,
                        painting=painting,
                        threads=threads,
                        batch=batch,
                    )
                    if progress is not None:
                        progress(f"{family} {size} {path}")
                    result = spawn_row(spec, timeout)
                    row = Row(family, spec.style, size, path, **result)
                    if row.error is None:
                        if path == REFERENCE:
                            ref_out, ref_time = out, row.median_s
                            row.speedup, row.psnr_db = 1.0, math.inf
                        elif ref_out is not None and ref_time is not None:
                            row.speedup = ref_time / row.median_s
                            row.psnr_db = psnr(
                                torch.from_numpy(np.load(out)), torch.from_numpy(np.load(ref_out))
                            )
                        if path != REFERENCE:
                            Path(out).unlink(missing_ok=True)
                    report.rows.append(row)
                    if progress is not None:
                        progress(format_row(row))
                if ref_out is not None:
                    Path(ref_out).unlink(missing_ok=True)
    return report


def parse_size(size: str) -> tuple[int, int]:
    if size in SIZES:
        return SIZES[size]
    w, _, h = size.lower().partition("x")
    return int(w), int(h)


def _fmt(v: float | None, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "ref"
    return format(v, spec)


HEADER = "| family | size | path | served by | median s | × ref | PSNR dB | peak RSS MB | GFLOP/s |"


def format_row(row: Row) -> str:
    if row.error:
        return f"| {row.family} | {row.size} | {row.path} | error: {row.error} |||||"
    return (
        f"| {row.family} | {row.size} | {row.path} | {row.served_by} | {_fmt(row.median_s, '.3f')}"
        f" | {_fmt(row.speedup, '.1f')} | {_fmt(row.psnr_db, '.1f')}"
        f" | {_fmt(row.peak_rss_mb, '.0f')} | {_fmt(row.gflops_per_s, '.0f')} |"
    )


def format_table(report: Report) -> str:
    lines = [
        f"CPU: {report.cpu}",
        f"torch {report.torch}, openvino {report.openvino or 'not installed'},"
        f" {report.threads} threads",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|",
        *(format_row(r) for r in report.rows),
    ]
    return "\n".join(lines)


def report_json(report: Report, extra: dict[str, Any] | None = None) -> str:
    """The report as JSON (NaN as null, the reference's PSNR as "inf"), with `extra`
    keys beside its own (the CLI's cold rows)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
            return None if math.isnan(v) else "inf"
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean({**asdict(report), **(extra or {})}), indent=1)


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m totoshka.engine.bench")
    parser.add_argument("--row", required=True)
    args = parser.parse_args(argv)
    spec = RowSpec(**json.loads(args.row))
    try:
        result = run_row(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print("ROW " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
