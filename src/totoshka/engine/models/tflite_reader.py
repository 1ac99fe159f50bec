"""Read a TensorFlow Lite flatbuffer as it is published: tensors, weights, operators.

Only what a model port needs: every tensor by name (shape, type, quantization),
its constant data *dequantized* to float32, and the operator list with the few
options that decide the arithmetic (padding, strides, fused activation, mirror
mode, resize flags). Nothing here runs a graph: the family modules
(`magenta.py`) build named PyTorch layers and take their weights from here.

Quantization (TFLite's scheme): ``real = scale * (q - zero_point)``, with one
scale/zero point per tensor, or one per slice along ``quantized_dimension``
(per-channel weights: output channels of a conv, the last axis of a depthwise
kernel). int32 biases follow the same rule with their own per-channel scales.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from totoshka.engine.errors import ModelFormatError

# TFLite TensorType -> numpy dtype (schema.fbs)
_DTYPES: dict[int, Any] = {
    0: np.float32,
    1: np.float16,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_MIRROR = {0: "REFLECT", 1: "SYMMETRIC"}


def _conv_options(o: Any) -> dict[str, Any]:
    return {
        "padding": _PADDING[o.Padding()],
        "stride": (o.StrideH(), o.StrideW()),
        "dilation": (o.DilationHFactor(), o.DilationWFactor()),
        "activation": _ACTIVATION.get(o.FusedActivationFunction(), "?"),
    }


def _resize_options(o: Any) -> dict[str, Any]:
    return {
        "align_corners": bool(o.AlignCorners()),
        "half_pixel_centers": bool(o.HalfPixelCenters()),
    }


def _activation_options(o: Any) -> dict[str, Any]:
    return {"activation": _ACTIVATION.get(o.FusedActivationFunction(), "?")}


# builtin operator -> (its options table in the `tflite` schema, what to read from it)
_OPTION_READERS: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "CONV_2D": ("Conv2DOptions", _conv_options),
    "DEPTHWISE_CONV_2D": (
        "DepthwiseConv2DOptions",
        lambda o: {**_conv_options(o), "depth_multiplier": o.DepthMultiplier()},
    ),
    "MIRROR_PAD": ("MirrorPadOptions", lambda o: {"mode": _MIRROR.get(o.Mode(), "?")}),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions", _resize_options),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", _resize_options),
    "ADD": ("AddOptions", _activation_options),
    "SUB": ("SubOptions", _activation_options),
    "MUL": ("MulOptions", _activation_options),
    "MEAN": ("ReducerOptions", lambda o: {"keep_dims": bool(o.KeepDims())}),
}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: Any
    scale: np.ndarray | None  # None: not quantized
    zero_point: np.ndarray | None
    quantized_dimension: int
    buffer: int


@dataclass(frozen=True)
class Operator:
    index: int
    op: str  # builtin operator name, e.g. "CONV_2D"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


class TFLiteModel:
    """A parsed .tflite file (first subgraph), read with the `tflite` schema package."""

    def __init__(self, path: Path | str) -> None:
        import tflite  # the flatbuffer schema, a project dependency

        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelFormatError(self.path, f"cannot read ({exc.strerror})") from None
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelFormatError(self.path, "not a TFLite flatbuffer (no TFL3 identifier)")
        try:
            self._model = tflite.Model.GetRootAsModel(data, 0)
            graph = self._model.Subgraphs(0)
            self._graph = graph
            self.tensors: dict[str, TensorInfo] = {}
            for i in range(graph.TensorsLength()):
                info = self._tensor_info(i)
                self.tensors[info.name] = info
            self._by_index = {t.index: t for t in self.tensors.values()}
            self.operators = [self._operator(j) for j in range(graph.OperatorsLength())]
            self.inputs = tuple(self._by_index[i].name for i in graph.InputsAsNumpy())
            self.outputs = tuple(self._by_index[i].name for i in graph.OutputsAsNumpy())
        except ModelFormatError:
            raise
        except Exception as exc:  # a truncated or corrupt flatbuffer fails anywhere inside
            raise ModelFormatError(self.path, f"corrupt flatbuffer ({exc})") from None

    # -- parsing -----------------------------------------------------------------------

    def _tensor_info(self, i: int) -> TensorInfo:
        t = self._graph.Tensors(i)
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scale = zero_point = None
        qdim = 0
        if q is not None and q.ScaleLength():
            scale = q.ScaleAsNumpy().astype(np.float64)
            zero_point = (
                q.ZeroPointAsNumpy().astype(np.int64)
                if q.ZeroPointLength()
                else np.zeros_like(scale, dtype=np.int64)
            )
            qdim = int(q.QuantizedDimension())
        return TensorInfo(
            index=i,
            name=t.Name().decode("utf-8"),
            shape=shape,
            dtype=_DTYPES.get(t.Type()),
            scale=scale,
            zero_point=zero_point,
            quantized_dimension=qdim,
            buffer=int(t.Buffer()),
        )

    def _operator(self, j: int) -> Operator:
        import tflite

        op = self._graph.Operators(j)
        code = self._model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = _BUILTIN_NAMES.get(builtin, f"OP_{builtin}")
        names = lambda idx: tuple(self._by_index[int(i)].name for i in idx if i >= 0)  # noqa: E731
        options: dict[str, Any] = {}
        table, reader = op.BuiltinOptions(), _OPTION_READERS.get(name)
        if table is not None and reader is not None:
            o = getattr(tflite, reader[0])()
            o.Init(table.Bytes, table.Pos)
            options = reader[1](o)
        return Operator(j, name, names(op.InputsAsNumpy()), names(op.OutputsAsNumpy()), options)

    # -- access ------------------------------------------------------------------------

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelFormatError(self.path, f"no tensor named {name!r}") from None

    def raw(self, name: str) -> np.ndarray:
        """The constant data of a tensor, as stored (no dequantization)."""
        info = self.tensor(name)
        if info.dtype is None:
            raise ModelFormatError(self.path, f"tensor {name!r} has an unsupported type")
        buf = self._model.Buffers(info.buffer)
        data = buf.DataAsNumpy() if buf is not None and buf.DataLength() else None
        if data is None or isinstance(data, int):
            raise ModelFormatError(self.path, f"tensor {name!r} has no constant data")
        array = np.frombuffer(data.tobytes(), dtype=np.dtype(info.dtype).newbyteorder("<"))
        expected = int(np.prod(info.shape)) if info.shape else 1
        if array.size != expected:
            raise ModelFormatError(
                self.path, f"tensor {name!r} holds {array.size} values, shape needs {expected}"
            )
        return array.reshape(info.shape)

    def weight(self, name: str) -> np.ndarray:
        """Constant data as float32, dequantized per tensor or per channel."""
        info = self.tensor(name)
        q = self.raw(name)
        if info.scale is None or info.dtype == np.float32:
            return q.astype(np.float32)
        scale, zero = info.scale, info.zero_point
        if scale.size > 1:
            axis = info.quantized_dimension
            if q.ndim == 0 or q.shape[axis] != scale.size:
                raise ModelFormatError(
                    self.path,
                    f"tensor {name!r}: {scale.size} scales for axis {axis} of {list(q.shape)}",
                )
            view = [1] * q.ndim
            view[axis] = scale.size
            scale, zero = scale.reshape(view), zero.reshape(view)
        return ((q.astype(np.float64) - zero) * scale).astype(np.float32)

    def producer(self, tensor_name: str) -> Operator:
        """The operator whose output is `tensor_name`."""
        for op in self.operators:
            if tensor_name in op.outputs:
                return op
        raise ModelFormatError(self.path, f"no operator produces {tensor_name!r}")

    def ops(self, kind: str) -> list[Operator]:
        return [op for op in self.operators if op.op == kind]


def _builtin_names() -> dict[int, str]:
    import tflite

    return {
        v: k
        for k, v in vars(tflite.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    }


_BUILTIN_NAMES: dict[int, str] = _builtin_names()
