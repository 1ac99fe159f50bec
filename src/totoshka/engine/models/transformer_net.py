"""pytorch/examples `fast_neural_style` TransformerNet (Johnson et al. 2016 with
instance norm), loading the upstream `.pth` state dicts unchanged.

The module and parameter names are the upstream ones (`conv1.conv2d.weight`,
`res1.in1.weight`, `deconv1.conv2d.weight`, ...) so a checkpoint loads key for
key (`checkpoint.load_state`). Checkpoints saved with older PyTorch carry InstanceNorm
`running_mean`/`running_var` buffers that the model never used; they are dropped.
Upsampling is nearest-neighbour followed by a convolution, as the upstream code
does to avoid the checkerboard artefacts of transposed convolutions.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from totoshka.engine.models.checkpoint import load_state, read_state_dict
from totoshka.engine.models.layers import InstanceNorm

EPS = 1e-5  # nn.InstanceNorm2d's default, which the upstream model uses
_RUNNING_STATS = re.compile(r"(^|\.)in\d+\.running_(mean|var)$|\.num_batches_tracked$")


class ConvLayer(nn.Module):
    """Reflection padding by kernel//2 then a convolution: no zero borders in the
    picture (keys: `conv2d.*`; MSG-Net's blocks use it too, 1x1 ones unpadded)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.pad = kernel // 2
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        p = self.pad
        return self.conv2d(F.pad(x, (p, p, p, p), mode="reflect") if p else x)


class UpsampleConvLayer(ConvLayer):
    """Nearest upsampling by `upsample` then a stride-1 ConvLayer (upstream's answer
    to checkerboards)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, upsample: int):
        super().__init__(c_in, c_out, kernel, 1)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.interpolate(x, scale_factor=self.upsample, mode="nearest"))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = InstanceNorm(channels, EPS)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = InstanceNorm(channels, EPS)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """Input: NCHW RGB in 0..255. Output: NCHW in 0..255 at the input's size."""

    family = "pytorch"

    def __init__(self) -> None:
        super().__init__()
        # Initial convolution layers
        self.conv1 = ConvLayer(3, 32, 9, 1)
        self.in1 = InstanceNorm(32, EPS)
        self.conv2 = ConvLayer(32, 64, 3, 2)
        self.in2 = InstanceNorm(64, EPS)
        self.conv3 = ConvLayer(64, 128, 3, 2)
        self.in3 = InstanceNorm(128, EPS)
        # Residual layers
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        # Upsampling layers
        self.deconv1 = UpsampleConvLayer(128, 64, 3, upsample=2)
        self.in4 = InstanceNorm(64, EPS)
        self.deconv2 = UpsampleConvLayer(64, 32, 3, upsample=2)
        self.in5 = InstanceNorm(32, EPS)
        self.deconv3 = ConvLayer(32, 3, 9, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        # Two stride-2 stages: reflect-pad to a multiple of 4 so the picture comes
        # back at exactly its own size (upstream returns 4*ceil(n/4) pixels).
        ph, pw = -h % 4, -w % 4
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > 4 else "replicate")
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        y = self.deconv3(y)
        return y[..., :h, :w].clamp(0.0, 255.0)


def clean_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop the InstanceNorm running-stat keys older upstream checkpoints carry."""
    return {k: v for k, v in state.items() if not _RUNNING_STATS.search(k)}


def load_transformer_net(path: Path | str, member: str | None = None) -> TransformerNet:
    """Load a `.pth` state dict (or `member` inside a zip such as saved_models.zip)."""
    path = Path(path)
    return load_state(TransformerNet(), clean_state_dict(read_state_dict(path, member)), path)
