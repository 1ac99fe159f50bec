"""What the machine can do: the CPU's model and the instruction-set flags that
decide which inference path is fast (AMX/AVX512-BF16 make bf16 cheap, VNNI int8),
and whether a CUDA device is present. Read once; printed by `totoshka bench`."""

from __future__ import annotations

import functools
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

INTERESTING_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def fast_bf16(self) -> bool:
        """bf16 matrix maths in hardware (AMX or AVX512-BF16): bf16 paths pay off."""
        return bool({"amx_bf16", "avx512_bf16"} & self.flags)

    def line(self) -> str:
        shown = [f for f in INTERESTING_FLAGS if f in self.flags]
        return f"{self.model}, {self.cores} cores, flags: {' '.join(shown) or 'none of interest'}"


@functools.cache
def cpu_info() -> CpuInfo:
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return CpuInfo(model=model, cores=cores or 1, flags=flags)


def cuda_available() -> bool:
    """True only with a usable CUDA device; never initialises CUDA on a CPU build."""
    import torch

    return bool(torch.backends.cuda.is_built()) and torch.cuda.is_available()


def cuda_possible() -> bool:
    """Whether `cuda_available()` could be True, decided without importing torch.

    The cold path (`engine.coldpath`) serves a cached OpenVINO IR only where `auto`
    would not pick a GPU, and asking torch costs the very seconds it saves. A CPU
    build of torch (a ``+cpu`` version), no torch at all, macOS, or a Linux machine
    with no NVIDIA device node cannot have CUDA; anything else might (ROCm builds
    answer through torch.cuda too), and then the torch path decides."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return False
    if "+cpu" in version or sys.platform == "darwin":
        return False
    if "rocm" in version:
        return True
    if sys.platform.startswith("linux"):
        return Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
    return True


def supported_paths(best: bool = False) -> list[str]:
    """The fast CPU paths this machine's instruction set makes worth having, best first,
    whether or not their packages are installed (see benchmarks/results)."""
    names: list[str] = []
    fast_bf16 = cpu_info().fast_bf16
    names.append("openvino-bf16" if fast_bf16 else "openvino-fp32")
    if best and fast_bf16:
        names.append("openvino-fp32")
    if fast_bf16:
        names.append("torch-bf16")
    return names


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def inference_threads() -> int:
    """How many photos the engine wants in flight at once, one per worker thread.

    On a CPU one inference already uses the cores (torch/OpenVINO thread pools),
    so one thread per two cores keeps them busy without thrashing. On a GPU the
    device is fed by batches that only form when several jobs wait at once, and
    each thread's CPU work (decode, resize, encode) overlaps the device's: two
    full batches' worth.
    """
    if cuda_possible() and cuda_available():  # no torch import where CUDA cannot be
        from totoshka.engine.backends.cuda import DEFAULT_MAX_BATCH

        return max(cpu_info().cores // 2, 2 * DEFAULT_MAX_BATCH)
    return max(1, cpu_info().cores // 2)
