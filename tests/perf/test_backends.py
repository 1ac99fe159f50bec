"""Every inference path: right shape at odd sizes, its PSNR floor against eager fp32,
the quality-floor fallback, the on-disk conversion cache, `auto` without OpenVINO,
and GPU-style batching exercised on the CPU. Never asserts on time."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from totoshka.engine.backends import select_runner
from totoshka.engine.backends.auto import AutoRunner, supported_paths
from totoshka.engine.backends.cuda import CudaRunner
from totoshka.engine.backends.hardware import openvino_available
from totoshka.engine.backends.quality import BEST_FLOOR_DB, DEFAULT_FLOOR_DB, psnr

# (height, width): both sides odd (≡ 3, 1 mod 4), and one odd side with the other ≡ 2 mod 4.
ODD_SIZES = [(47, 61), (50, 63)]
# backend -> floor against eager fp32 on these small pictures
FLOORS = {
    "eager-fp32": 100.0,
    "torch-bf16": DEFAULT_FLOOR_DB,
    "openvino-bf16": DEFAULT_FLOOR_DB,
    "openvino-fp32": BEST_FLOOR_DB,
    "auto": DEFAULT_FLOOR_DB,
    "best": BEST_FLOOR_DB,
}


def eager(net: nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return net(x)


@pytest.fixture(scope="module")
def pictures(make_photo: Callable) -> dict[tuple[int, int], Tensor]:
    return {(h, w): make_photo("amber.jpg", h, w) for h, w in ODD_SIZES}


@pytest.mark.parametrize("backend", list(FLOORS))
@pytest.mark.parametrize("family", ["ml5", "magenta"])
def test_backend_shape_and_floor(
    backend: str, family: str, nets: dict[str, nn.Module], pictures: dict, compiled_dir: Path
) -> None:
    runner = select_runner(backend, compiled_dir=compiled_dir)
    net = nets[family]
    for (h, w), x in pictures.items():
        y = runner.run(net, x)
        assert y.shape == x.shape, (backend, family, (h, w))
        assert y.dtype == torch.float32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 255.0
        quality = psnr(y, eager(net, x))
        assert quality >= FLOORS[backend], f"{backend} {family} {h}x{w}: {quality:.1f} dB"


def test_cpu_batching_groups_same_sizes(ml5_net: nn.Module, pictures: dict) -> None:
    """run_batch on the CPU (the GPU code path with device='cpu'): order kept, sizes mixed."""
    a, b = pictures[(47, 61)], pictures[(50, 63)]
    runner = CudaRunner("cpu", max_batch=2)
    xs = [a, b, a.flip(-1), a, b]
    ys = runner.run_batch(ml5_net, xs)
    assert [y.shape for y in ys] == [x.shape for x in xs]
    for x, y in zip(xs, ys, strict=True):
        assert psnr(y, eager(ml5_net, x)) >= DEFAULT_FLOOR_DB
    # batched = alone: instance norm statistics stay per picture
    alone = runner.run(ml5_net, xs[2])
    assert psnr(ys[2], alone) >= 60.0
    assert not torch.cuda.is_initialized()


class BrokenRunner:
    """A deliberately broken path: fast, and wrong."""

    name = "broken"

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        return torch.full_like(x, 128.0)


class CrashingRunner:
    name = "crashing"

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        raise RuntimeError("cannot compile this model")


def test_quality_floor_rejects_a_broken_path(
    ml5_net: nn.Module, pictures: dict, caplog: pytest.LogCaptureFixture
) -> None:
    runner = AutoRunner([BrokenRunner(), CrashingRunner()], DEFAULT_FLOOR_DB)
    x = pictures[(47, 61)]
    with caplog.at_level(logging.WARNING):
        y = runner.run(ml5_net, x)
    assert runner.last_path == "eager-fp32"
    assert psnr(y, eager(ml5_net, x)) > 100
    text = caplog.text
    assert "broken not used" in text and "under the 35 dB floor" in text
    assert "crashing not used" in text and "cannot compile" in text


def test_floor_decides_between_auto_and_best(
    ml5_net: nn.Module, pictures: dict, ticks: Callable[[], float]
) -> None:
    """The same imperfect path passes a low floor and is refused by a high one.

    The noisy path costs what eager fp32 costs; timed by the real clock on a busy
    machine it was sometimes "slower than eager" before the floor was consulted.
    """

    class Noisy:
        name = "noisy"

        def run(self, net: nn.Module, x: Tensor) -> Tensor:
            gen = torch.Generator().manual_seed(0)
            return (net(x) + torch.randn(x.shape, generator=gen) * 2.0).clamp(0, 255)  # ≈ 42 dB

    x = pictures[(50, 63)]
    low = AutoRunner([Noisy()], DEFAULT_FLOOR_DB, clock=ticks)
    high = AutoRunner([Noisy()], BEST_FLOOR_DB, clock=ticks)
    low.run(ml5_net, x)
    high.run(ml5_net, x)
    assert low.last_path == "noisy"
    assert high.last_path == "eager-fp32"


def test_conversion_cache_is_reused(ml5_net: nn.Module, pictures: dict, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from totoshka.engine.backends import openvino as ov_backend

    x = pictures[(47, 61)]
    first = ov_backend.OpenVinoRunner("bf16", cache_dir=tmp_path)
    before = ov_backend.conversions
    first.run(ml5_net, x)
    assert ov_backend.conversions == before + 1
    ir = first.variant_path(ml5_net, ov_backend.residue(x))
    assert ir.exists() and ir.with_suffix(".bin").exists()
    stamp = (ir.stat().st_mtime_ns, ir.with_suffix(".bin").stat().st_mtime_ns)

    second = ov_backend.OpenVinoRunner("f32", cache_dir=tmp_path)  # a new process, in effect
    y = second.run(ml5_net, x)
    assert ov_backend.conversions == before + 1, "the IR on disk was not reused"
    assert (ir.stat().st_mtime_ns, ir.with_suffix(".bin").stat().st_mtime_ns) == stamp
    assert y.shape == x.shape


def candidate_names(best: bool = False) -> list[str]:
    """`supported_paths` less those whose package is not installed."""
    have_openvino = openvino_available()
    return [n for n in supported_paths(best) if have_openvino or not n.startswith("openvino")]


def test_auto_works_without_openvino(
    ml5_net: nn.Module, pictures: dict, monkeypatch: pytest.MonkeyPatch, compiled_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    names = candidate_names()
    assert not any(n.startswith("openvino") for n in names)
    runner = select_runner("auto", compiled_dir=compiled_dir)
    x = pictures[(47, 61)]
    y = runner.run(ml5_net, x)
    assert y.shape == x.shape
    assert psnr(y, eager(ml5_net, x)) >= DEFAULT_FLOOR_DB


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        select_runner("warp-drive")


def test_one_conversion_serves_every_magenta_style(
    magenta_net: nn.Module, pictures: dict, tmp_path: Path
) -> None:
    """Own styles give a new vector per photo: the vector is an input, not a constant."""
    pytest.importorskip("openvino")
    from totoshka.engine.backends import openvino as ov_backend
    from totoshka.engine.models.magenta import BoundTransfer

    runner = ov_backend.OpenVinoRunner("bf16", cache_dir=tmp_path)
    x = pictures[(50, 63)]
    before = ov_backend.conversions
    for seed in range(2):
        vector = torch.randn(100, generator=torch.Generator().manual_seed(seed)) * 0.5
        net = BoundTransfer(magenta_net.transfer, vector.numpy())
        assert psnr(runner.run(net, x), eager(net, x)) >= DEFAULT_FLOOR_DB
    assert ov_backend.conversions == before + 1


@pytest.mark.parametrize("backend", list(FLOORS))
def test_tiny_pictures_go_through(
    backend: str, nets: dict[str, nn.Module], compiled_dir: Path
) -> None:
    """Sides under every export's minimum (and under the calibration size) still work."""
    runner = select_runner(backend, compiled_dir=compiled_dir)
    for family, net in nets.items():
        for h, w in [(5, 7), (1, 1), (13, 9)]:
            x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h)) * 255
            y = runner.run(net, x)
            assert y.shape == x.shape, (backend, family, (h, w))
