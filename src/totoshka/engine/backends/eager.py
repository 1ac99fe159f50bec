"""Eager PyTorch: fp32 (the reference path, the way pytorch/examples stylizes, and
the fallback that always works) and bf16 autocast (cheap on CPUs with AMX or
AVX512-BF16, and the engine for tiles of big photos on such CPUs).

Pictures above `max_pixels` (by default: whatever would not fit the memory budget,
see `pixel_limit`) go through `tiling.stylize_tiled` (bounded memory,
whole-picture norm statistics); below it, one untiled pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from totoshka.engine import tile_geometry, tiling
from totoshka.engine.backends.limits import (
    BASELINE_MB,
    BUDGET,
    DEFAULT_MEMORY_BUDGET_MB,
    EAGER_FP32_BYTES_PER_PIXEL,
    pixel_limit,
    resolve_max_pixels,
)

# When to tile, and the numbers that decide it, live in `limits` (torch-free: the
# cold path that serves a cached IR without torch must decide alike); they are
# re-exported here, where callers have always found them.
__all__ = [
    "BASELINE_MB",
    "BUDGET",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MEMORY_BUDGET_MB",
    "EAGER_FP32_BYTES_PER_PIXEL",
    "EagerRunner",
    "TorchBf16Runner",
    "pixel_limit",
    "resolve_max_pixels",
    "run_untiled_or_tiled",
]

# The fp32 limit under the default budget (≈ 2.5 MP), for callers that want a number.
DEFAULT_MAX_PIXELS = pixel_limit(EAGER_FP32_BYTES_PER_PIXEL, DEFAULT_MEMORY_BUDGET_MB)


def run_untiled_or_tiled(
    net: nn.Module,
    x: Tensor,
    forward: tiling.TileForward,
    max_pixels: int | None,
    tile_cfg: tile_geometry.TileConfig | None = None,
) -> Tensor:
    """One pass for ordinary pictures, tiles (exact statistics) for big ones."""
    with torch.inference_mode():
        if max_pixels is not None and x.shape[0] == 1 and x.shape[-2] * x.shape[-1] > max_pixels:
            return tiling.stylize_tiled(net, x, tile_cfg, forward)
        return forward(net, x).float()


class EagerRunner:
    """fp32 eager: the reference and the fallback."""

    name = "eager-fp32"

    def __init__(
        self, max_pixels: int | str | None = BUDGET, *, memory_budget_mb: float | None = None
    ) -> None:
        self.max_pixels = resolve_max_pixels(
            max_pixels, EAGER_FP32_BYTES_PER_PIXEL, memory_budget_mb
        )

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        return run_untiled_or_tiled(net, x, tiling.eager_forward, self.max_pixels)

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        return [self.run(net, x) for x in xs]


class TorchBf16Runner(EagerRunner):
    """bf16 autocast on CPU; instance-norm statistics stay float32 (see layers.py)."""

    name = "torch-bf16"

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        return run_untiled_or_tiled(net, x, tiling.bf16_forward, self.max_pixels).clamp(0, 255)
