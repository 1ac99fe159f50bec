"""How a painted clip is judged: flicker, and whether it is still the same painting.

- `warping_error`: Lai et al. (2018)'s temporal warping error, the mean over frames
  and pixels of M_t · ‖O_t − warp(O_{t−1})‖², colours in 0..1, with the flow and the
  occlusion mask M taken from the *input* frames — so a method cannot score by
  blurring the flow it is judged with. Its flow is the estimator the `flow` method
  uses (DIS "medium", full size), which flatters that method; `independent=True`
  measures with Farnebäck's flow instead, which the method never saw.
- `psnr` against the per-frame painting, and `cosine` between the Magenta style
  vectors of an output frame and of its per-frame painting: "consistent" must not
  just mean "blurred" or "less painted".

All take frames as HWC uint8 RGB; they are for tests and benchmarks, not the bot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from totoshka.engine.video.temporal import FlowField, warp


class WarpingError:
    """`add(input, output)` frame after frame, then `value`: streaming, so a whole
    clip's error is measured without holding it."""

    def __init__(self, independent: bool = False) -> None:
        self.field = FlowField(None if independent else cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.total = 0.0
        self.count = 0
        self._prev: np.ndarray | None = None

    def add(self, frame: np.ndarray, out: np.ndarray) -> None:
        step = self.field.step(frame)
        now = out.astype(np.float32) / 255.0
        if step is not None and self._prev is not None:
            flow, mask = step
            diff = ((now - warp(self._prev, flow)) ** 2).sum(-1)
            self.total += float((mask * diff).sum() / max(1.0, float(mask.sum())))
            self.count += 1
        self._prev = now

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


def warping_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> float:
    """The warping error of ``outputs`` with flow and masks from ``inputs`` (same
    sizes). Passing the inputs as outputs gives the source clip's own error."""
    metric = WarpingError()
    for frame, out in zip(inputs, outputs, strict=True):
        metric.add(frame, out)
    return metric.value


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def cosine(u: Sequence[float], v: Sequence[float]) -> float:
    a, b = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return float(a @ b / max(1e-12, float(np.linalg.norm(a) * np.linalg.norm(b))))
