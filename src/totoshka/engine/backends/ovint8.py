"""int8 convolutions for the style networks, made in OpenVINO from the fp32 IR.

Torch-free (numpy and OpenVINO). A convolution runs in int8 when its input and
its weights pass through `FakeQuantize` nodes: OpenVINO's low-precision passes
then pick u8 x i8 kernels. Only convolution inputs are quantized; instance norms
and residual adds stay float (quantizing them gave ≈ 20 dB, ../shared
PERF-NOTES.md). The nodes are put in by hand rather than with NNCF: three facts,
each measured on this project's AMD EPYC (Zen 3, AVX2 without VNNI), decide how,
and a general tool does not know them (benchmarks/int8_cpu.py):

- Without VNNI the int8 kernels multiply u8 by s8 and add pairs in 16 bits with
  saturation (`vpmaddubsw`): 8-bit weights overflow it (the first convolution's
  output was 13 % off, the picture 10–17 dB). Weights are therefore quantized to
  7 bits there (`half_weights`): the same FakeQuantize over twice the range.
  With VNNI (or AMX) the products add up in 32 bits and 8 bits are kept.
- With dynamic picture sides the int8 kernels gave a broken picture (≈ 9 dB) on
  that CPU; with static sides they are right. `static_model` fixes the sides:
  one compiled model per photo size (≈ 0.6 s to compile).
- Per-tensor activation ranges lose some layers far more than others: on the
  ml5 wave network the second convolution alone cost the picture 36 dB, the last
  one 41, the other residual convolutions 49–58. `calibrate` quantizes each
  convolution alone on a calibration picture and keeps the ones that would cost
  more than `SENSITIVE_DB` in float: wave then keeps 4 of 16 in float and lands
  at 39–45 dB on five real photos, 1.6x faster than OpenVINO fp32.

Ranges are the minimum and maximum of each convolution's input on the shipped
sample photo at Telegram's photo size (`CALIBRATION_SIZE`): the network's inputs
after instance norm are normalised, so their ranges depend little on content,
and calibrating at the size served matters more (int8 calibrated at 640x480 lost
4 dB at 12 MP, PERF-NOTES.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from totoshka.engine.backends.hardware import CpuInfo

QUANTIZED_TYPES = ("Convolution", "ConvolutionBackpropData")
SENSITIVE_DB = 50.0  # a convolution costing more than this alone stays float
CALIBRATION_SIZE = (1280, 960)  # ranges: Telegram's largest photo side, 4:3
SWEEP_SIZE = (512, 384)  # the per-layer sweep: smaller, one compile per convolution
PLAN_VERSION = 1
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def half_weights(cpu: CpuInfo) -> bool:
    """7-bit weights where u8 x s8 products are summed in saturating 16 bits (no VNNI)."""
    return not (VNNI_FLAGS & cpu.flags)


def float_precision(cpu: CpuInfo) -> str:
    """The precision hint for the layers left in float: bf16 where it is fast."""
    return "bf16" if cpu.fast_bf16 else "f32"


def plan_file(half: bool) -> str:
    """The plan's file name beside the IR: 7- and 8-bit weights are different plans."""
    return f"int8-{'w7' if half else 'w8'}.json"


@dataclass(frozen=True)
class Int8Plan:
    """What `quantize` needs: each convolution's input range (in graph order), which
    convolutions run in int8, and whether weights get 7 bits. Kept on disk beside
    the IR (`save`/`load`), so calibration runs once per model and machine kind."""

    ranges: list[tuple[float, float]]
    quantized: list[int]
    half_weights: bool
    sweep_db: list[float] = field(default_factory=list)  # each convolution alone (diagnostics)
    version: int = PLAN_VERSION

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Int8Plan | None:
        """The saved plan, or None when there is none or it is of another version."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != PLAN_VERSION:
                return None
            return cls(
                ranges=[(float(lo), float(hi)) for lo, hi in data["ranges"]],
                quantized=[int(k) for k in data["quantized"]],
                half_weights=bool(data["half_weights"]),
                sweep_db=[float(v) for v in data.get("sweep_db", [])],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def convolutions(model: Any) -> list[Any]:
    return [op for op in model.get_ordered_ops() if op.get_type_name() in QUANTIZED_TYPES]


def static_model(model: Any, shape: tuple[int, int]) -> Any:
    """A clone of a dynamic-sides IR at one picture size (height, width); other inputs
    (a bound style) keep theirs."""
    import openvino as ov

    clone = model.clone()
    first = clone.get_parameters()[0]
    clone.reshape({first.output(0): ov.PartialShape([1, 3, *shape])})
    return clone


def _constant(value: Any) -> Any:
    import openvino.opset13 as ops

    return ops.constant(np.asarray(value, dtype=np.float32))


def _weight_limits(conv: Any, weights: np.ndarray) -> np.ndarray:
    """max |w| per output channel, shaped to broadcast against the weights."""
    if conv.get_type_name() == "Convolution":  # (out, in, kh, kw)
        return np.abs(weights).reshape(weights.shape[0], -1).max(1).reshape(-1, 1, 1, 1)
    # ConvolutionBackpropData: (in, out, kh, kw)
    per_out = np.abs(weights).transpose(1, 0, 2, 3).reshape(weights.shape[1], -1).max(1)
    return per_out.reshape(1, -1, 1, 1)


def quantize(model: Any, plan: Int8Plan) -> Any:
    """`model` (changed in place and returned) with FakeQuantize before the inputs and
    weights of the plan's convolutions. Activations: 256 levels over the measured
    range (from 0 where it is never negative); weights: 255 symmetric levels per
    output channel, over twice the range with `half_weights` (7 bits in effect)."""
    import openvino.opset13 as ops

    convs = convolutions(model)
    if len(convs) != len(plan.ranges):
        raise ValueError(f"plan for {len(plan.ranges)} convolutions, model has {len(convs)}")
    for k in plan.quantized:
        conv = convs[k]
        lo, hi = plan.ranges[k]
        lo = min(lo, 0.0)
        if hi <= lo:
            continue  # a constant input: nothing to gain
        act = ops.fake_quantize(
            conv.input_value(0), _constant(lo), _constant(hi), _constant(lo), _constant(hi), 256
        )
        conv.input(0).replace_source_output(act.output(0))
        source = conv.input_value(1).get_node()
        if source.get_type_name() != "Constant":
            continue  # weights computed in the graph: leave the input quantized only
        limit = _weight_limits(conv, source.get_data()).astype(np.float32)
        limit = np.maximum(limit * (2.0 if plan.half_weights else 1.0), np.float32(1e-12))
        low, high = _constant(-limit), _constant(limit)
        weights = ops.fake_quantize(conv.input_value(1), low, high, low, high, 255)
        conv.input(1).replace_source_output(weights.output(0))
    model.validate_nodes_and_infer_types()
    return model


def activation_ranges(
    core: Any, model: Any, picture: np.ndarray, extra: Sequence[np.ndarray] = ()
) -> list[tuple[float, float]]:
    """min and max of every convolution's input on `picture` (float32 NCHW), in fp32;
    `extra`: the model's other inputs (a bound style vector). The reductions run in
    the graph, so the pass holds no more than an ordinary one (outputting the inputs
    themselves took 3.4 GB at 1280x960)."""
    import openvino.opset13 as ops

    probe = static_model(model, picture.shape[-2:])
    extremes = []
    for conv in convolutions(probe):
        source = conv.input_value(0)
        axes = ops.constant(np.arange(len(source.get_partial_shape()), dtype=np.int64))
        extremes += [ops.reduce_min(source, axes).output(0), ops.reduce_max(source, axes).output(0)]
    probe.add_outputs(extremes)
    compiled = core.compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled.create_infer_request().infer([picture, *extra])
    values = [float(np.asarray(results[output])) for output in compiled.outputs[1:]]
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two 0..255 pictures (clipped as served); inf when identical."""
    diff = np.clip(a, 0, 255).astype(np.float64) - np.clip(b, 0, 255).astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def infer(
    core: Any, model: Any, picture: np.ndarray, extra: Sequence[np.ndarray] = ()
) -> np.ndarray:
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled.create_infer_request().infer([picture, *extra])
    return np.asarray(out[compiled.outputs[0]])


def calibrate(
    core: Any,
    model: Any,
    ranges_picture: np.ndarray,
    sweep_picture: np.ndarray,
    extra: Sequence[np.ndarray] = (),
    *,
    half: bool,
    sensitive_db: float = SENSITIVE_DB,
) -> Int8Plan:
    """The plan for `model` (a dynamic-sides IR): ranges measured on `ranges_picture`,
    then each convolution quantized alone on `sweep_picture`; those whose picture
    falls under `sensitive_db` against fp32 stay float. `extra`: the model's other
    inputs (a style network calibrates with the style it is bound to)."""
    ranges = activation_ranges(core, model, ranges_picture, extra)
    sweep = static_model(model, sweep_picture.shape[-2:])
    reference = infer(core, sweep, sweep_picture, extra)
    scores = []
    for k in range(len(ranges)):
        alone = quantize(sweep.clone(), Int8Plan(ranges, [k], half))
        scores.append(round(psnr(infer(core, alone, sweep_picture, extra), reference), 2))
    kept = [k for k, db in enumerate(scores) if db >= sensitive_db]
    return Int8Plan(ranges, kept, half, scores)


def runs_int8(compiled: Any) -> int:
    """How many convolutions a compiled model runs on u8 inputs: a path called int8
    must really be (a quantizer can silently quantize nothing, PERF-NOTES.md)."""
    count = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in ("Convolution", "Deconvolution") and info["runtimePrecision"].astype(str) in (
            "u8",
            "i8",
        ):
            count += 1
    return count
