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
- ``stats+flow``: both;
- ``trust``: the blending above with a soft mask T_t in place of M_t (`TrustField`):
  forward-backward agreement times the input's own colour agreement along the flow,
  so where the input itself changed (a real camera's light, blur, noise) the
  painting is allowed to change too. Same flow and cost as ``flow``; on the camera
  clip it stays faithful to the per-frame painting (≥ 25 dB where ``flow`` gave
  23.7) at the same flicker on the synthetic clips;
- ``fastflow``: ``trust`` with the flow at half size (a quarter of the pixels: the
  blend costs a fifth), every frame still painted;
- ``keyframes``: ``fastflow`` painting only every other frame, the frames between
  carried along the flow (`KeyframeBlend`): half the network's time, at the price
  of faithfulness (a carried frame is a frame-old painting moved, not a new one).

The trade-off every blend here makes: a stronger pull towards the carried output
(α, or carrying whole frames) flickers less and departs further from what the
network paints for the frame; benchmarks/results/video.md has the figures.

How much each helps is measured by `metrics` and `benchmarks/video_bench.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

DEFAULT_ALPHA = 0.85


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixel coordinates of an h × w frame, made once per size (a clip has one
    or two sizes: its own and the flow's): rebuilding them cost a third of the blend."""
    grid = _GRIDS.get((h, w))
    if grid is None:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        grid = _GRIDS[(h, w)] = (xs, ys)
    return grid


def _sources(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grid_x, grid_y = _grid(*flow.shape[:2])
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
    return (((total**2).sum(-1) < tolerance) & (inside(back) > 0)).astype(np.float32)


def inside(back: np.ndarray) -> np.ndarray:
    """1 where the flow's source lies in the previous frame, 0 where the pixel has no
    source there (it just entered: warping would smear the border into it)."""
    x, y = _sources(back)
    h, w = back.shape[:2]
    return ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).astype(np.float32)


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


class Consistency:
    """A consistency method's state over one clip. `wants(frame)` is asked for every
    input frame in order, before any is painted: whether the network must paint it
    (a method that carries frames along the flow saves the painting). Then
    `__call__(frame, painted)` in the same order gives the output frame; ``painted``
    is None for a frame it did not want."""

    def wants(self, frame: np.ndarray) -> bool:
        return True

    def __call__(self, frame: np.ndarray, painted: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError


def _painted(painted: np.ndarray | None) -> np.ndarray:
    if painted is None:
        raise ValueError("this method paints every frame")
    return painted


class FlowBlend(Consistency):
    """Method ``flow``: the previous output warped along the input's flow, blended
    with this frame's painting where the flow is trusted."""

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        self.alpha = alpha
        self.flows = FlowField()
        self._prev_out: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, painted: np.ndarray | None) -> np.ndarray:
        painted = _painted(painted)
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


class PerFrame(Consistency):
    """Method ``none``: every frame painted on its own (the reference, flickers)."""

    def __call__(self, frame: np.ndarray, painted: np.ndarray | None) -> np.ndarray:
        return _painted(painted)


class TrustField:
    """The flow a keyframe method follows, at a fraction of `FlowField`'s price, and
    how far each pixel may be trusted (0..1) instead of a yes/no mask.

    The flow is DIS on a copy at ``scale`` of the frame's size, scaled back up: four
    times fewer pixels, and the painted frame is smooth at that scale anyway. Trust
    is the product of two checks, both made at the small size: forward-backward
    agreement (`consistent`: occlusions, pixels that just entered) and the input's
    own colours — the previous *input* frame warped along the flow must look like
    this one, weighted exp(−λ‖ΔI‖²) with colours in 0..1, the occlusion weight of Lai
    et al. (2018)'s short-term loss (λ = 50). The colour check catches what flow
    consistency cannot: a light switched on, a reflection, compression blocks
    changing, motion blur — there the painting should change, as the input did.
    """

    def __init__(
        self,
        scale: float = 0.5,
        preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        colour_weight: float = 50.0,
        backward_check: bool = True,
    ) -> None:
        self.scale = scale
        self.backward_check = backward_check
        self.colour_weight = colour_weight
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def _small(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = frame.shape[:2]
        size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
        small = frame if size == (w, h) else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        return small, cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow from this frame to the previous one, trust), both at the frame's size;
        None for the first frame or after a change of size."""
        small, grey = self._small(frame)
        prev, self._prev = self._prev, (small, grey)
        if prev is None or prev[1].shape != grey.shape:
            return None
        back = self._dis.calc(grey, prev[1], None)
        if self.backward_check:
            trust = consistent(back, self._dis.calc(prev[1], grey, None))
        else:
            trust = inside(back)
        if self.colour_weight > 0:
            moved = warp(prev[0], back).astype(np.float32)
            change = ((small.astype(np.float32) - moved) ** 2).sum(-1) / 255.0**2
            trust *= np.exp(-self.colour_weight * change)
        h, w = frame.shape[:2]
        if (w, h) != (grey.shape[1], grey.shape[0]):
            sx, sy = w / grey.shape[1], h / grey.shape[0]
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR)
            back[..., 0] *= sx
            back[..., 1] *= sy
            trust = cv2.resize(trust, (w, h), interpolation=cv2.INTER_LINEAR)
        return back, trust


class KeyframeBlend(Consistency):
    """Method ``keyframes``: only every ``every``-th frame is painted; the frames
    between are the previous output carried along the flow.

    A painted frame is blended as in `FlowBlend`, O = P + α·T·(W − P) with the trust
    T of `TrustField`. A frame between keyframes is W, the previous output warped:
    it adds no new strokes, so no flicker of its own, and costs no painting (the
    network is most of a clip's time). Pixels the flow cannot vouch for there (1 − T:
    occluded, just entered, changed colour) are carried too, for at most
    ``every`` − 1 frames, and remembered as stale (a map warped along with the
    output); the next keyframe paints them afresh instead of blending them in.
    A frame is painted early when more than ``repaint`` of it is untrusted (a cut,
    a fast move, a real camera's noise and light): that is where carrying would
    show, and where the input itself flickers enough to allow a new painting.
    """

    def __init__(
        self,
        every: int = 2,
        alpha: float = DEFAULT_ALPHA,
        repaint: float = 0.05,
        field: TrustField | Callable[[], TrustField] | None = None,
    ) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self.alpha = alpha
        self.repaint = repaint
        if callable(field):
            field = field()
        self.field = field or TrustField()
        self._steps: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._since_key = 0
        self._prev_out: np.ndarray | None = None
        self._stale: np.ndarray | None = None
        self.painted = 0  # frames the network painted (the rest were carried)

    def wants(self, frame: np.ndarray) -> bool:
        step = self.field.step(frame)
        self._steps.append(step)
        fresh = (
            step is None
            or self._since_key + 1 >= self.every
            or float((step[1] < 0.5).mean()) > self.repaint
        )
        self._since_key = 0 if fresh else self._since_key + 1
        self.painted += fresh
        return fresh

    def __call__(self, frame: np.ndarray, painted: np.ndarray | None) -> np.ndarray:
        step = self._steps.pop(0) if self._steps else self.field.step(frame)
        prev = self._prev_out
        if step is None or prev is None or prev.shape != frame.shape:
            if painted is None:
                raise ValueError("the first frame of a clip must be painted")
            out, self._stale = painted, None
        else:
            flow, trust = step
            warped = warp(prev, flow, cv2.INTER_CUBIC)
            stale = warp(self._stale, flow) if self._stale is not None else None
            if painted is None:
                out = warped
                untrusted = 1.0 - trust
                self._stale = untrusted if stale is None else np.maximum(stale, untrusted)
            else:
                weight = self.alpha * trust
                if stale is not None:
                    weight *= 1.0 - stale
                out = cv2.blendLinear(warped, painted, weight, 1.0 - weight)
                self._stale = None
        self._prev_out = out
        return out


def full_size_field() -> TrustField:
    """`TrustField` at the frame's own size: the flow `FlowField` computes, plus the
    colour check."""
    return TrustField(scale=1.0)


@dataclass(frozen=True)
class Method:
    """A consistency method: whether frames share norm statistics, and the blend
    that runs after painting (input frame, painted frame) -> output frame."""

    name: str
    shared_stats: bool
    blend: Callable[[], Consistency]


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("none", False, PerFrame),
        Method("stats", True, PerFrame),
        Method("flow", False, FlowBlend),
        Method("stats+flow", True, FlowBlend),
        Method("trust", False, partial(KeyframeBlend, every=1, field=full_size_field)),
        Method("fastflow", False, partial(KeyframeBlend, every=1)),
        Method("keyframes", False, partial(KeyframeBlend, every=2)),
    )
}
