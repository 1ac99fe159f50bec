#!/usr/bin/env python
"""How low can a painted pan's warping error go? The floor of issue 12's flicker metric.

The pan-and-zoom clip (tests/video_clips.py) has known motion: every frame is a
window cut from one photo. So an *ideally* consistent painting exists: paint the
whole photo once, at the scale the windows show it, and cut the same windows from
the painting. Its strokes move exactly with the scene, nothing is re-drawn, and
nothing is blurred. Whatever warping error it still has is the metric's own floor
for that style on that clip (the bilinear warp of sharp strokes and the flow's
errors, both measured on the input), and its PSNR against per-frame painting says
how far from "the network's painting of this frame" a perfectly steady clip is.

Rows: per-frame painting (``none``), the ideal, and the blends (``flow`` at several
α, ``trust``), each as warping error (absolute and × the input's own), PSNR
against per-frame painting, and the style-vector cosine to it.

    TOTOSHKA_MODEL_MIRROR=../shared/models .venv/bin/python benchmarks/video_floor.py \\
        --frames 90 --size 480x270 --styles own,wave

The input clip is written as H.264 and decoded, as `video_bench.py` measures it.
The own style's painting is read from ../shared (a benchmark, not a test clip).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOTOSHKA_SHARED") or ROOT.parent / "shared")
sys.path.insert(0, str(ROOT / "tests"))

import video_clips as vc  # noqa: E402

from totoshka.engine.backends.hardware import cpu_info  # noqa: E402
from totoshka.engine.factory import open_engine  # noqa: E402
from totoshka.engine.own_style import OwnStyle  # noqa: E402
from totoshka.engine.settings import EngineSettings  # noqa: E402
from totoshka.engine.video.metrics import cosine, psnr, warping_error  # noqa: E402
from totoshka.engine.video.temporal import FlowBlend, KeyframeBlend, full_size_field  # noqa: E402

PAINTING = "composition_vii.jpg"  # the own style video_bench.py uses
MEAN_ZOOM = 0.875  # pan_and_zoom's window shrinks from 1.0 to 0.75 of its first width


def ideal_pan(engine: Any, style: Any, n: int, first: np.ndarray, folder: Path) -> list:
    """The pan's windows cut from the whole photo painted once, at the windows' mean
    scale (so strokes have the size per-frame painting gives them)."""
    size = (first.shape[1], first.shape[0])
    photo = Image.open(vc.ASTRONAUT).convert("RGB")
    scale = size[0] / (photo.width * 0.6 * MEAN_ZOOM)
    side = (round(photo.width * scale), round(photo.height * scale))
    big = photo.resize(side, Image.Resampling.LANCZOS)
    painted = engine.paint(big, style, max_side=None).resize(photo.size, Image.Resampling.LANCZOS)
    path = folder / "painted-photo.png"
    painted.save(path)
    return list(vc.pan_and_zoom(n, size, photo=path))


def table(
    engine: Any,
    name: str,
    style: Any,
    frames: list[np.ndarray],
    own_error: float,
    alphas: list[float],
    folder: Path,
) -> None:
    """The rows of one style: per-frame painting, the ideal, and the blends."""
    per = [np.asarray(engine.paint(Image.fromarray(f), style, max_side=None)) for f in frames]
    step = max(1, len(per) // 6)
    vectors = {i: engine.style_vector(Image.fromarray(per[i])) for i in range(0, len(per), step)}

    def row(method: str, outs: list[np.ndarray]) -> None:
        error = warping_error(frames, outs)
        db = float(np.mean([psnr(o, q) for o, q in zip(outs[1:], per[1:], strict=True)]))
        cos = min(
            cosine(engine.style_vector(Image.fromarray(outs[i])), v) for i, v in vectors.items()
        )
        shown = "ref" if method == "none" else f"{db:.1f}"
        ratio = error / own_error
        cells = f"{error:.5f} | {ratio:.2f} | {shown} | {cos:.4f}"
        print(f"| {name} | {method} | {cells} |", flush=True)

    row("none", per)
    row("ideal (painted once, panned)", ideal_pan(engine, style, len(frames), frames[0], folder))
    for alpha in alphas:
        blend: Any = FlowBlend(alpha=alpha)
        row(f"flow α {alpha}", [blend(f, q) for f, q in zip(frames, per, strict=True)])
        blend = KeyframeBlend(every=1, alpha=alpha, field=full_size_field)
        row(f"trust α {alpha}", [blend(f, q) for f, q in zip(frames, per, strict=True)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=90)
    p.add_argument("--size", default="480x270")
    p.add_argument("--styles", default="own,wave")
    p.add_argument("--alphas", default="0.85,0.92,0.95")
    args = p.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    w, h = (int(v) for v in args.size.split("x"))
    print(f"CPU: {cpu_info().line()}")
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR") or str(SHARED / "models")
    engine = open_engine(EngineSettings(model_mirror=mirror))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = vc.write_clip(folder / "pan.mp4", vc.pan_and_zoom(args.frames, (w, h)), 30)
        frames = vc.read_frames(clip)
        own_error = warping_error(frames, frames)
        print(f"pan over astronaut.jpg, {len(frames)} frames at {w}x{h}, 30 fps;")
        print(f"the input's own warping error: {own_error:.6f}\n")
        print("| style | method | warping error | x input | dB vs per-frame | style cosine |")
        print("|---|---|---|---|---|---|")
        for name in args.styles.split(","):
            style: Any = name
            if name == "own":
                painting = Image.open(SHARED / "images" / "styles" / PAINTING).convert("RGB")
                style = OwnStyle(vectors=((tuple(engine.style_vector(painting)), 1.0),))
            table(engine, name, style, frames, own_error, alphas, folder)


if __name__ == "__main__":
    main()
