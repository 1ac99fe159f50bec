"""Big photos in bounded memory, with instance-norm statistics of the whole picture.

A feed-forward style network on a 12-megapixel photo needs about 6 GB in eager
fp32 (≈ 0.5 GB per megapixel of activations), so big photos go through in tiles.
Cutting naively breaks the picture: every instance norm would normalise each tile
by that tile's own statistics, and neighbouring tiles come out in visibly
different tones (seams). Here every tile is normalised with the statistics of the
*whole* picture, measured exactly, one norm at a time:

    for each norm k, in execution order:
        for each tile: run the network with norms < k replaying the whole-picture
        statistics already measured, add norm k's input over the part of the
        picture the tile owns to an exact float64 accumulator, stop the pass there;
    then one pass over the tiles with every norm replaying, blended.

Why not cheaper estimates: measured against the untiled picture (wave, 2000×1500),
statistics of a downscaled copy give 18–21 dB, a full-resolution mosaic of
patches (8–20 % of the picture, with or without masked borders) 25–29 dB, and
refining several layers from one pass is *worse* (12–26 dB): a layer's statistics
are only right when every layer before it was normalised exactly as it will be
in the final pass. Layer by layer is exact (41–43 dB at 128-pixel tiles, limited
by the tiles' borders) and costs a few full passes, since each pass stops at its norm.

Tiles overlap by `overlap` pixels of context on each side (more than the
network's effective receptive field, so a tile's centre does not see its border)
and are blended with linear ramps that sum to one, so what remains of the
border effects fades out instead of forming a line.

Geometry: tiles start on multiples of `align` (4: two stride-2 stages) and every
tile's size is congruent to the picture's size modulo `align`, so TensorFlow
"SAME" padding (whose stride-2 sampling grid depends on the side's parity) puts
each tile's samples on the whole picture's grid. All tiles of a picture have one
shape (`tile_span`; edge tiles are shifted inwards rather than cut short), so a
compiled network of one static shape serves them all (`backends/ovtiles.py`,
the fast path: the same passes through OpenVINO bf16).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from totoshka.engine.models.layers import (
    StatsAccumulator,
    StatsComplete,
    StatsTape,
    measure_stats,
    record_stats,
    replay_stats,
)
from totoshka.engine.tile_geometry import (
    TileConfig,
    axis_tiles,
    limit_heap_growth,
)

# A tile forward: the eager network, possibly under autocast; it must run the
# model's own InstanceNorm modules in this thread (the statistics live in contextvars).
TileForward = Callable[[nn.Module, Tensor], Tensor]


def _ramp(tiles: list[tuple[int, int, int, int]], index: int, half: int) -> Tensor:
    """Weights of tile `index` over its input span; all tiles' weights sum to 1."""
    a, b, start, end = tiles[index]
    pos = torch.arange(start, end, dtype=torch.float32) + 0.5
    w = torch.ones(end - start)
    if index > 0 and half > 0:  # ramp up across the boundary at a
        w = w * ((pos - (a - half)) / (2 * half)).clamp(0, 1)
    elif index > 0:
        w = w * (pos >= a)
    if index < len(tiles) - 1 and half > 0:  # ramp down across the boundary at b
        w = w * (((b + half) - pos) / (2 * half)).clamp(0, 1)
    elif index < len(tiles) - 1:
        w = w * (pos < b)
    return w


def _owned_crop(
    tile_hw: tuple[int, int], lo: tuple[int, int], hi: tuple[int | None, int | None]
) -> Callable[[Tensor], Tensor]:
    """Crop a tile's feature map (at any of the network's scales) to its owned part.

    `lo`/`hi` are the owned bounds in tile pixels (multiples of align); None means
    "to the end of the map", for tiles at the picture's bottom/right edge, whose
    maps carry the network's rounding-up rows like the whole picture's do.
    """

    def crop(x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ratio = max(tile_hw[0] / h, tile_hw[1] / w)
        f = 2 ** max(0, round(math.log2(ratio)))
        rows = slice(lo[0] // f, None if hi[0] is None else hi[0] // f)
        cols = slice(lo[1] // f, None if hi[1] is None else hi[1] // f)
        return x[..., rows, cols]

    return crop


def eager_forward(net: nn.Module, x: Tensor) -> Tensor:
    return net(x)


def bf16_forward(net: nn.Module, x: Tensor) -> Tensor:
    """Tiles in bf16 autocast (AMX on Sapphire Rapids); norms keep float32 statistics."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return net(x).float()


def norm_order(net: nn.Module, x: Tensor, forward: TileForward) -> list[nn.Module]:
    """The network's InstanceNorm modules in execution order (a tiny recorded pass)."""
    tape = StatsTape()
    side = 64
    with record_stats(tape):
        forward(net, x[..., : min(side, x.shape[-2]), : min(side, x.shape[-1])])
    return list(tape.stats)


def _tiles(height: int, width: int, cfg: TileConfig) -> Iterator[tuple[slice, slice, Callable]]:
    """Each tile's input rows, columns and the crop to the part of the picture it owns."""
    for ra, rb, r0, r1 in axis_tiles(height, cfg):
        for ca, cb, c0, c1 in axis_tiles(width, cfg):
            crop = _owned_crop(
                (r1 - r0, c1 - c0),
                (ra - r0, ca - c0),
                (None if rb == height else rb - r0, None if cb == width else cb - c0),
            )
            yield slice(r0, r1), slice(c0, c1), crop


def whole_picture_stats(
    net: nn.Module, x: Tensor, cfg: TileConfig | None = None, forward: TileForward = eager_forward
) -> StatsTape:
    """Exact instance-norm statistics of the untiled picture, measured tile by tile."""
    cfg = cfg or TileConfig()
    height, width = x.shape[-2:]
    tape = StatsTape()
    with torch.inference_mode():
        for norm in norm_order(net, x, forward):
            acc = StatsAccumulator(only=norm)
            for rows, cols, crop in _tiles(height, width, cfg):
                try:
                    with replay_stats(tape), measure_stats(acc, crop):
                        forward(net, x[..., rows, cols])
                except StatsComplete:
                    pass
            tape.stats[norm] = acc.tape().stats[norm]
    return tape


def stylize_tiled(
    net: nn.Module,
    x: Tensor,
    cfg: TileConfig | None = None,
    forward: TileForward = eager_forward,
    *,
    stats: StatsTape | None = None,
) -> Tensor:
    """Stylize `x` (1×3×H×W, 0..255) tile by tile with whole-picture norm statistics.

    Peak memory is the input, the output and one tile's activations. `stats`
    skips the measuring passes (given statistics, e.g. from a previous call).
    """
    cfg = cfg or TileConfig()
    if x.shape[0] != 1:
        raise ValueError("stylize_tiled takes one picture at a time")
    limit_heap_growth()
    if stats is None:
        stats = whole_picture_stats(net, x, cfg, forward)
    height, width = x.shape[-2:]
    rows, cols = axis_tiles(height, cfg), axis_tiles(width, cfg)
    out = torch.zeros(1, 3, height, width, dtype=torch.float32)
    # narrow ramps: with exact statistics the tiles agree in tone, and what differs
    # is each tile's own border effect, so blend only far from every tile's edge.
    half = cfg.overlap // 4
    with torch.inference_mode():
        for i, (_, _, r0, r1) in enumerate(rows):
            wy = _ramp(rows, i, half)
            for j, (_, _, c0, c1) in enumerate(cols):
                wx = _ramp(cols, j, half)
                with replay_stats(stats):
                    y = forward(net, x[..., r0:r1, c0:c1])
                out[..., r0:r1, c0:c1].addcmul_(y.float(), wy.view(-1, 1) * wx.view(1, -1))
                del y
    return out
