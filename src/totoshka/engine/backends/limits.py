"""What a picture may be for each inference path: sides and the memory budget.

These numbers decide which path paints a picture (untiled, tiled, OpenVINO or
eager), so the torch path (`eager`, `openvino`, `ovconvert`) and the torch-free
one (`engine.coldpath`, which serves a cached IR without importing torch) must
read the very same ones. They live here, in a module that imports nothing, so the
second does not pay seconds of torch import for a handful of constants.

When to tile: when the estimated peak memory of one untiled pass would exceed
the worker's budget (the operator's `TOTOSHKA_MEMORY_BUDGET_MB`, i.e.
`EngineSettings.memory_budget_mb`, given to the runners by `select_runner`;
default 1500 MB, the same number as `settings.DEFAULT_MEMORY_BUDGET_MB`). The
estimate is the process's baseline plus the path's measured bytes per pixel
(peak RSS of one untiled pass, benchmarks/results): eager fp32 ≈ 490 B/px (5.9 GB
at 12 MP), OpenVINO bf16 ≈ 425 B/px (2.4 GB at 2560×1920, 1.14 GB at 1600×1200). A
fixed pixel count cannot be right for both paths nor for a worker given more
memory; with the default budget OpenVINO bf16 stays untiled up to ≈ 2.9 MP (the
bot's 1280×960 pictures by far) and eager fp32 up to ≈ 2.5 MP.
"""

from __future__ import annotations

DEFAULT_MEMORY_BUDGET_MB = 1500
BASELINE_MB = 330  # interpreter, torch, OpenVINO, one model: measured before the first picture
EAGER_FP32_BYTES_PER_PIXEL = 490
# peak RSS of one untiled OpenVINO bf16 pass per pixel, measured: 2.4 GB at 2560×1920
OPENVINO_BYTES_PER_PIXEL = 425
BUDGET = "budget"  # a runner's `max_pixels` default: derived from the memory budget

# The OpenVINO exports: sides ≡ r (mod ALIGN) share one IR; smaller pictures go
# through eager (Magenta pads them specially), bigger ones are not exported.
ALIGN = 4
MIN_SIDE = 16
MAX_SIDE = 8192
# `auto` calibrates on a picture cut from the photo; below this side it serves eager fp32
MIN_CALIBRATION_SIDE = 32


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
