"""Big photos streamed stage by stage in bands (`backends/ovbands.py`, fed by `ovstream.py`).

The bands are forced small (`BAND_VALUES`) so a 257×331 photo crosses several band
borders in every stage and stored chunks are freed while later bands still read
their neighbours. The statistics are the whole picture's, exactly: the banded
picture must match one untiled eager fp32 pass (the reference), as closely as one
untiled OpenVINO pass of the same precision does; and the stored frontiers stay
at the plan's bound (never a full-resolution map).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from totoshka.engine.backends.quality import psnr

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def picture(shared_dir: Path) -> Tensor:
    image = Image.open(shared_dir / "images" / "content" / "venice-boat.jpg").convert("RGB")
    image = image.resize((331, 257), Image.Resampling.LANCZOS)  # odd sides on purpose
    array = np.asarray(image, dtype=np.float32).copy()
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def nets(shared_dir: Path) -> dict[str, nn.Module]:
    from totoshka.engine.models import magenta
    from totoshka.engine.models.ml5 import load_ml5

    gen = torch.Generator().manual_seed(0)
    vector = (torch.randn(magenta.STYLE_DIM, generator=gen) * 0.5).numpy()
    return {
        "ml5": load_ml5(shared_dir / "models" / "ml5" / "wave").eval(),
        "magenta": magenta.load_bound(shared_dir / "models" / "magenta", vector).eval(),
    }


@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    from totoshka.engine.backends import ovbands

    monkeypatch.setattr(ovbands, "BAND_VALUES", 200_000)  # ≈ 8 bands per stage here


def untiled(net: nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return net(x).clamp(0, 255)


@pytest.mark.parametrize(
    ("family", "precision", "floor"),
    [("ml5", "bf16", 50.0), ("ml5", "f32", 70.0), ("magenta", "bf16", 40.0)],
)
def test_bands_paint_the_untiled_picture(
    family: str,
    precision: str,
    floor: float,
    nets: dict[str, nn.Module],
    picture: Tensor,
    tmp_path_factory: pytest.TempPathFactory,
    small_bands: None,
) -> None:
    from totoshka.engine.backends import ovbands
    from totoshka.engine.backends.openvino import OpenVinoRunner

    net = nets[family]
    cache = tmp_path_factory.getbasetemp() / "stream-cache"
    runner = OpenVinoRunner(precision, cache_dir=cache, max_pixels=None)
    stream = runner.stream()
    norms = runner.tiles().norms(net, picture)
    y = stream.stylize(net, picture, norms)
    assert y.shape == picture.shape
    ref = untiled(net, picture)
    assert psnr(y, ref) >= floor
    if ovbands.computes_bf16(runner.core, runner.precision):
        # as close as one untiled OpenVINO bf16 pass, give or take 3 dB
        assert psnr(y, ref) >= psnr(runner.run(net, picture), ref) - 3.0
    else:  # f32 stages (an f32 hint, or a CPU without bf16): float16 stores, one rounding
        assert psnr(y, ref) >= 70.0
    # stored between stages: at most the plan's bound, 2 bytes a value (bf16 where the
    # stages compute in bf16, float16 where in f32)
    bound = ovbands.STORE_VALUES_PER_PIXEL * 2 * picture.shape[-2] * picture.shape[-1]
    assert 0 < stream.peak_store_bytes <= 2 * bound


def test_the_plan_stores_quarter_maps_and_recomputes_full_ones(
    nets: dict[str, nn.Module], picture: Tensor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """ml5: 16 norms + the picture; no full-resolution 32-channel map is ever stored,
    and the residual blocks each start from the stage before (one conv per stage)."""
    from totoshka.engine.backends import ovbands
    from totoshka.engine.backends.openvino import OpenVinoRunner

    net = nets["ml5"]
    runner = OpenVinoRunner("bf16", cache_dir=tmp_path_factory.getbasetemp() / "stream-cache")
    norms = runner.tiles().norms(net, picture)
    dynamic = runner.stream().model(net, norms, (1, 3))
    model = ovbands.static_model(dynamic, (257, 331), None, [n.channels for n in norms])
    plan = ovbands.plan(model, styled=False)
    assert [s.target for s in plan.stages] == [*range(1, 17), 0]
    stored_after = {s.target: s.stores for s in plan.stages if s.stores}
    assert set(range(4, 14)) <= set(stored_after)  # every residual stage stores its output
    assert all(len(s.sources) <= 2 for s in plan.stages)
    assert plan.stages[-1].frees  # the last stage frees what is left, band by band
    assert all(s.halo <= 32 for s in plan.stages)
    # past the first upsampling the full-resolution stages hold the quarter map it
    # reads (8 values per pixel), not its 64-channel half-resolution output (16)
    assert [s.held for s in plan.stages if s.target in (15, 16)] == [8.0, 8.0]
    # the torch-free bands (taller) hold the upsampled half-resolution map instead, and
    # the full-resolution stages start from it: nothing upsampled twice
    held = ovbands.plan(model, styled=False, recompute_upsampling=False)
    by_target = {s.target: s for s in held.stages}
    kept = by_target[14].stores
    assert kept and all(held.scale[r] == 2 for r in kept)
    assert by_target[15].sources == kept and by_target[16].sources == kept
    assert [by_target[k].held for k in (15, 16)] == [16.0, 16.0]
    assert all(s.halo <= 32 for s in held.stages)


def test_moments_of_strided_bands_match_the_whole_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands are the owned rows of an output (not contiguous), summed a few channels
    at a time: the same mean and variance as the whole map at once."""
    from totoshka.engine.backends import ovbands

    monkeypatch.setattr(ovbands, "MOMENT_VALUES", 1000)  # several channel groups
    gen = torch.Generator().manual_seed(0)
    whole = (torch.randn(1, 6, 40, 37, generator=gen) * 3 + 5).numpy()
    acc = ovbands.Moments()
    for r0, r1 in [(0, 7), (7, 25), (25, 40)]:
        acc.add(whole[0, :, r0:r1, :])
    mean, var = acc.result()
    var_ref, mean_ref = torch.var_mean(torch.from_numpy(whole[0]), dim=(1, 2), correction=0)
    np.testing.assert_allclose(mean, mean_ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, var_ref.numpy(), rtol=1e-5)


def test_stored_rows_are_compact_copies_in_the_stores_type() -> None:
    """OpenVINO writes the stores' outputs in the store's type (a kept norm input a
    second time, beside its f32 copy for the statistics); a band's rows of them are
    strided, and what is kept is a compact copy that later bands cannot overwrite."""
    from totoshka.engine.backends import ovbands

    values = torch.randn(4, 9, 11) * 10
    bf16 = values.to(torch.bfloat16).view(torch.int16).numpy()[:, 2:7]  # strided rows
    kept = ovbands._stored(bf16, "bf16")
    assert kept.dtype == np.int16 and kept.flags.c_contiguous
    np.testing.assert_array_equal(kept, bf16)
    assert not np.shares_memory(kept, bf16)
    half = values.numpy().astype(np.float16)[:, 2:7]
    kept16 = ovbands._stored(half, "f16")
    assert kept16.dtype == np.float16 and kept16.flags.c_contiguous
    np.testing.assert_array_equal(kept16, half)


def test_a_value_beyond_float16_is_not_stored_but_painted_in_tiles() -> None:
    """f32 stages store float16: a value it cannot hold (OpenVINO's conversion
    saturates it to float16's maximum, 65504) stops the bands, whose caller then
    paints the picture in tiles, rather than storing a wrong value."""
    from totoshka.engine.backends import ovbands

    rows = np.ones((2, 8, 5), np.float16)
    rows[1, 3, 2] = 65504
    with pytest.raises(ovbands.Unstreamable):
        ovbands._stored(rows, "f16")
    with pytest.raises(ovbands.Unstreamable):
        ovbands._stored(-rows, "f16")
    assert ovbands._stored(rows[:, :2], "f16").shape == (2, 2, 5)


def test_runner_streams_pictures_over_its_budget(
    nets: dict[str, nn.Module], picture: Tensor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from totoshka.engine.backends.openvino import OpenVinoRunner

    net = nets["ml5"]
    cache = tmp_path_factory.getbasetemp() / "stream-cache"
    runner = OpenVinoRunner("bf16", cache_dir=cache, max_pixels=100 * 100)
    y = runner.run(net, picture)
    assert runner.stream().peak_store_bytes > 0  # served by the bands, not the tiles
    assert psnr(y, untiled(net, picture)) >= 50.0
