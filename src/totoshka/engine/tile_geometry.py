"""Where tiles and bands fall on a picture: plain arithmetic, no torch.

Why a module of its own: the torch-free band painter (`backends/ovbands.py`, served
by `coldpath` on a warm cache) cuts pictures the same way as the torch tiles do,
and importing `tiling` would load torch (≈ 230 MB resident) for a few lines of
arithmetic.
"""

from __future__ import annotations

import ctypes
import itertools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TileConfig:
    """How to cut a picture."""

    tile: int = 512  # side of the part of the picture one tile owns
    overlap: int = 64  # context on each side of the owned part
    align: int = 4  # product of the network's strides

    def __post_init__(self) -> None:
        if self.tile % self.align or self.overlap % self.align:
            raise ValueError("tile and overlap must be multiples of align")
        if self.tile < 4 * self.align:
            raise ValueError("tiles this small cannot hold the network's strides")


def tile_span(size: int, cfg: TileConfig) -> int:
    """The length of every tile along a side: owned part + context, ≡ size (mod align).

    All tiles of a side have this one length (edge tiles are shifted inwards, not
    cut short), so a compiled network of one static shape serves every tile.
    """
    span = cfg.tile + 2 * cfg.overlap
    span += (size - span) % cfg.align
    return min(span, size)


def axis_tiles(size: int, cfg: TileConfig) -> list[tuple[int, int, int, int]]:
    """Along one side: (owned_start, owned_end, input_start, input_end) per tile.

    Tiles of length `tile_span` start on multiples of align, evenly spread from 0
    to the end of the side, no more than `tile` apart; consecutive tiles overlap by
    at least 2·overlap and split the overlap in the middle, so each owned part has
    at least `overlap` pixels of context on each side inside its tile.
    """
    span = tile_span(size, cfg)
    if span >= size:
        return [(0, size, 0, size)]
    free = size - span  # a multiple of align
    count = 1 + math.ceil(free / (cfg.tile - cfg.align))
    starts = [cfg.align * round(free * i / (count - 1) / cfg.align) for i in range(count)]
    cuts = [0]
    for s0, s1 in itertools.pairwise(starts):
        cuts.append(cfg.align * round((s0 + span + s1) / 2 / cfg.align))
    cuts.append(size)
    return [(cuts[i], cuts[i + 1], s, s + span) for i, s in enumerate(starts)]


_heap_limited = False


def limit_heap_growth() -> None:
    """Make glibc return big freed blocks to the system (once per process, Linux only).

    glibc raises its mmap threshold up to 32 MB after the first big free, after
    which tile-sized tensors come from the heap and its fragments stay resident:
    measured at 1200×900 in 384-pixel tiles, peak RSS 742 MB without this and
    398 MB with it (4000×3000: 1.13–1.26 GB without). Fixed 1 MB thresholds keep
    every activation in its own mapping, given back when freed.
    """
    global _heap_limited
    if _heap_limited:
        return
    _heap_limited = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 20)
        libc.mallopt(m_trim_threshold, 1 << 20)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass
