"""int8 convolutions (`ovint8`, `openvino-int8`): really int8, close to fp32, calibrated
once, and served by the torch-free cold path.

Quality is checked against eager fp32 on a real photo; speed is not checked here (the
figures are in benchmarks/results/int8.md, from benchmarks/int8_cpu.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from totoshka.engine.backends import ovint8
from totoshka.engine.backends.hardware import CpuInfo
from totoshka.engine.backends.quality import psnr

pytest.importorskip("openvino")

FLOOR_DB = 35.0  # `auto`'s floor: what the int8 picture must keep against eager fp32
SMALL = {"calibration_size": (320, 240), "sweep_size": (256, 192)}


def test_a_plan_survives_the_disk_and_refuses_other_versions(tmp_path: Path) -> None:
    plan = ovint8.Int8Plan([(0.0, 255.0), (-1.5, 2.0)], [1], True, [40.0, 55.5])
    path = tmp_path / "int8-w7.json"
    plan.save(path)
    assert ovint8.Int8Plan.load(path) == plan
    path.write_text(path.read_text(encoding="utf-8").replace('"version": 1', '"version": 0'))
    assert ovint8.Int8Plan.load(path) is None
    path.write_text("{torn", encoding="utf-8")
    assert ovint8.Int8Plan.load(path) is None
    assert ovint8.Int8Plan.load(tmp_path / "absent.json") is None


def test_weights_get_seven_bits_only_without_vnni() -> None:
    assert ovint8.half_weights(CpuInfo("zen3", 2, frozenset({"avx2", "fma"})))
    assert not ovint8.half_weights(CpuInfo("zen4", 2, frozenset({"avx2", "avx512_vnni"})))
    assert not ovint8.half_weights(CpuInfo("spr", 2, frozenset({"amx_int8", "amx_bf16"})))
    assert ovint8.plan_file(True) != ovint8.plan_file(False)


@pytest.fixture(scope="module")
def wave(shared_dir: Path) -> nn.Module:
    from totoshka.engine.models.ml5 import load_ml5

    return load_ml5(shared_dir / "models" / "ml5" / "wave").eval()


@pytest.fixture(scope="module")
def photo(shared_dir: Path) -> Tensor:
    """A real photo at an odd size (sides ≡ 3, 1 mod 4)."""
    image = Image.open(shared_dir / "images" / "content" / "venice-boat.jpg").convert("RGB")
    rgb = np.asarray(image.resize((401, 303), Image.Resampling.LANCZOS), dtype=np.float32)
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, wave: nn.Module, photo: Tensor) -> Any:
    from totoshka.engine.backends.openvino_int8 import OpenVinoInt8Runner

    cache = tmp_path_factory.mktemp("int8")
    runner = OpenVinoInt8Runner(cache_dir=cache, max_pixels=None, **SMALL)
    return runner, runner.run(wave, photo)


def test_int8_keeps_the_picture_and_really_runs_int8(
    made: Any, wave: nn.Module, photo: Tensor
) -> None:
    runner, out = made
    with torch.inference_mode():
        reference = wave(photo).clamp(0, 255)
    assert out.shape == photo.shape
    assert psnr(out, reference) >= FLOOR_DB
    plan = runner.plan(wave)
    assert 0 < len(plan.quantized) < len(plan.ranges)  # the sensitive ones stay float
    assert len(plan.sweep_db) == len(plan.ranges)
    assert all(plan.sweep_db[k] >= ovint8.SENSITIVE_DB for k in plan.quantized)
    # the compiled model runs the plan's convolutions on u8 inputs: not silently float
    assert ovint8.runs_int8(runner.compiled_for(wave, photo)) >= len(plan.quantized) - 2


def test_the_plan_is_calibrated_once_per_cache(made: Any, wave: nn.Module, photo: Tensor) -> None:
    from totoshka.engine.backends.openvino_int8 import OpenVinoInt8Runner

    runner, out = made
    path = runner.plan_path(wave)
    stamp = path.stat().st_mtime_ns
    again = OpenVinoInt8Runner(cache_dir=runner.cache_dir, max_pixels=None, **SMALL)
    assert again.plan(wave) == runner.plan(wave)
    assert path.stat().st_mtime_ns == stamp  # read, not calibrated again
    assert torch.equal(again.run(wave, photo), out)


def test_only_the_plans_convolutions_are_quantized(made: Any, wave: nn.Module) -> None:
    import openvino as ov

    runner, _ = made
    plan = runner.plan(wave)
    core = ov.Core()
    model = ovint8.static_model(runner._model(wave, (0, 0)), (96, 128))
    x = np.full((1, 3, 96, 128), 100.0, dtype=np.float32)
    none = ovint8.Int8Plan(plan.ranges, [], plan.half_weights)
    compiled = core.compile_model(ovint8.quantize(model.clone(), none), "CPU")
    assert ovint8.runs_int8(compiled) == 0
    every = ovint8.Int8Plan(plan.ranges, list(range(len(plan.ranges))), plan.half_weights)
    quantized = ovint8.quantize(model.clone(), every)
    kinds = [op.get_type_name() for op in quantized.get_ordered_ops()]
    assert kinds.count("FakeQuantize") == 2 * len(plan.ranges)  # input and weights each
    assert ovint8.runs_int8(core.compile_model(quantized, "CPU")) > 0
    assert np.isfinite(ovint8.infer(core, quantized, x)).all()


def test_seven_bit_weights_span_twice_the_range(made: Any, wave: nn.Module) -> None:
    runner, _ = made
    plan = runner.plan(wave)
    model = ovint8.static_model(runner._model(wave, (0, 0)), (96, 128))
    limits = {}
    for half in (False, True):
        quantized = ovint8.quantize(
            model.clone(), ovint8.Int8Plan(plan.ranges, [0], half, plan.sweep_db)
        )
        weights_fq = [
            op
            for op in quantized.get_ordered_ops()
            if op.get_type_name() == "FakeQuantize"
            and op.input_value(0).get_node().get_type_name() == "Constant"
        ]
        assert len(weights_fq) == 1
        limits[half] = weights_fq[0].input_value(2).get_node().get_data()
    assert np.allclose(limits[True], 2 * limits[False])


def test_cold_path_serves_int8_without_torch(shared_dir: Path, tmp_path: Path) -> None:
    """`TOTOSHKA_BACKEND=openvino-int8`: the first run calibrates (torch path), the next
    is painted by the cold path without torch, as the torch path painted it."""
    from test_coldpath import run_cli  # the same wrapper: it reports what was imported

    photo = tmp_path / "photo.jpg"
    source = Image.open(shared_dir / "images" / "content" / "amber.jpg").convert("RGB")
    source.resize((483, 362), Image.Resampling.LANCZOS).save(photo, quality=92)
    env = {
        **os.environ,
        "TOTOSHKA_MODEL_MIRROR": str(shared_dir / "models"),
        "TOTOSHKA_CACHE_DIR": str(tmp_path / "cache"),
        "TOTOSHKA_DATA_DIR": str(tmp_path / "data"),
        "TOTOSHKA_BACKEND": "openvino-int8",
    }
    env.pop("TOTOSHKA_MEMORY_BUDGET_MB", None)
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    seen = run_cli(["stylize", str(photo), "--style", "wave", "-o", str(first)], env)
    assert seen["torch"]
    plans = list((tmp_path / "cache").rglob("int8-w*.json"))
    assert len(plans) == 1
    seen = run_cli(["stylize", str(photo), "--style", "wave", "-o", str(second)], env)
    assert seen == {"code": 0, "torch": False, "openvino": True}
    a = np.asarray(Image.open(first), np.float64)
    b = np.asarray(Image.open(second), np.float64)
    mse = float(((a - b) ** 2).mean())
    assert mse == 0 or 10 * math.log10(255.0**2 / mse) >= 45.0
    env["TOTOSHKA_BACKEND"] = "eager-fp32"
    reference = tmp_path / "eager.png"
    run_cli(["stylize", str(photo), "--style", "wave", "-o", str(reference)], env)
    c = np.asarray(Image.open(reference), np.float64)
    assert 10 * math.log10(255.0**2 / float(((b - c) ** 2).mean())) >= FLOOR_DB
