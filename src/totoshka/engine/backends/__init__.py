"""Inference paths. A runner turns (network, batch of 0..255 NCHW tensors) into
pictures; which one serves is chosen by measurement, eager fp32 is the fallback
that always works (see `select_runner`).

Names (`select_runner(name)`, `totoshka bench --paths`, the Stylizer's `backend`):

- ``auto``: the measured fastest path for this machine that passes 35 dB against
  eager fp32 on each model (OpenVINO bf16 on AMX/AVX512-BF16 CPUs; CUDA when a GPU is
  there, with concurrent same-style jobs batched: `batching.BatchingRunner`);
- ``best``: the same with a 50 dB floor;
- ``eager`` / ``fp32`` / ``eager-fp32``: the reference;
- ``torch-bf16``, ``openvino-bf16``, ``openvino-fp32``, ``cuda`` (fp16), ``cuda-bf16``,
  ``cuda-fp32``: one path, no floor (for benchmarks and tests);
- ``openvino-int8``: int8 convolutions (`openvino_int8`), opt-in: `auto` does not
  pick it yet.

Nothing here imports OpenVINO or touches CUDA until a path that needs it is chosen.
What a runner needs from the operator's settings (the memory budget, where converted
models live, whether to convert in this process) comes in as arguments of
`select_runner`: the engine's factory (`totoshka.engine.factory.runner_for`) passes
them from `EngineSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from totoshka.engine.backends.hardware import cuda_available, supported_paths
from totoshka.engine.backends.limits import OPENVINO_BYTES_PER_PIXEL, pixel_limit
from totoshka.engine.backends.verdicts import BEST_FLOOR_DB, DEFAULT_FLOOR_DB
from totoshka.engine.paths import compiled_dir as default_compiled_dir

if TYPE_CHECKING:  # importing the package (verdicts, hardware) must not load torch
    from torch import Tensor, nn

PATHS = (
    "auto",
    "best",
    "eager-fp32",
    "torch-bf16",
    "openvino-bf16",
    "openvino-fp32",
    "openvino-int8",
    "cuda",
    "cuda-bf16",
    "cuda-fp32",
)
# every name `select_runner` takes: the paths and their aliases (settings check them)
NAMES = (*PATHS, "eager", "fp32", "cuda-fp16")


class Runner(Protocol):
    name: str

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        """Stylize `x` (float32 NCHW 0..255) with `net`; same shape out."""
        ...


def _single(
    name: str,
    *,
    compiled_dir: Path | None = None,
    memory_budget_mb: float | None = None,
    convert_in_process: bool = False,
) -> Runner:
    if name in ("eager", "fp32", "eager-fp32"):
        from totoshka.engine.backends.eager import EagerRunner

        return EagerRunner(memory_budget_mb=memory_budget_mb)
    if name == "torch-bf16":
        from totoshka.engine.backends.eager import TorchBf16Runner

        return TorchBf16Runner(memory_budget_mb=memory_budget_mb)
    if name in ("openvino-bf16", "openvino-fp32"):
        from totoshka.engine.backends.openvino import OpenVinoRunner

        return OpenVinoRunner(
            "bf16" if name.endswith("bf16") else "f32",
            cache_dir=compiled_dir,
            max_pixels=pixel_limit(OPENVINO_BYTES_PER_PIXEL, memory_budget_mb),
            convert_in_process=convert_in_process,
        )
    if name == "openvino-int8":
        from totoshka.engine.backends.openvino_int8 import OpenVinoInt8Runner

        return OpenVinoInt8Runner(
            cache_dir=compiled_dir,
            max_pixels=pixel_limit(OPENVINO_BYTES_PER_PIXEL, memory_budget_mb),
            convert_in_process=convert_in_process,
        )
    if name in ("cuda", "cuda-fp16", "cuda-bf16", "cuda-fp32"):
        import torch

        from totoshka.engine.backends.cuda import CudaRunner

        dtypes = {"cuda-bf16": torch.bfloat16, "cuda-fp32": torch.float32}
        return CudaRunner(dtype=dtypes.get(name, torch.float16))
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(PATHS)})")


def expected_path(best: bool = False) -> str:
    """What `auto` (or `best`) should serve on this machine with every package installed."""
    if cuda_available():
        return "cuda-fp32"
    names = supported_paths(best)
    return names[0] if names else "eager-fp32"


def select_runner(
    name: str = "auto",
    *,
    compiled_dir: Path | None = None,
    memory_budget_mb: float | None = None,
    convert_in_process: bool = False,
) -> Runner:
    """The runner of a path name (see the module docstring).

    `compiled_dir`: where OpenVINO's converted models and `auto`'s verdicts live
    (None: `paths.compiled_dir()`, under the platform's cache); `memory_budget_mb`:
    the budget that decides when a picture is painted in tiles (None: eager's
    `DEFAULT_MEMORY_BUDGET_MB`); `convert_in_process`: convert for OpenVINO in this
    process rather than in a short-lived child.
    """
    options = {
        "compiled_dir": compiled_dir,
        "memory_budget_mb": memory_budget_mb,
        "convert_in_process": convert_in_process,
    }
    if name not in ("auto", "best"):
        return _single(name, **options)  # type: ignore[arg-type]
    from totoshka.engine.backends.auto import AutoRunner

    best = name == "best"
    if cuda_available():
        # fp32 first: convolutions run on TF32 tensor cores (PyTorch's default for
        # cuDNN) at 70-83 dB, and on an H100 fp16 was no faster (the instance norms'
        # memory traffic, not the convolutions, bounds these networks): see
        # benchmarks/results/NOTES.md. fp16 stays the fallback for older GPUs.
        names = ["cuda-fp32"] if best else ["cuda-fp32", "cuda"]
    else:
        names = supported_paths(best)
    candidates = []
    unavailable: dict[str, str] = {}
    for candidate in names:
        try:
            candidates.append(_single(candidate, **options))  # type: ignore[arg-type]
        except ImportError as exc:  # an optional dependency is missing: say so, skip the path
            unavailable[candidate] = f"{type(exc).__name__}: {exc}"
    verdicts = (compiled_dir or default_compiled_dir()) / "verdicts.json"
    runner = AutoRunner(
        candidates,
        BEST_FLOOR_DB if best else DEFAULT_FLOOR_DB,
        name=name,
        verdict_file=verdicts,
        memory_budget_mb=memory_budget_mb,
        unavailable=unavailable,
        expected=names[0] if names else "eager-fp32",
    )
    if cuda_available():
        import torch

        from totoshka.engine.backends.batching import BatchingRunner

        # The CPU only converts pictures here, one per worker thread; torch's
        # intra-op pool per thread would put cores × threads on the cores
        # (measured on an H100 host with 16 cores: 11 photos/s instead of 30+).
        torch.set_num_threads(1)
        # concurrent jobs of one style and size share a GPU batch
        return BatchingRunner(runner)  # type: ignore[return-value]
    return runner
