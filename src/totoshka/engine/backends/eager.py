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

from totoshka.engine import tiling

# When to tile: when the estimated peak memory of one untiled pass would exceed
# the worker's budget (the operator's `TOTOSHKA_MEMORY_BUDGET_MB`, i.e.
# `EngineSettings.memory_budget_mb`, given to the runners by `select_runner`;
# default 1500 MB, the same number as `settings.DEFAULT_MEMORY_BUDGET_MB`). The estimate
# is the process's baseline plus the path's measured bytes per pixel (peak RSS of
# one untiled pass, benchmarks/results): eager fp32 ≈ 490 B/px (5.9 GB at 12 MP),
# OpenVINO bf16 ≈ 425 B/px (2.4 GB at 2560×1920, 1.14 GB at 1600×1200). A fixed
# pixel count cannot be right for both paths nor for a worker given more memory;
# with the default budget OpenVINO bf16 stays untiled up to ≈ 2.9 MP (the bot's
# 1280×960 pictures by far) and eager fp32 up to ≈ 2.5 MP.
DEFAULT_MEMORY_BUDGET_MB = 1500
BASELINE_MB = 330  # interpreter, torch, OpenVINO, one model: measured before the first picture
EAGER_FP32_BYTES_PER_PIXEL = 490
BUDGET = "budget"  # a runner's `max_pixels` default: derived from the memory budget


def pixel_limit(bytes_per_pixel: float, budget_mb: float | None = None) -> int:
    """The most pixels one untiled pass may have under the memory budget (None: the
    default budget)."""
    budget = DEFAULT_MEMORY_BUDGET_MB if budget_mb is None else budget_mb
    return max(0, int((budget - BASELINE_MB) * 2**20 / bytes_per_pixel))


def resolve_max_pixels(
    max_pixels: int | str | None, bytes_per_pixel: float, budget_mb: float | None = None
) -> int | None:
    """`max_pixels` itself, or for `BUDGET` the limit the memory budget sets."""
    if max_pixels == BUDGET:
        return pixel_limit(bytes_per_pixel, budget_mb)
    return max_pixels  # type: ignore[return-value]


# The fp32 limit under the default budget (≈ 2.5 MP), for callers that want a number.
DEFAULT_MAX_PIXELS = pixel_limit(EAGER_FP32_BYTES_PER_PIXEL, DEFAULT_MEMORY_BUDGET_MB)


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
