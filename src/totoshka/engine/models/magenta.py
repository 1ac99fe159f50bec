"""Arbitrary style transfer of Ghiasi et al. 2017 ("Exploring the structure of a
real-time, arbitrary neural artistic stylization network", BMVC), rebuilt in
PyTorch from the two int8 TFLite files Google publishes for Magenta's
`arbitrary-image-stylization-v1-256`.

Two networks:

- **Style prediction** (`StylePredictor`): a MobileNet-v2 encoder. A 256x256
  painting in [0, 1] goes through the stem conv, 17 inverted-residual blocks and
  a 1x1 conv to 1280 channels; the spatial mean of that (the "bottleneck") is
  mapped by one more 1x1 conv to the 100-number *style vector* S.
- **Style transfer** (`TransferNetwork`): the Johnson-style encoder/decoder of
  the paper: three contracting convs (9x9 s1, 3x3 s2, 3x3 s2, batch norm folded
  into their biases, ReLU), five residual blocks, and three expanding layers
  (nearest upsampling x2, x2, x1, then conv), all convs with mirror (reflect)
  padding. Every norm after the contracting part is *conditional instance norm*:
  plain instance norm whose scale gamma and shift beta are affine functions of S
  (the graph's `style_params/.../StyleNorm/Conv_1` gives gamma, `.../Conv` beta,
  as 1x1 convs on the 1x1x100 vector, i.e. dense layers). The output is a sigmoid,
  RGB in [0, 1].

The layer sequence, strides, paddings, activations and widths are read from the
graph itself (`load_predictor`, `load_transfer` walk the operators by their tensor
names and refuse a file that does not have this structure); weights are
dequantized from int8 (per output channel) and biases from int32. The PyTorch
modules compute in float32 throughout, whereas LiteRT keeps every activation in
int8: the port is the network the int8 file approximates, not a bit-exact copy
of the int8 arithmetic. Against LiteRT on the same inputs (384x384, amber.jpg and
four paintings; tests/own_style/test_magenta_parity.py): style vectors cosine
0.9999 (relative L2 error 1.2-1.4 %), pictures 27.0-31.2 dB PSNR. The picture gap
is LiteRT's int8 activations, above all inside conditional instance norm (the
variance is the mean of int8-rounded squared differences, rsqrt is clipped to its
int8 range): the same layers with those roundings emulated reach 32-36 dB, and a
real structural mistake (gamma and beta swapped) falls to 10 dB.

Any size: the published transfer file resizes to fixed 384-based sizes in its
RESIZE_NEAREST_NEIGHBOR ops; here upsampling is a plain x2 nearest. A side must
be a multiple of 4 (two stride-2 convs then two x2 upsamplings) to come back
unchanged, so `BoundTransfer` reflect-pads the photo at the bottom/right up to a
multiple of 4 (and at least `MIN_SIDE`) and crops the result back to the photo's
size. That wrapper also binds the style vector and converts the engine's 0..255
convention to the network's [0, 1], so the rest of the engine sees
`forward(x) -> y`.

All instance norms go through `layers.InstanceNorm(c, eps, affine=False)`, with
the style's gamma/beta applied after it, so tiling can record and replay the
statistics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models.layers import InstanceNorm, pad_same
from totoshka.engine.models.tflite_reader import Operator, TFLiteModel

STYLE_DIM = 100
PREDICTOR_SIZE = 256  # the painting's side for the style prediction network
TRANSFER_SIZE = 384  # the side the published transfer file was exported for
TOTAL_STRIDE = 4
MIN_SIDE = 16  # reflect padding inside needs a few pixels at 1/4 scale

PREDICTION_FILE = "magenta_arbitrary-image-stylization-v1-256_int8_prediction_1.tflite"
TRANSFER_FILE = "magenta_arbitrary-image-stylization-v1-256_int8_transfer_1.tflite"

_ACTIVATIONS = {None: nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6}


# --------------------------------------------------------------------------------------
# Style prediction: MobileNet-v2


class SameConv(nn.Module):
    """Conv (+bias, batch norm folded in) with TensorFlow "SAME" padding, then activation."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, groups=groups, bias=True)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(pad_same(x, self.kernel, self.stride)))


class InvertedResidual(nn.Module):
    """MobileNet-v2 block: 1x1 expand (ReLU6) → 3x3 depthwise (ReLU6) → 1x1 linear
    projection, plus the input when the block keeps size and width."""

    def __init__(self, c_in: int, c_hidden: int, c_out: int, stride: int, residual: bool):
        super().__init__()
        self.expand = SameConv(c_in, c_hidden, 1, activation="relu6") if c_hidden != c_in else None
        self.depthwise = SameConv(
            c_hidden, c_hidden, 3, stride, groups=c_hidden, activation="relu6"
        )
        self.project = SameConv(c_hidden, c_out, 1)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class StylePredictor(nn.Module):
    """Painting (N,3,256,256) in [0, 1] → style vector (N, 100)."""

    def __init__(self, blocks: list[tuple[int, int, int, int, bool]], c_stem: int, c_last: int):
        super().__init__()
        self.stem = SameConv(3, c_stem, 3, 2, activation="relu6")
        self.blocks = nn.Sequential(*(InvertedResidual(*b) for b in blocks))
        self.head = SameConv(blocks[-1][2], c_last, 1, activation="relu6")
        self.bottleneck = nn.Conv2d(c_last, STYLE_DIM, 1)  # "mobilenet_conv/Conv"

    def forward(self, x: Tensor) -> Tensor:
        y = self.head(self.blocks(self.stem(x)))
        y = y.mean(dim=(2, 3), keepdim=True)
        return self.bottleneck(y).flatten(1)


# --------------------------------------------------------------------------------------
# Style transfer: contract → residual → expand, conditional instance norm


class MirrorConv(nn.Module):
    """Reflect-pad by kernel//2, then a VALID conv (as `transformer/.../MirrorPad` + CONV_2D)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        p = self.pad
        return self.conv(F.pad(x, (p, p, p, p), mode="reflect"))


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose gamma and beta are dense functions of the style vector.

    `StyleNorm` in the graph: gamma = `Conv_1`(S), beta = `Conv`(S), both 1x1 convs
    on the (1,1,100) vector. The normalisation itself is `layers.InstanceNorm`.
    """

    def __init__(self, channels: int, eps: float = 1e-5, style_dim: int = STYLE_DIM) -> None:
        super().__init__()
        self.norm = InstanceNorm(channels, eps=eps, affine=False)
        self.gamma = nn.Linear(style_dim, channels)
        self.beta = nn.Linear(style_dim, channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma = self.gamma(style)[:, :, None, None]
        beta = self.beta(style)[:, :, None, None]
        return self.norm(x) * gamma + beta


class ContractConv(nn.Module):
    """Mirror-padded conv, batch norm folded into the bias, ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = MirrorConv(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x))


class ResidualBlock(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))), 3x3 mirror-padded convs."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.conv1 = MirrorConv(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm(channels, eps)
        self.conv2 = MirrorConv(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm(channels, eps)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x), style))
        return x + self.norm2(self.conv2(y), style)


class UpsampleConv(nn.Module):
    """Nearest upsampling by `scale`, mirror-padded conv, CIN, then ReLU or sigmoid."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, scale: int, eps: float, last: bool = False
    ) -> None:
        super().__init__()
        self.scale, self.last = scale, last
        self.conv = MirrorConv(c_in, c_out, kernel)
        self.norm = ConditionalInstanceNorm(c_out, eps)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        y = self.norm(self.conv(x), style)
        return torch.sigmoid(y) if self.last else F.relu(y)


class TransferNetwork(nn.Module):
    """(photo (N,3,H,W) in [0, 1], style (N,100)) → painting in [0, 1].

    H and W must be multiples of 4 for the output to have the input's size;
    `BoundTransfer` takes care of any other size.
    """

    def __init__(
        self, widths: tuple[int, int, int] = (32, 64, 128), blocks: int = 5, eps: float = 1e-5
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.contract = nn.Sequential(
            ContractConv(3, c1, 9, 1),
            ContractConv(c1, c2, 3, 2),
            ContractConv(c2, c3, 3, 2),
        )
        self.residual = nn.ModuleList(ResidualBlock(c3, eps) for _ in range(blocks))
        self.expand = nn.ModuleList(
            [
                UpsampleConv(c3, c2, 3, 2, eps),
                UpsampleConv(c2, c1, 3, 2, eps),
                UpsampleConv(c1, 3, 9, 1, eps, last=True),
            ]
        )

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        y = self.contract(x)
        for block in self.residual:
            y = block(y, style)
        for layer in self.expand:
            y = layer(y, style)
        return y


class BoundTransfer(nn.Module):
    """The transfer network bound to one style vector: the engine's `forward(x) -> y`.

    x: float32 NCHW RGB 0..255, any size; y: the same shape, 0..255.
    """

    family = "magenta"

    def __init__(self, transfer: TransferNetwork, style: Tensor | np.ndarray | list[float]):
        super().__init__()
        self.transfer = transfer
        vector = torch.as_tensor(np.asarray(style, dtype=np.float32)).reshape(1, -1)
        if vector.shape[1] != STYLE_DIM or not torch.isfinite(vector).all():
            raise ValueError(f"a style vector has {STYLE_DIM} finite numbers")
        self.register_buffer("style", vector)
        self._single: tuple[BoundTransfer, ...] = ()

    @classmethod
    def _of(cls, transfer: nn.Module, styles: Tensor, single: tuple[BoundTransfer, ...]) -> Self:
        bound = cls.__new__(cls)
        nn.Module.__init__(bound)
        bound.transfer = transfer
        bound.register_buffer("style", styles)
        bound._single = single
        return bound

    @property
    def shared_network(self) -> nn.Module:
        """What a fast path's quality verdict is kept for (`backends.auto`): own styles
        bring a new vector for nearly every photo, and one calibration of the
        transfer network serves them all, instead of one CPU reference per job.
        It is also what a GPU keeps one copy of, and what batches share."""
        return self.transfer

    @property
    def calibration_network(self) -> nn.Module:
        """A one-vector network to calibrate a path with (a stacked one has N vectors)."""
        return self._single[0] if self._single else self

    @classmethod
    def stacked(cls, nets: Sequence[BoundTransfer]) -> Self:
        """One network for a batch in which picture i has `nets[i]`'s style vector.

        The vector is an input of the transfer network, not a weight, so own-style
        jobs of different users (same size) can share one GPU batch.
        """
        styles = torch.cat([n.style for n in nets])
        return cls._of(nets[0].transfer, styles, (nets[0].calibration_network,))  # type: ignore[arg-type]

    def with_shared(self, transfer: nn.Module) -> Self:
        """This binding over another copy of the transfer network (e.g. the GPU's)."""
        styles = self.style.to(next(transfer.parameters()).device)
        return self._of(transfer, styles, self._single)

    def forward(self, x: Tensor) -> Tensor:
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
# Loading from the published .tflite files


def _tf_conv_weight(model: TFLiteModel, name: str, depthwise: bool = False) -> Tensor:
    w = model.weight(name)  # CONV_2D: (O, H, W, I); DEPTHWISE: (1, H, W, C)
    w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(w))


def _conv_op(model: TFLiteModel, output: str, kind: str = "CONV_2D") -> Operator:
    op = model.producer(output)
    if op.op != kind:
        raise ModelFormatError(model.path, f"{output} comes from {op.op}, expected {kind}")
    return op


def _set(model: TFLiteModel, module: nn.Module, name: str, value: Tensor) -> None:
    target: Tensor = getattr(module, name)
    if tuple(target.shape) != tuple(value.shape):
        raise ModelFormatError(
            model.path,
            f"{name} of {module.__class__.__name__} has shape "
            f"{list(value.shape)}, expected {list(target.shape)}",
        )
    with torch.no_grad():
        target.copy_(value)


def _load_conv(model: TFLiteModel, conv: nn.Conv2d, op: Operator, depthwise: bool = False) -> None:
    _set(model, conv, "weight", _tf_conv_weight(model, op.inputs[1], depthwise))
    _set(model, conv, "bias", torch.from_numpy(model.weight(op.inputs[2]).copy()))


def _check(model: TFLiteModel, ok: bool, what: str) -> None:
    if not ok:
        raise ModelFormatError(model.path, what)


def load_predictor(path: Path | str) -> StylePredictor:
    """The MobileNet-v2 style predictor of the published prediction .tflite."""
    model = TFLiteModel(path)
    _check(model, "style_image" in model.inputs, "no style_image input (not the prediction file)")
    root = "MobilenetV2"
    stem = _conv_op(model, f"{root}/Conv/Relu6")
    _check(
        model,
        stem.options["stride"] == (2, 2) and stem.options["padding"] == "SAME",
        "unexpected stem convolution",
    )
    pattern = re.compile(rf"^{root}/expanded_conv(?:_(\d+))?/depthwise/Relu6$")
    found = sorted(
        (int(m.group(1) or 0), op)
        for op in model.ops("DEPTHWISE_CONV_2D")
        for m in [pattern.match(op.outputs[0])]
        if m
    )
    _check(model, len(found) > 0, "no MobileNet-v2 blocks")
    adds = {op.outputs[0] for op in model.ops("ADD")}
    specs, ops = [], []
    c_in = model.tensor(stem.inputs[1]).shape[0]
    for i, dw in found:
        scope = f"{root}/expanded_conv" + (f"_{i}" if i else "")
        expand = f"{scope}/expand/Relu6"
        has_expand = expand in model.tensors
        project = _conv_op(model, f"{scope}/project/BatchNorm/FusedBatchNormV3")
        c_hidden = model.tensor(dw.inputs[1]).shape[3]
        c_out = model.tensor(project.inputs[1]).shape[0]
        _check(
            model,
            dw.options["padding"] == "SAME" and dw.options["depth_multiplier"] == 1,
            f"{scope}: unexpected depthwise options",
        )
        _check(model, has_expand or c_hidden == c_in, f"{scope}: width mismatch")
        stride = dw.options["stride"][0]
        residual = f"{scope}/add" in adds
        specs.append((c_in, c_hidden, c_out, stride, residual))
        ops.append((_conv_op(model, expand) if has_expand else None, dw, project))
        c_in = c_out
    head = _conv_op(model, f"{root}/Conv_1/Relu6")
    bottleneck = model.producer("mobilenet_conv/Conv/BiasAdd_int8")
    if bottleneck.op != "CONV_2D":
        bottleneck = _conv_op(model, "mobilenet_conv/Conv/BiasAdd")
    c_stem = model.tensor(stem.inputs[1]).shape[0]
    net = StylePredictor(specs, c_stem, model.tensor(head.inputs[1]).shape[0])
    _load_conv(model, net.stem.conv, stem)
    for block, (expand_op, dw, project) in zip(net.blocks, ops, strict=True):
        if expand_op is not None:
            _load_conv(model, block.expand.conv, expand_op)
        _load_conv(model, block.depthwise.conv, dw, depthwise=True)
        _load_conv(model, block.project.conv, project)
    _load_conv(model, net.head.conv, head)
    _load_conv(model, net.bottleneck, bottleneck)
    return net.eval().requires_grad_(False)


def _load_style_norm(model: TFLiteModel, norm: ConditionalInstanceNorm, scope: str) -> None:
    """gamma/beta dense layers of `<scope>/StyleNorm`, checked against how the graph uses them."""
    beta_op = _conv_op(model, f"style_params/{scope}/StyleNorm/Conv/BiasAdd")
    gamma_op = _conv_op(model, f"style_params/{scope}/StyleNorm/Conv_1/BiasAdd")
    # gamma multiplies rsqrt(var + eps); beta is what mean * that is subtracted from
    mul = model.producer(f"{scope}/StyleNorm/batchnorm/mul")
    sub = model.producer(f"{scope}/StyleNorm/batchnorm/sub")
    _check(
        model,
        gamma_op.outputs[0] in mul.inputs and beta_op.outputs[0] == sub.inputs[0],
        f"{scope}: StyleNorm is not gamma * normalised + beta",
    )
    for dense, op in ((norm.gamma, gamma_op), (norm.beta, beta_op)):
        w = model.weight(op.inputs[1])  # (C, 1, 1, 100)
        _set(model, dense, "weight", torch.from_numpy(w.reshape(w.shape[0], -1).copy()))
        _set(model, dense, "bias", torch.from_numpy(model.weight(op.inputs[2]).copy()))
    eps = float(model.weight(f"{scope}/StyleNorm/batchnorm/add/y").reshape(()))
    norm.norm.eps = float(np.float32(round(eps, 10)))


def _mirror_pad_of(model: TFLiteModel, conv: Operator) -> tuple[int, ...]:
    """The (top, bottom, left, right) reflect padding feeding a conv."""
    src = conv.inputs[0]
    op = model.producer(src)
    while op.op == "QUANTIZE":
        op = model.producer(op.inputs[0])
    _check(
        model,
        op.op == "MIRROR_PAD" and op.options.get("mode") == "REFLECT",
        f"{conv.outputs[0]}: input is not reflect-padded",
    )
    pads = model.raw(op.inputs[1]).reshape(4, 2)
    return tuple(int(v) for v in pads[1:3].reshape(-1))


def load_transfer(path: Path | str) -> TransferNetwork:
    """The conditional-instance-norm transfer network of the transfer .tflite."""
    model = TFLiteModel(path)
    _check(model, "content_image" in model.inputs, "no content_image input (not the transfer file)")
    t = "transformer"
    contract = [_conv_op(model, f"{t}/contract/conv{i}/Relu") for i in (1, 2, 3)]
    widths = tuple(model.tensor(op.inputs[1]).shape[0] for op in contract)
    n_blocks = 0
    while f"{t}/residual/residual{n_blocks + 1}/add" in model.tensors:
        n_blocks += 1
    _check(model, n_blocks > 0, "no residual blocks")
    eps = float(model.weight(f"{t}/residual/residual1/conv1/StyleNorm/batchnorm/add/y").reshape(()))
    net = TransferNetwork(widths, n_blocks, eps)  # type: ignore[arg-type]

    for layer, op, stride in zip(net.contract, contract, (1, 2, 2), strict=True):
        k = model.tensor(op.inputs[1]).shape[1]
        _check(
            model,
            op.options["stride"] == (stride, stride)
            and op.options["padding"] == "VALID"
            and op.options["activation"] == "relu",
            f"{op.outputs[0]}: unexpected options",
        )
        _check(model, _mirror_pad_of(model, op) == (k // 2,) * 4, f"{op.outputs[0]}: padding")
        _load_conv(model, layer.conv.conv, op)

    for b, block in enumerate(net.residual, start=1):
        scope = f"{t}/residual/residual{b}"
        for j, conv, norm in ((1, block.conv1, block.norm1), (2, block.conv2, block.norm2)):
            op = _conv_op(model, f"{scope}/conv{j}/Conv2D")
            _check(model, _mirror_pad_of(model, op) == (1, 1, 1, 1), f"{scope}: padding")
            _load_conv(model, conv.conv, op)
            _load_style_norm(model, norm, f"{scope}/conv{j}")

    source = f"{t}/residual/residual{n_blocks}/add"
    for i, layer in enumerate(net.expand, start=1):
        scope = f"{t}/expand/conv{i}"
        resize = model.producer(f"{scope}/ResizeNearestNeighbor")
        _check(
            model,
            resize.op == "RESIZE_NEAREST_NEIGHBOR"
            and not resize.options["align_corners"]
            and not resize.options["half_pixel_centers"],
            f"{scope}: unexpected resize",
        )
        # the file's sizes are fixed for 384x384; keep only their ratio (x2 or x1)
        size_in = model.tensor(source).shape[1]
        size_out = int(model.raw(resize.inputs[1])[0])
        _check(model, size_out == layer.scale * size_in, f"{scope}: resize is not x{layer.scale}")
        op = _conv_op(model, f"{scope}/conv/Conv2D")
        k = model.tensor(op.inputs[1]).shape[1]
        _check(model, _mirror_pad_of(model, op) == (k // 2,) * 4, f"{scope}: padding")
        _load_conv(model, layer.conv.conv, op)
        _load_style_norm(model, layer.norm, f"{scope}/conv")
        source = f"{scope}/conv/Relu"
    _check(model, any(op.op == "LOGISTIC" for op in model.operators), "no sigmoid output")
    return net.eval().requires_grad_(False)


def model_files(folder: Path) -> tuple[Path, Path]:
    """(prediction, transfer) .tflite paths in a model folder."""
    prediction, transfer = folder / PREDICTION_FILE, folder / TRANSFER_FILE
    if not prediction.exists() or not transfer.exists():
        found = sorted(folder.glob("*.tflite")) if folder.is_dir() else []
        pred = [p for p in found if "prediction" in p.name]
        trans = [p for p in found if "transfer" in p.name]
        if len(pred) != 1 or len(trans) != 1:
            raise ModelFormatError(folder, "expected one prediction and one transfer .tflite")
        prediction, transfer = pred[0], trans[0]
    return prediction, transfer


def load_bound(folder: Path, vector: list[float] | tuple[float, ...] | np.ndarray) -> BoundTransfer:
    """The transfer network of the model folder bound to `vector`."""
    _, transfer = model_files(folder)
    return BoundTransfer(load_transfer(str(transfer)), vector)
