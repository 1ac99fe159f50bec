"""Temporal consistency: what keeps a painted clip from flickering.

A feed-forward style network paints each frame from scratch, so small changes
between frames (noise, compression, a slight move) become large changes in the
strokes: painted frame by frame, a pan over a photo changes about 16× more from
frame to frame than the source does (Lai et al. 2018 report 1.2–2.8× for their
clips). The fix here is flow-guided blending (Ruder et al. 2016, in its cheap
feed-forward form): optical flow on the *input* frames (OpenCV's DIS "medium" on
a full-size grey copy: the cheaper half-size "fast" flow left 3-4x more flicker
in the benchmark, see benchmarks/results/video.md), the
previous *output* frame warped along it, occluded pixels (where the forward and
backward flows disagree) left as painted, and the rest blended:

    O_t = P_t + M_t · α · (warp(O_{t-1}) − P_t)

Blending a recursive output keeps strokes where the scene moved them, and the
painting of the current frame keeps the style from fading (α < 1; the cosine of
the style vectors against per-frame painting is reported by the benchmark).

Methods (`METHODS`), alone and combined:

- ``none``: every frame painted on its own (the reference: it flickers);
- ``stats``: every frame normalised with instance-norm statistics pooled over
  frames sampled across the clip (`backends.shared_stats`): no global flicker of
  colour and contrast, strokes still re-drawn per frame;
- ``flow``: the blending above;
- ``stats+flow``: both.

How much each helps is measured by `metrics` and `benchmarks/video_bench.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_ALPHA = 0.85


def _sources(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return grid_x + flow[..., 0], grid_y + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` sampled at x + flow(x): the previous frame moved onto this one when
    ``flow`` is the flow from this frame to the previous one."""
    x, y = _sources(flow)
    return cv2.remap(image, x, y, interpolation=interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistent(back: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """The mask M: 1 where following the backward flow and then the forward flow
    returns (within the usual tolerance of Sundaram et al. 2010), 0 where the pixel
    was occluded, the flow is unreliable, or it comes from outside the frame (a
    pan's new edge: warping would smear the border into it)."""
    there = warp(forward, back)
    total = back + there
    tolerance = 0.01 * ((back**2).sum(-1) + (there**2).sum(-1)) + 0.5
    x, y = _sources(back)
    h, w = back.shape[:2]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)  # no source: just entered
    return (((total**2).sum(-1) < tolerance) & inside).astype(np.float32)


class FlowField:
    """Flows between consecutive input frames, and the occlusion mask. `preset` is a
    DIS preset, or None for Farnebäck's method (an independent estimator, for
    checking a DIS-based method with a flow it was not built on)."""

    def __init__(self, preset: int | None = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        if preset is None:
            self.calc = lambda a, b: cv2.calcOpticalFlowFarneback(
                a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0
            )
        else:
            dis = cv2.DISOpticalFlow_create(preset)
            self.calc = lambda a, b: dis.calc(a, b, None)
        self._prev: np.ndarray | None = None

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow from this frame to the previous one, mask), or None for the first."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape:
            return None
        back = self.calc(grey, prev)
        forward = self.calc(prev, grey)
        return back, consistent(back, forward)


class FlowBlend:
    """Method ``flow``: the previous output warped along the input's flow, blended
    with this frame's painting where the flow is trusted."""

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        self.alpha = alpha
        self.flows = FlowField()
        self._prev_out: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, painted: np.ndarray) -> np.ndarray:
        step = self.flows.step(frame)
        prev = self._prev_out
        if step is None or prev is None or prev.shape != painted.shape:
            out = painted
        else:
            flow, mask = step
            # bicubic: a recursive output resampled bilinearly every frame blurs
            warped = warp(prev, flow, cv2.INTER_CUBIC).astype(np.float32)
            now = painted.astype(np.float32)
            weight = (self.alpha * mask)[..., None]
            out = np.clip(now + weight * (warped - now) + 0.5, 0, 255).astype(np.uint8)
        self._prev_out = out
        return out


class PerFrame:
    """Method ``none``: every frame painted on its own (the reference, flickers)."""

    def __call__(self, frame: np.ndarray, painted: np.ndarray) -> np.ndarray:
        return painted


Blend = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """A consistency method: whether frames share norm statistics, and the blend
    that runs after painting (input frame, painted frame) -> output frame."""

    name: str
    shared_stats: bool
    blend: Callable[[], Blend]


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("none", False, PerFrame),
        Method("stats", True, PerFrame),
        Method("flow", False, FlowBlend),
        Method("stats+flow", True, FlowBlend),
    )
}
