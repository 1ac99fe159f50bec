"""A network run with instance-norm statistics it is given, on the path that serves it.

A clip flickers partly because every frame is normalised by its own statistics: a
bright object entering the frame shifts every norm's mean and with it the colours
of the whole painting. Painting all frames with the same statistics (pooled over
frames sampled across the clip) removes that part of the flicker. The statistics
are measured once per clip in eager fp32 (`measure`), then replayed per frame:

- on OpenVINO, through the IR `ovtiles` already makes for tiles, whose norms take
  (mean, var) as inputs: exported once per model and frame size (cached on disk
  like every IR) and compiled with the picture as its only output, so a frame
  costs what an ordinary OpenVINO pass costs;
- on the eager paths, with `layers.replay_stats` around the forward pass;
- on any other path (CUDA's captured graphs would not see a replayed tape), eagerly
  on the CPU: correct, slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from totoshka.engine import tiling
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.backends.ovconvert import MAX_SIDE, MIN_SIDE, bound_style
from totoshka.engine.models.layers import StatsTape, record_stats, replay_stats


def pool(tapes: Sequence[StatsTape]) -> StatsTape:
    """The statistics of all the tapes' pixels together (equal-sized frames): the mean
    of the means, and the variance about that mean (within plus between frames)."""
    pooled = StatsTape()
    for norm in tapes[0].stats:
        means = torch.stack([t.stats[norm][0].double() for t in tapes])
        variances = torch.stack([t.stats[norm][1].double() for t in tapes])
        mean = means.mean(0)
        var = (variances + means**2).mean(0) - mean**2
        pooled.stats[norm] = (mean.float(), var.clamp_min(0).float())
    return pooled


def measure(net: nn.Module, frames: Sequence[Tensor]) -> StatsTape:
    """Each norm's statistics pooled over `frames` (float32 NCHW 0..255, one size)."""
    tapes = []
    with torch.inference_mode():
        for x in frames:
            tape = StatsTape()
            with record_stats(tape):
                net(x)
            tapes.append(tape)
    return pool(tapes)


class StatsReplay:
    """`run(x)`: `net` on `x` with the norms using `tape`; frames of `sample`'s size."""

    def __init__(self, runner: Any, net: nn.Module, tape: StatsTape, sample: Tensor) -> None:
        self.net = net
        self.tape = tape
        self.shape = sample.shape
        chosen = runner.choose(net, sample) if hasattr(runner, "choose") else runner
        self.name = getattr(chosen, "name", "eager-fp32")
        self._request: Any = None
        self._head: list[Any] = []
        self._stats: list[Any] = []
        h, w = sample.shape[-2:]
        if hasattr(chosen, "tiles") and min(h, w) >= MIN_SIDE and max(h, w) <= MAX_SIDE:
            self._openvino(chosen, sample)
        self.forward = tiling.eager_forward
        if self.name == "torch-bf16" or (self.name.startswith("openvino") and cpu_info().fast_bf16):
            self.forward = tiling.bf16_forward

    def _openvino(self, runner: Any, sample: Tensor) -> None:
        tiles = runner.tiles()
        norms = tiles.norms(self.net, sample)
        full = tiles.model(self.net, norms, tuple(sample.shape[-2:]))
        self._request = tiles.compile(full, 0).create_infer_request()
        style = bound_style(self.net)
        self._head = [] if style is None else [style.detach().float().contiguous().numpy()]
        for norm in norms:
            mean, var = self.tape.stats[norm]
            self._stats += [
                mean.reshape(1, -1, 1, 1).float().numpy(),
                var.reshape(1, -1, 1, 1).float().numpy(),
            ]

    def run(self, x: Tensor) -> Tensor:
        if self._request is not None:
            inputs = [x.detach().float().contiguous().numpy(), *self._head, *self._stats]
            out = self._request.infer(inputs)[0]
            return torch.from_numpy(out.copy()).clamp_(0, 255)
        with torch.inference_mode(), replay_stats(self.tape):
            return self.forward(self.net, x).float().clamp_(0, 255)
