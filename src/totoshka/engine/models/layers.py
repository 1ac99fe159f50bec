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
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Stats = tuple[Tensor, Tensor]


class StatsTape:
    """Per-layer (mean, var) of a forward pass, keyed by the norm module."""

    def __init__(self) -> None:
        self.stats: dict[nn.Module, Stats] = {}

    def __len__(self) -> int:
        return len(self.stats)


# (mode, tape): mode "record" stores the statistics each norm computes,
# "replay" makes each norm use the stored ones instead of its input's.
_active: contextvars.ContextVar[tuple[str, StatsTape] | None] = contextvars.ContextVar(
    "totoshka_norm_stats", default=None
)


@contextlib.contextmanager
def record_stats(tape: StatsTape) -> Iterator[StatsTape]:
    """Run forward passes inside to store each InstanceNorm's statistics in `tape`."""
    token = _active.set(("record", tape))
    try:
        yield tape
    finally:
        _active.reset(token)


@contextlib.contextmanager
def replay_stats(tape: StatsTape) -> Iterator[StatsTape]:
    """Run forward passes inside with each InstanceNorm using the statistics in `tape`."""
    token = _active.set(("replay", tape))
    try:
        yield tape
    finally:
        _active.reset(token)


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
        active = _active.get()
        if active is not None and active[0] == "replay":
            return active[1].stats[self]
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
        if active is not None:
            active[1].stats[self] = (mean, var)
        return mean, var

    def forward(self, x: Tensor) -> Tensor:
        mean, var = self.statistics(x)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, affine={self.weight is not None}"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one side: (before, after), odd pixel after."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: int, stride: int) -> Tensor:
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom))
