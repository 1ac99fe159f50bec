"""Blend variants scored offline on the quality clips of video_bench.py (issue 12).

    .venv/bin/python benchmarks/video_sweep.py \\
        '{"k2": lambda: KeyframeBlend(2)}' pan,scene,camera own,wave

Per-frame paintings and the input flows are cached in /tmp/vw/cache (painting is
deterministic, so a blend variant is scored without painting again); the columns
are those of video_bench.py: DIS-flow warping error (× input), the same with
Farnebäck flow, PSNR against per-frame painting, style cosine every 10th frame,
frames painted, the blend's own ms per frame.
"""

import pickle
import sys
import time

sys.path.insert(0, "tests")
sys.path.insert(0, "benchmarks")
from pathlib import Path

import numpy as np
import video_bench as vb
import video_clips as vc
from PIL import Image

from totoshka.engine.video import cosine, psnr
from totoshka.engine.video.temporal import FlowField, warp

W = Path("/tmp/vw/cache")
W.mkdir(exist_ok=True)
_st = None


def stylizer():
    global _st
    if _st is None:
        from totoshka.engine.factory import open_engine

        _st = open_engine(vb.settings()).stylizer()
    return _st


def clips():
    f = W / "clips"
    if not f.exists():
        f.mkdir()
        vb.make_clips(f, 3.0, False)
    return {n: vc.read_frames(f / f"{n}.mp4") for n in ("pan", "scene", "camera")}


def paintings(name, frames, style):
    f = W / f"{name}.{style}.npy"
    if not f.exists():
        st = stylizer()
        s = vb.own_style(st) if style == "own" else style
        p = st.frame_painter(s)
        out = []
        for i in range(0, len(frames), 4):
            out += p.batch(frames[i : i + 4])
        np.save(f, np.stack(out))
    return list(np.load(f))


def input_flows(name, frames):
    f = W / f"{name}.flows.pkl"
    if not f.exists():
        ff = FlowField()
        ind = FlowField(None)
        res = [(ff.step(x), ind.step(x)) for x in frames]
        f.write_bytes(pickle.dumps(res))
    return pickle.loads(f.read_bytes())


def werr(steps, outs, k):
    tot = 0.0
    n = 0
    prev = None
    for st, o in zip(steps, outs, strict=True):
        s = st[k]
        now = o.astype(np.float32) / 255
        if s is not None and prev is not None:
            flow, m = s
            d = ((now - warp(prev, flow)) ** 2).sum(-1)
            tot += float((m * d).sum() / max(1.0, float(m.sum())))
            n += 1
        prev = now
    return tot / n


def vectors(name, style, outs):
    st = stylizer()
    return {i: st.style_vector(Image.fromarray(outs[i])) for i in range(0, len(outs), 10)}


def score(name, frames, style, make, label, refvec):
    P = paintings(name, frames, style)
    steps = input_flows(name, frames)
    blend = make()
    outs = []
    t = time.perf_counter()
    for f, p in zip(frames, P, strict=True):
        w = blend.wants(f)
        outs.append(blend(f, p if w else None))
    secs = time.perf_counter() - t
    own = werr(steps, frames, 0)
    ownfb = werr(steps, frames, 1)
    e = werr(steps, outs, 0)
    efb = werr(steps, outs, 1)
    db = np.mean([psnr(a, b) for a, b in zip(outs, P, strict=True)])
    vec = vectors(name, style, outs)
    cos = np.mean([cosine(vec[i], refvec[i]) for i in vec])
    painted = getattr(blend, "painted", len(frames))
    cells = [
        name, style, label, f"{e:.5f}", f"{e / own:.2f}x", f"fb {efb / ownfb:.2f}x",
        f"{db:.1f} dB", f"{cos:.4f}", f"painted {painted}/{len(frames)}",
        f"blend {secs / len(frames) * 1000:.1f} ms",
    ]  # fmt: skip
    print("| " + " | ".join(cells) + " |", flush=True)
    return outs


if __name__ == "__main__":
    variants = eval(sys.argv[1])  # dict label -> lambda
    which = sys.argv[2].split(",") if len(sys.argv) > 2 else ["pan", "scene", "camera"]
    styles = sys.argv[3].split(",") if len(sys.argv) > 3 else ["own", "wave"]
    C = clips()
    for name in which:
        for style in styles:
            P = paintings(name, C[name], style)
            rv = vectors(name, style, P)
            for label, make in variants.items():
                score(name, C[name], style, make, label, rv)
