"""Batching of concurrent jobs for GPUs (`BatchingRunner`), exercised on the CPU with
`CudaRunner("cpu")`: what batches, what never does, that every caller gets its own
picture (own styles stacked one vector per picture), errors, and the pixel
conversions the GPU host does per job. Never asserts on time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from totoshka.engine.backends.auto import AutoRunner
from totoshka.engine.backends.batching import BatchingRunner
from totoshka.engine.backends.cuda import CudaRunner
from totoshka.engine.backends.eager import EagerRunner
from totoshka.engine.backends.quality import psnr
from totoshka.engine.models.magenta import BoundTransfer
from totoshka.engine.stylizer import to_image, to_tensor


class Gate:
    """An inner runner that records each batch and holds the first one until
    `expect` more requests wait behind it, so the test decides what can batch."""

    def __init__(self, inner: Any, expect: int, outer: Callable[[], BatchingRunner]) -> None:
        self.inner, self.expect, self.outer = inner, expect, outer
        self.max_batch = inner.max_batch
        self.name = inner.name
        self.calls: list[list[tuple[int, ...]]] = []
        self.first = True

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        if self.first:
            self.first = False
            for _ in range(500):
                with self.outer()._cond:
                    if len(self.outer()._waiting) >= self.expect:
                        break
                threading.Event().wait(0.01)
        self.calls.append([tuple(x.shape) for x in xs])
        return self.inner.run_batch(net, xs)


def run_concurrently(runner: BatchingRunner, jobs: list[tuple[nn.Module, Tensor]]) -> list[Tensor]:
    out: list[Tensor | BaseException | None] = [None] * len(jobs)

    def work(i: int) -> None:
        try:
            out[i] = runner.run(*jobs[i])
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out  # type: ignore[return-value]


def eager(net: nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return net(x).clamp(0, 255)


def gated(expect: int, max_batch: int = 4) -> tuple[BatchingRunner, Gate]:
    holder: list[BatchingRunner] = []
    gate = Gate(CudaRunner("cpu", torch.float32, max_batch=max_batch), expect, lambda: holder[0])
    runner = BatchingRunner(gate)
    holder.append(runner)
    return runner, gate


def test_same_style_jobs_share_a_batch_and_get_their_own_pictures(
    ml5_net: nn.Module, make_photo: Callable
) -> None:
    base = make_photo("amber.jpg", 48, 64)
    xs = [(base + 7 * i).clamp(0, 255) for i in range(7)]
    runner, gate = gated(expect=6, max_batch=4)
    outs = run_concurrently(runner, [(ml5_net, x) for x in xs])
    # the first job alone, then the six that waited, in batches of at most four
    assert sorted(len(c) for c in gate.calls) == [1, 2, 4]
    assert runner.batch_sizes[0] == 1
    for x, y in zip(xs, outs, strict=True):
        assert isinstance(y, Tensor)
        assert psnr(y, eager(ml5_net, x)) >= 60


def test_different_sizes_and_styles_never_share_a_batch(
    ml5_net: nn.Module, magenta_net: nn.Module, make_photo: Callable
) -> None:
    a, b = make_photo("amber.jpg", 48, 64), make_photo("amber.jpg", 52, 64)
    jobs = [(ml5_net, a), (ml5_net, a), (ml5_net, b), (magenta_net, a), (ml5_net, b)]
    runner, gate = gated(expect=len(jobs) - 1)
    outs = run_concurrently(runner, jobs)
    for call in gate.calls:
        assert len(set(call)) == 1  # one size per batch
    assert len(gate.calls) >= 4  # (a), (a), (b, b) and the magenta job at least: no mixing
    for (net, x), y in zip(jobs, outs, strict=True):
        assert isinstance(y, Tensor)
        assert psnr(y, eager(net, x)) >= 60


def test_own_styles_of_different_users_are_stacked_one_vector_per_picture(
    magenta_net: nn.Module, make_photo: Callable
) -> None:
    gen = torch.Generator().manual_seed(3)
    nets = [
        BoundTransfer(magenta_net.transfer, (torch.randn(100, generator=gen) * 0.5).numpy())
        for _ in range(5)
    ]
    x = make_photo("amber.jpg", 48, 64)
    runner, gate = gated(expect=4, max_batch=8)
    outs = run_concurrently(runner, [(n, x) for n in nets])
    assert max(len(c) for c in gate.calls) == 4  # four different vectors in one batch
    for net, y in zip(nets, outs, strict=True):
        assert isinstance(y, Tensor)
        assert psnr(y, eager(net, x)) >= 60
    # and the vectors really differ: each picture is its own style's
    assert psnr(outs[0], eager(nets[1], x)) < 40  # type: ignore[arg-type]


def test_an_error_reaches_every_caller_of_the_batch_and_the_runner_goes_on(
    ml5_net: nn.Module, make_photo: Callable
) -> None:
    class Failing(CudaRunner):
        fail = True

        def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
            if self.fail and len(xs) > 1:
                raise RuntimeError("device lost")
            return super().run_batch(net, xs)

    holder: list[BatchingRunner] = []
    inner = Failing("cpu", torch.float32, max_batch=4)
    gate = Gate(inner, 3, lambda: holder[0])
    runner = BatchingRunner(gate)
    holder.append(runner)
    x = make_photo("amber.jpg", 48, 64)
    outs = run_concurrently(runner, [(ml5_net, x)] * 4)
    assert isinstance(outs[0], Tensor)  # the first job ran alone, before the gate opened
    failed = [o for o in outs if isinstance(o, RuntimeError)]
    assert len(failed) == 3 and all("device lost" in str(o) for o in failed)
    inner.fail = False
    assert psnr(runner.run(ml5_net, x), eager(ml5_net, x)) >= 60


def test_a_lone_job_is_served_at_once(ml5_net: nn.Module, make_photo: Callable) -> None:
    runner = BatchingRunner(CudaRunner("cpu", torch.float32))
    x = make_photo("amber.jpg", 48, 64)
    runner.run(ml5_net, x)
    runner.run(ml5_net, x)
    assert runner.batch_sizes == [1, 1]


def test_auto_hands_a_same_size_batch_to_the_chosen_path_in_one_call(
    ml5_net: nn.Module, make_photo: Callable, ticks: Callable[[], float]
) -> None:
    inner = CudaRunner("cpu", torch.float32)
    calls: list[int] = []
    original = inner.run_batch

    def spy(net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        calls.append(len(xs))
        return original(net, xs)

    inner.run_batch = spy  # type: ignore[method-assign]
    auto = AutoRunner([inner], 35.0, clock=ticks)  # as fast as fp32: not "slower" by chance
    x = make_photo("amber.jpg", 96, 128)
    ys = auto.run_batch(ml5_net, [x, x, x])
    assert 3 in calls and auto.last_path == inner.name
    assert all(psnr(y, eager(ml5_net, x)) >= 60 for y in ys)


def test_one_calibration_serves_every_own_style_vector(
    magenta_net: nn.Module, make_photo: Callable, ticks: Callable[[], float]
) -> None:
    """A new vector per job must not cost a CPU reference pass per job."""
    auto = AutoRunner([EagerRunner()], 35.0, clock=ticks)
    x = make_photo("amber.jpg", 96, 128)
    for seed in range(3):
        vector = torch.randn(100, generator=torch.Generator().manual_seed(seed)) * 0.5
        auto.run(BoundTransfer(magenta_net.transfer, vector.numpy()), x)
    assert len(auto.verdicts.items()) == 1


def test_cuda_runner_pads_batches_to_powers_of_two() -> None:
    runner = CudaRunner("cpu", max_batch=8)
    assert [runner._padded_size(n) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]


def test_pixel_conversions_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB")
    x = to_tensor(image)
    assert x.shape == (1, 3, 37, 53) and x.dtype == torch.float32
    assert np.array_equal(np.asarray(to_image(x)), array)
    # rounding half up and clamping, as the results are written
    y = torch.full((1, 3, 2, 2), 254.5)
    y[0, 0, 0, 0], y[0, 1, 0, 0] = -3.0, 300.0
    out = np.asarray(to_image(y))
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 255 and out[1, 1, 2] == 255


@pytest.mark.parametrize("n", [1, 3])
def test_stacked_network_keeps_a_one_vector_network_for_calibration(
    magenta_net: nn.Module, n: int
) -> None:
    nets = [
        BoundTransfer(magenta_net.transfer, np.full(100, 0.1 * (i + 1), dtype=np.float32))
        for i in range(n)
    ]
    stacked = BoundTransfer.stacked(nets)
    assert stacked.style.shape == (n, 100)
    assert stacked.calibration_network.style.shape == (1, 100)  # type: ignore[union-attr]
    assert stacked.shared_network is magenta_net.transfer
