"""Building blocks shared by every style network family.

All families normalise with instance norm, and instance norm is what makes big
photos hard: its statistics belong to the *whole* picture, so a photo cut into
tiles must reuse statistics measured on the whole (see `totoshka.engine.tiling`).
Every family therefore normalises through `InstanceNorm`, whose statistics can be
recorded in one pass and supplied in another, without the model code knowing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Stats = tuple[Tensor, Tensor]
R = TypeVar("R")


class StatsTape:
    """Per-layer (mean, var) of a forward pass, keyed by the norm module."""

    def __init__(self) -> None:
        self.stats: dict[nn.Module, Stats] = {}

    def __len__(self) -> int:
        return len(self.stats)


class StatsComplete(Exception):
    """Raised inside a forward pass once the one norm being measured has its sums."""


class StatsAccumulator:
    """Exact per-channel statistics of each norm's input, gathered piece by piece.

    Tiling measures a layer's statistics over the whole picture without ever
    holding the whole feature map: each tile adds the part of the map it owns
    (a partition of the picture), and the parts combine exactly with Chan et
    al.'s pairwise formula in float64, so summation order cannot drift.
    """

    def __init__(self, only: nn.Module | None = None) -> None:
        # module -> (pixel count, per-channel mean, per-channel sum of squared deviations)
        self.parts: dict[nn.Module, tuple[int, Tensor, Tensor]] = {}
        # measure this norm alone and stop the forward pass once it is measured
        # (`StatsComplete`): the layers after it cannot matter to its statistics.
        self.only = only

    def __len__(self) -> int:
        return len(self.parts)

    def add(self, module: nn.Module, x: Tensor) -> None:
        """Add the pixels of `x` (N, C, h, w; N is 1 in practice) to `module`'s sums."""
        if self.only is not None and module is not self.only:
            return
        self._add(module, x)
        if self.only is not None:
            raise StatsComplete

    def _add(self, module: nn.Module, x: Tensor) -> None:
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n == 0:
            return
        var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=0)
        mean64, m2 = mean.double(), var.double() * n
        if module not in self.parts:
            self.parts[module] = (n, mean64, m2)
            return
        n0, mean0, m20 = self.parts[module]
        total = n0 + n
        delta = mean64 - mean0
        self.parts[module] = (
            total,
            mean0 + delta * (n / total),
            m20 + m2 + delta * delta * (n0 * n / total),
        )

    def tape(self) -> StatsTape:
        """The gathered statistics as a tape that `replay_stats` can use."""
        tape = StatsTape()
        for module, (n, mean, m2) in self.parts.items():
            shape = (1, -1, 1, 1)
            tape.stats[module] = (mean.float().view(shape), (m2 / n).float().view(shape))
        return tape


# (mode, tape, measure): mode "record" stores the statistics each norm computes,
# "replay" makes each norm use the stored ones instead of its input's; a
# `_Measure` additionally adds the owned part of each norm's input to an accumulator.
_active: contextvars.ContextVar[tuple[str, StatsTape] | None] = contextvars.ContextVar(
    "totoshka_norm_stats", default=None
)
_measure: contextvars.ContextVar[tuple[StatsAccumulator, Callable[[Tensor], Tensor]] | None] = (
    contextvars.ContextVar("totoshka_norm_measure", default=None)
)


@contextlib.contextmanager
def _setting(var: contextvars.ContextVar[Any], value: Any, result: R) -> Iterator[R]:
    """`var` is `value` inside (reset after, whatever happens); yields `result`."""
    token = var.set(value)
    try:
        yield result
    finally:
        var.reset(token)


def record_stats(tape: StatsTape) -> contextlib.AbstractContextManager[StatsTape]:
    """Run forward passes inside to store each InstanceNorm's statistics in `tape`."""
    return _setting(_active, ("record", tape), tape)


def replay_stats(tape: StatsTape) -> contextlib.AbstractContextManager[StatsTape]:
    """Run forward passes inside with each InstanceNorm using the statistics in `tape`.

    A norm the tape has no entry for computes its own statistics and stores them
    (a partial tape replays the layers it knows and records the rest).
    """
    return _setting(_active, ("replay", tape), tape)


def measure_stats(
    accumulator: StatsAccumulator, owned: Callable[[Tensor], Tensor]
) -> contextlib.AbstractContextManager[StatsAccumulator]:
    """Inside, each InstanceNorm also adds `owned(x)` of its input `x` to `accumulator`.

    Combines with `replay_stats`/`record_stats` (normalisation is unchanged);
    `owned` crops a tile's feature map to the pixels that tile is responsible for,
    so that summed over all tiles every pixel counts exactly once.
    """
    return _setting(_measure, (accumulator, owned), accumulator)


class InstanceNorm(nn.Module):
    """Instance norm with the biased variance, optionally affine.

    Written out rather than `nn.InstanceNorm2d` so that its statistics can be
    recorded and replayed (tiling), and so that `eps` follows each family's
    original runtime (TensorFlow's ml5 net uses 1e-3, PyTorch's 1e-5).
    """

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def statistics(self, x: Tensor) -> Stats:
        measure = _measure.get()
        if measure is not None:
            accumulator, owned = measure
            accumulator.add(self, owned(x))
        active = _active.get()
        if active is not None and active[0] == "replay" and self in active[1].stats:
            return active[1].stats[self]
        # statistics in float32 even under bf16 autocast: the first layers' outputs
        # span thousands, and bf16 sums would lose the low-variance channels.
        xs = x if x.dtype in (torch.float32, torch.float64) else x.float()
        var, mean = torch.var_mean(xs, dim=(2, 3), correction=0, keepdim=True)
        if active is not None:
            active[1].stats[self] = (mean, var)
        return mean, var

    def forward(self, x: Tensor) -> Tensor:
        mean, var = self.statistics(x)
        # (x - mean) / std * weight + bias folded into one per-channel scale and
        # shift: one full-size temporary instead of four (memory for big tiles).
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.view(1, -1, 1, 1)
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias.view(1, -1, 1, 1)
        # under bf16 autocast x is bf16 and scale/shift float32: the result is float32,
        # as precise as the statistics (casting them to bf16 costs ≈ 10 dB).
        return torch.addcmul(shift, x, scale)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, affine={self.weight is not None}"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one side: (before, after), odd pixel after."""
    total = max(kernel - (size % stride or stride), 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: int, stride: int) -> Tensor:
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom))
