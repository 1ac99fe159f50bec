"""Eager PyTorch: fp32 (the reference path, the way pytorch/examples stylizes, and
the fallback that always works) and bf16 autocast (cheap on CPUs with AMX or
AVX512-BF16, and the engine for tiles of big photos on such CPUs).

Pictures above `max_pixels` go through `tiling.stylize_tiled` (bounded memory,
whole-picture norm statistics); below it, one untiled pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from totoshka.engine import tiling

# Above this a single pass costs more memory than a bot worker should take
# (eager fp32 ≈ 0.5 GB per megapixel); 1280×960 (the default max side) stays untiled.
DEFAULT_MAX_PIXELS = 2_500_000


def run_untiled_or_tiled(
    net: nn.Module,
    x: Tensor,
    forward: tiling.TileForward,
    max_pixels: int | None,
    tile_cfg: tiling.TileConfig | None = None,
) -> Tensor:
    """One pass for ordinary pictures, tiles (exact statistics) for big ones."""
    with torch.inference_mode():
        if max_pixels is not None and x.shape[0] == 1 and x.shape[-2] * x.shape[-1] > max_pixels:
            return tiling.stylize_tiled(net, x, tile_cfg, forward)
        return forward(net, x).float()


class EagerRunner:
    """fp32 eager: the reference and the fallback."""

    name = "eager-fp32"

    def __init__(self, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        return run_untiled_or_tiled(net, x, tiling.eager_forward, self.max_pixels)

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        return [self.run(net, x) for x in xs]


class TorchBf16Runner:
    """bf16 autocast on CPU; instance-norm statistics stay float32 (see layers.py)."""

    name = "torch-bf16"

    def __init__(self, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        return run_untiled_or_tiled(net, x, tiling.bf16_forward, self.max_pixels).clamp(0, 255)

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        return [self.run(net, x) for x in xs]
