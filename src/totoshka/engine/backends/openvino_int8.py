"""OpenVINO with int8 convolutions (`openvino-int8`): an opt-in path, not yet one `auto` picks.

Built on `OpenVinoRunner`: the same IR cache, the same bands and tiles for
pictures over the memory budget (painted in float, as `openvino-fp32`/`-bf16`
paint them). What differs is the untiled picture: the residue-class IR is fixed to
the photo's size and quantized by `ovint8` with a plan calibrated once per model
(kept as `<IR folder>/int8-w7.json` or `-w8.json`), then compiled; the last few
sizes stay compiled in memory, and OpenVINO's model cache keeps their blobs.

Measured at 1280x960 (wave) on a Zen 3 EPYC with AVX2 and no VNNI: about 1.4x
faster than OpenVINO fp32 at 39–45 dB against eager fp32 on five real photos
(benchmarks/int8_cpu.py, benchmarks/results/int8.md). Once the plan is on disk the
torch-free cold path (`engine.coldpath`) serves it too.

Why `auto` does not pick it yet: the plan costs its first photo ≈ 20–27 s and
≈ 1.6 GB of peak RSS (one fp32 pass at 1280x960 for the ranges, one compile and pass
per convolution for the sweep), which a bot's first user would wait through; and
`auto`'s gate measures quality on a 256-px picture where int8 loses less than at
full size. Making the plan in the conversion child, and gating at the served size,
come first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from totoshka.engine.backends import ovint8
from totoshka.engine.backends.eager import BUDGET
from totoshka.engine.backends.hardware import CpuInfo, cpu_info
from totoshka.engine.backends.openvino import OpenVinoRunner
from totoshka.engine.backends.ovconvert import residue

COMPILED_SIZES = 2  # photo sizes kept compiled: each holds its pass's memory (coldpath's 2)


def _sample(size: tuple[int, int]) -> np.ndarray:
    """The shipped sample photo covering (width, height), as float32 NCHW 0..255."""
    from totoshka.assets import sample_photo_covering

    rgb = np.asarray(sample_photo_covering(size), dtype=np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


class OpenVinoInt8Runner(OpenVinoRunner):
    """int8 convolutions; float layers in bf16 where the CPU has it, else fp32."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        threads: int | None = None,
        max_pixels: int | str | None = BUDGET,
        convert_in_process: bool = False,
        cpu: CpuInfo | None = None,
        calibration_size: tuple[int, int] = ovint8.CALIBRATION_SIZE,
        sweep_size: tuple[int, int] = ovint8.SWEEP_SIZE,
    ) -> None:
        """`calibration_size`, `sweep_size`: (width, height) of the sample photo that
        ranges are measured on and that each convolution is tried alone on (tests
        calibrate smaller; a plan made at one size serves every size)."""
        cpu = cpu or cpu_info()
        super().__init__(
            ovint8.float_precision(cpu),
            cache_dir=cache_dir,
            threads=threads,
            max_pixels=max_pixels,
            convert_in_process=convert_in_process,
        )
        self.name = "openvino-int8"
        self.half = ovint8.half_weights(cpu)
        self.calibration_size = calibration_size
        self.sweep_size = sweep_size
        self._plans: dict[Path, ovint8.Int8Plan] = {}
        self._sized: OrderedDict[tuple[Path, int, int], Any] = OrderedDict()
        self._int8_lock = threading.Lock()  # one calibration at a time

    def plan_path(self, net: nn.Module) -> Path:
        return self.folder(net) / ovint8.plan_file(self.half)

    def plan(self, net: nn.Module) -> ovint8.Int8Plan:
        """The model's int8 plan: from disk, or calibrated on the sample photo and saved."""
        folder = self.folder(net)
        with self._int8_lock:
            found = self._plans.get(folder)
            if found is not None:
                return found
            path = self.plan_path(net)
            plan = ovint8.Int8Plan.load(path)
            if plan is None:
                plan = ovint8.calibrate(
                    self.core,
                    self._model(net, (0, 0)),
                    _sample(self.calibration_size),
                    _sample(self.sweep_size),
                    self.extra_inputs(net),
                    half=self.half,
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                plan.save(path)
            self._plans[folder] = plan
            return plan

    def compiled_for(self, net: nn.Module, x: Tensor) -> Any:
        h, w = (int(v) for v in x.shape[-2:])
        key = (self.folder(net), h, w)
        with self._lock:
            found = self._sized.get(key)
            if found is not None:
                self._sized.move_to_end(key)
                return found
        plan = self.plan(net)
        model = ovint8.quantize(ovint8.static_model(self._model(net, residue(x)), (h, w)), plan)
        config = {**self.config, "CACHE_DIR": str(self.blob_dir())}
        compiled = self.core.compile_model(model, "CPU", config)
        with self._lock:
            self._sized[key] = compiled
            while len(self._sized) > COMPILED_SIZES:
                self._sized.popitem(last=False)
        return compiled
