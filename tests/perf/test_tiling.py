"""Tiled inference: whole-picture statistics make tiles agree with the untiled picture.

Small tiles on a moderate picture so that many tile borders are covered quickly.
The seam metric (steps across tile borders vs everywhere else) is proven sharp:
per-tile normalisation (the naive way) fails it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from totoshka.engine import tile_geometry, tiling
from totoshka.engine.backends.eager import EagerRunner
from totoshka.engine.backends.quality import psnr
from totoshka.engine.models.layers import StatsAccumulator, StatsTape, record_stats

CFG = tile_geometry.TileConfig(tile=64, overlap=32)  # 3×4 tiles on 193×257: 17 borders crossed
# Per-tile statistics over 128-pixel tiles that own ≈ 60 pixels come out close to
# their neighbours' (seam ratio 1.8); with 16 pixels of context the tiles are 96 px
# and the naive way shows its steps plainly (4.7; the untiled picture 1.4).
NAIVE_CFG = tile_geometry.TileConfig(tile=64, overlap=16)
MIN_PSNR_DB = 35.0
MAX_SEAM_RATIO = 2.0


@pytest.fixture(scope="module")
def picture(make_photo: Callable) -> Tensor:
    return make_photo("shenyang.jpg", 193, 257)  # odd sides on purpose


def untiled(net: nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return net(x)


def stylize_naive_tiles(
    net: nn.Module, x: Tensor, cfg: tile_geometry.TileConfig | None = None, *, blend: bool = False
) -> Tensor:
    """Per-tile statistics, the broken way: kept to prove the seam metric catches it."""
    cfg = cfg or tile_geometry.TileConfig()
    height, width = x.shape[-2:]
    rows, cols = tile_geometry.axis_tiles(height, cfg), tile_geometry.axis_tiles(width, cfg)
    out = torch.zeros(1, 3, height, width)
    half = cfg.overlap // 2 if blend else 0
    with torch.inference_mode():
        for i, (_, _, r0, r1) in enumerate(rows):
            for j, (_, _, c0, c1) in enumerate(cols):
                y = net(x[..., r0:r1, c0:c1])
                wy, wx = tiling._ramp(rows, i, half), tiling._ramp(cols, j, half)
                out[..., r0:r1, c0:c1].addcmul_(y, wy.view(-1, 1) * wx.view(1, -1))
    return out


def tile_boundaries(size: int, cfg: tile_geometry.TileConfig | None = None) -> list[int]:
    """Where one tile's owned part ends and the next begins (for seam metrics)."""
    cfg = cfg or tile_geometry.TileConfig()
    return [b for _, b, _, _ in tile_geometry.axis_tiles(size, cfg)[:-1]]


def seam_ratio(y: Tensor, cfg: tile_geometry.TileConfig | None = None) -> float:
    """How much stronger the picture's steps are across tile borders than anywhere else.

    For each border, the mean absolute difference between the two pixel rows (or
    columns) on either side of it, divided by the median of the same quantity
    over every row (column) pair of the picture; the worst border counts. A
    seamless picture gives about 1 (borders are like any other place); per-tile
    normalisation puts a step in tone on each border and gives several times that.
    """
    cfg = cfg or tile_geometry.TileConfig()
    y = y.double()
    worst = 0.0
    for axis, size in ((-2, y.shape[-2]), (-1, y.shape[-1])):
        steps = y.diff(dim=axis).abs().mean(dim=(0, 1, 3 if axis == -2 else 2))
        typical = float(steps.median())
        for b in tile_boundaries(size, cfg):
            worst = max(worst, float(steps[b - 1]) / max(typical, 1e-9))
    return worst


@pytest.fixture(scope="module")
def measured(nets: dict, picture: Tensor) -> dict[str, StatsTape]:
    """Whole-picture statistics measured over tiles, once per family for the module."""
    return {f: tiling.whole_picture_stats(net, picture, CFG) for f, net in nets.items()}


@pytest.mark.parametrize("family", ["ml5", "magenta"])
def test_tiled_matches_untiled(family: str, nets: dict, picture: Tensor, measured: dict) -> None:
    net = nets[family]
    ref = untiled(net, picture)
    y = tiling.stylize_tiled(net, picture, CFG, stats=measured[family])
    assert y.shape == picture.shape
    assert psnr(y, ref) >= MIN_PSNR_DB
    assert seam_ratio(y, CFG) <= MAX_SEAM_RATIO


def test_naive_tiling_fails_both_checks(ml5_net: nn.Module, picture: Tensor) -> None:
    """Per-tile statistics: the metric and the PSNR must both catch it."""
    ref = untiled(ml5_net, picture)
    naive = stylize_naive_tiles(ml5_net, picture, NAIVE_CFG)
    assert seam_ratio(naive, NAIVE_CFG) > MAX_SEAM_RATIO
    assert psnr(naive, ref) < MIN_PSNR_DB
    # and the metric does not flag the untiled picture itself
    assert seam_ratio(ref, NAIVE_CFG) <= MAX_SEAM_RATIO
    assert seam_ratio(ref, CFG) <= MAX_SEAM_RATIO


def test_bf16_tiles(ml5_net: nn.Module, picture: Tensor) -> None:
    y = tiling.stylize_tiled(ml5_net, picture, CFG, tiling.bf16_forward)
    assert psnr(y, untiled(ml5_net, picture)) >= MIN_PSNR_DB


def test_measured_statistics_are_exact(ml5_net: nn.Module, picture: Tensor, measured: dict) -> None:
    """Norm by norm over tiles gives the untiled picture's own statistics."""
    tape = StatsTape()
    with torch.inference_mode(), record_stats(tape):
        ml5_net(picture)
    first = next(iter(tape.stats))  # the first norm sees no tile border effects at all
    mean, var = tape.stats[first]
    m_mean, m_var = measured["ml5"].stats[first]
    assert torch.allclose(mean, m_mean, rtol=1e-4, atol=1e-3)
    assert torch.allclose(var, m_var, rtol=1e-4)
    assert len(measured["ml5"]) == len(tape) == 16


def test_accumulator_combines_exactly() -> None:
    acc = StatsAccumulator()
    x = torch.randn(1, 4, 30, 40) * 100 + 1000
    key = torch.nn.Identity()
    acc.add(key, x[..., :13, :])
    acc.add(key, x[..., 13:, :25])
    acc.add(key, x[..., 13:, 25:])
    mean, var = acc.tape().stats[key]
    v, m = torch.var_mean(x.double(), dim=(2, 3), correction=0, keepdim=True)
    assert torch.allclose(mean.double(), m, rtol=1e-6)
    assert torch.allclose(var.double(), v, rtol=1e-5)


def test_runner_tiles_big_pictures(ml5_net: nn.Module, picture: Tensor) -> None:
    """Above max_pixels a runner goes through tiles and still matches the untiled picture."""
    small = picture[..., :150, :170]
    runner = EagerRunner(max_pixels=100 * 100)
    y = runner.run(ml5_net, small)
    assert y.shape == small.shape
    assert psnr(y, untiled(ml5_net, small)) >= MIN_PSNR_DB


# -- tiles through OpenVINO (statistics as model inputs) ---------------------------------


@pytest.fixture(scope="module")
def ov_runner(compiled_dir: Path) -> object:
    pytest.importorskip("openvino")
    from totoshka.engine.backends.openvino import OpenVinoRunner

    return OpenVinoRunner("bf16", cache_dir=compiled_dir, max_pixels=None)


@pytest.mark.parametrize("family", ["ml5", "magenta"])
def test_openvino_tiles_match_untiled(
    family: str, nets: dict, picture: Tensor, ov_runner: object
) -> None:
    """Odd sides, 3×4 tiles of one static shape: exact statistics, no seams, one export."""
    from totoshka.engine.backends import openvino

    net = nets[family]
    before = openvino.conversions
    tiles = ov_runner.tiles()  # type: ignore[attr-defined]
    y = tiles.stylize(net, picture, CFG)
    assert y.shape == picture.shape
    assert openvino.conversions == before + 1  # one IR for every pass
    ref = untiled(net, picture)
    assert psnr(y, ref) >= 45.0
    assert seam_ratio(y, CFG) <= MAX_SEAM_RATIO
    tiles._models.clear()  # from the disk cache now: no second conversion
    smaller = picture[..., :-4, :-4]
    again = tiles.stylize(net, smaller, CFG)
    assert openvino.conversions == before + 1
    assert psnr(again, untiled(net, smaller)) >= 45.0


def test_fixed_tile_geometry() -> None:
    """Every tile of a side has one length ≡ side (mod 4), starts on a multiple of 4,
    and its owned part keeps at least `overlap` − align of context inside the tile."""
    cfg = tile_geometry.TileConfig(tile=512, overlap=64)
    for size in (3000, 4000, 2561, 1923, 700, 640, 641):
        tiles = tile_geometry.axis_tiles(size, cfg)
        span = tile_geometry.tile_span(size, cfg)
        assert tiles[0][0] == 0 and tiles[-1][1] == size
        for (a, b, s, e), nxt in zip(tiles, [*tiles[1:], None], strict=True):
            assert e - s == span and span % 4 == size % 4 and s % 4 == 0
            assert a - s >= (cfg.overlap - cfg.align if s > 0 else 0)
            assert e - b >= (cfg.overlap - cfg.align if e < size else 0)
            if nxt is not None:
                assert nxt[0] == b


def test_memory_budget_decides_tiling() -> None:
    from totoshka.engine.backends import eager
    from totoshka.engine.factory import runner_for
    from totoshka.engine.settings import EngineSettings

    # the operator's TOTOSHKA_MEMORY_BUDGET_MB, as the engine's factory passes it on
    default = runner_for(EngineSettings(memory_budget_mb=1500), "eager-fp32").max_pixels
    assert default is not None and 1280 * 960 < default < 4000 * 3000
    big = runner_for(EngineSettings(memory_budget_mb=8000), "eager-fp32").max_pixels
    assert big > 12_000_000  # type: ignore[operator]
    assert eager.pixel_limit(500, 100) == 0


@pytest.mark.parametrize("precision", ["bf16", "f32"])
def test_openvino_runner_tiles_big_pictures(
    precision: str, ml5_net: nn.Module, picture: Tensor, compiled_dir: Path
) -> None:
    """Above its pixel limit the OpenVINO runner serves through its own tiles."""
    pytest.importorskip("openvino")
    from totoshka.engine.backends.openvino import OpenVinoRunner

    small = picture[..., :150, :170]
    runner = OpenVinoRunner(precision, cache_dir=compiled_dir, max_pixels=100 * 100)
    y = runner.run(ml5_net, small)
    assert y.shape == small.shape
    assert psnr(y, untiled(ml5_net, small)) >= (50.0 if precision == "bf16" else 70.0)
