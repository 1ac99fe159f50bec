"""The transfer network with LiteRT's int8 activations emulated (a test reference).

The port (`totoshka.engine.models.magenta`) computes in float32. The published
file keeps every activation in int8 with one scale per tensor, including the
insides of conditional instance norm (mean, squared difference, variance, rsqrt,
the products): that is where LiteRT and the float port part (see the parity
test). This helper runs the port's own layers and weights, but rounds every
tensor the TFLite graph quantizes to that tensor's int8 grid — proving that the
gap to LiteRT is the int8 activations and nothing structural.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from totoshka.engine.models.magenta import ConditionalInstanceNorm, TransferNetwork
from totoshka.engine.models.tflite_reader import TFLiteModel


class Int8Emulation:
    def __init__(self, net: TransferNetwork, model: TFLiteModel) -> None:
        self.net, self.model = net, model

    def q(self, x: Tensor, name: str) -> Tensor:
        info = self.model.tensor(name)
        scale, zero = float(info.scale[0]), int(info.zero_point[0])
        return (torch.clamp(torch.round(x / scale) + zero, -128, 127) - zero) * scale

    def _norm(self, norm: ConditionalInstanceNorm, x: Tensor, style: Tensor, scope: str) -> Tensor:
        sn = f"{scope}/StyleNorm"
        gamma = self.q(norm.gamma(style), f"style_params/{sn}/Conv_1/BiasAdd")[:, :, None, None]
        beta = self.q(norm.beta(style), f"style_params/{sn}/Conv/BiasAdd")[:, :, None, None]
        mean = self.q(x.mean(dim=(2, 3), keepdim=True), f"{sn}/moments/mean")
        sq = self.q((x - mean) ** 2, f"{sn}/moments/SquaredDifference_int8")
        var = self.q(sq.mean(dim=(2, 3), keepdim=True), f"{sn}/moments/variance")
        var = self.q(var + norm.norm.eps, f"{sn}/batchnorm/add")
        rsqrt = self.q(torch.rsqrt(var), f"{sn}/batchnorm/Rsqrt_int8")
        mul = self.q(rsqrt * gamma, f"{sn}/batchnorm/mul")
        mul_1 = self.q(x * mul, f"{sn}/batchnorm/mul_1")
        mul_2 = self.q(mean * mul, f"{sn}/batchnorm/mul_2")
        sub = self.q(beta - mul_2, f"{sn}/batchnorm/sub")
        return mul_1 + sub  # quantized by the caller at the output's own name

    def __call__(self, x: Tensor, style: Tensor) -> Tensor:
        t = "transformer"
        style = self.q(style, "mobilenet_conv/Conv/BiasAdd_int8")
        y = self.q(x, f"{t}/contract/MirrorPad_int8")
        for i, layer in enumerate(self.net.contract, start=1):
            y = self.q(layer(y), f"{t}/contract/conv{i}/Relu")
        for b, block in enumerate(self.net.residual, start=1):
            s = f"{t}/residual/residual{b}"
            h = self.q(block.conv1(y), f"{s}/conv1/Conv2D")
            h = self.q(F.relu(self._norm(block.norm1, h, style, f"{s}/conv1")), f"{s}/conv1/Relu")
            h = self.q(block.conv2(h), f"{s}/conv2/Conv2D")
            h = self.q(self._norm(block.norm2, h, style, f"{s}/conv2"),
                       f"{s}/conv2/StyleNorm/batchnorm/add_1")  # fmt: skip
            y = self.q(y + h, f"{s}/add")
        for i, layer in enumerate(self.net.expand, start=1):
            s = f"{t}/expand/conv{i}"
            if layer.scale != 1:
                y = F.interpolate(y, scale_factor=layer.scale, mode="nearest")
            h = self.q(layer.conv(y), f"{s}/conv/Conv2D")
            h = self._norm(layer.norm, h, style, f"{s}/conv")
            if layer.last:
                h = self.q(h, f"{s}/conv/StyleNorm/batchnorm/add_1")
                y = self.q(torch.sigmoid(h), f"{s}/conv/Sigmoid_int8")
            else:
                y = self.q(F.relu(h), f"{s}/conv/Relu")
        return y
