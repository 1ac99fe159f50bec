"""pytorch/examples `fast_neural_style` TransformerNet (Johnson et al. 2016 with
instance norm), loading the upstream `.pth` state dicts unchanged.

The module and parameter names are the upstream ones (`conv1.conv2d.weight`,
`res1.in1.weight`, `deconv1.conv2d.weight`, ...) so a checkpoint loads with
`strict=True`. Checkpoints saved with older PyTorch carry InstanceNorm
`running_mean`/`running_var` buffers that the model never used; they are dropped.
Upsampling is nearest-neighbour followed by a convolution, as the upstream code
does to avoid the checkerboard artefacts of transposed convolutions.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models.layers import InstanceNorm

EPS = 1e-5  # nn.InstanceNorm2d's default, which the upstream model uses
_RUNNING_STATS = re.compile(r"(^|\.)in\d+\.running_(mean|var)$|\.num_batches_tracked$")


class ConvLayer(nn.Module):
    """Reflection padding then a convolution: no zero borders in the picture."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.pad = kernel // 2
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"))


class UpsampleConvLayer(ConvLayer):
    """Nearest upsampling then a ConvLayer (upstream's answer to checkerboards)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, upsample: int):
        super().__init__(c_in, c_out, kernel, stride)
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
        self.deconv1 = UpsampleConvLayer(128, 64, 3, 1, upsample=2)
        self.in4 = InstanceNorm(64, EPS)
        self.deconv2 = UpsampleConvLayer(64, 32, 3, 1, upsample=2)
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
    try:
        if member is not None:
            with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFormatError(path, "file not found") from None
    except KeyError:
        raise ModelFormatError(path, f"no {member} inside the archive") from None
    except Exception as exc:  # torch raises many types for truncated/foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFormatError(path, f"cannot be read as a PyTorch state dict ({reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFormatError(path, "not a state dict of tensors")
    state = clean_state_dict(state)
    net = TransformerNet()
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected keys {', '.join(unexpected[:3])}")
        raise ModelFormatError(path, "; ".join(parts))
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ModelFormatError(
                path, f"{key} has shape {list(value.shape)}, expected {list(expected[key].shape)}"
            )
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net.eval().requires_grad_(False)
