"""The TensorFlow fast style-transfer network published by ml5 (Engstrom's port of
Johnson et al. 2016 with instance norm), rebuilt in PyTorch to match TensorFlow's
own operators to the pixel.

Checkpoint format (deeplearn.js): a folder with `manifest.json` mapping variable
names to `{filename, shape}`, each file a raw little-endian float32 array. The 48
variables come in layer order: conv kernel (HWIO; H,W,out,in for the transposed
convolutions), instance-norm shift (beta), instance-norm scale (gamma).

Two TensorFlow semantics matter and differ from PyTorch's habits:
- "SAME" padding puts the odd pixel at the bottom/right (`layers.pad_same`);
- `conv2d_transpose(..., padding="SAME")` to 2h x 2w keeps the *first* 2h rows of
  the full transposed convolution; PyTorch's `padding=1, output_padding=1` keeps
  the last ones, a one-pixel shift that costs ~16 dB (see `UpsampleConv`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models.layers import InstanceNorm, pad_same

EPS = 1e-3


class ConvNorm(nn.Module):
    """conv (no bias, TF "SAME") → instance norm → optional ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, bias=False)
        self.norm = InstanceNorm(c_out, eps=EPS)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(self.conv(pad_same(x, self.kernel, self.stride)))
        return F.relu(x) if self.relu else x


class UpsampleConv(nn.Module):
    """TF `conv2d_transpose` stride 2, "SAME", output exactly 2h x 2w → norm → ReLU.

    The full (unpadded) transposed convolution gives 2h+1 rows; TensorFlow's
    output is its first 2h rows and columns: the extra one belongs to the zero
    row that "SAME" padding adds at the bottom/right of the forward convolution.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, bias=False)
        self.norm = InstanceNorm(c_out, eps=EPS)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = self.conv(x)[..., : 2 * h, : 2 * w]
        return F.relu(self.norm(x))


class Residual(nn.Module):
    """x + (conv-norm-ReLU → conv-norm)(x), as in Johnson et al.'s residual block."""

    def __init__(self, channels: int = 128):
        super().__init__()
        self.conv1 = ConvNorm(channels, channels, 3, 1)
        self.conv2 = ConvNorm(channels, channels, 3, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class Ml5StyleNet(nn.Module):
    """Input: NCHW RGB in 0..255 (not normalised). Output: NCHW in 0..255, same size."""

    family = "ml5"

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, 32, 9, 1)
        self.conv2 = ConvNorm(32, 64, 3, 2)
        self.conv3 = ConvNorm(64, 128, 3, 2)
        self.res = nn.Sequential(*(Residual(128) for _ in range(5)))
        self.up1 = UpsampleConv(128, 64)
        self.up2 = UpsampleConv(64, 32)
        self.conv_out = ConvNorm(32, 3, 9, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        y = self.conv3(self.conv2(self.conv1(x)))
        y = self.up2(self.up1(self.res(y)))
        y = torch.tanh(self.conv_out(y)) * 150.0 + 127.5
        # sides go n -> ceil(n/2) -> ceil(n/4) -> 4*ceil(n/4); the picture is the top-left n.
        return y[..., :h, :w].clamp(0.0, 255.0)

    def layers_in_checkpoint_order(self) -> list[ConvNorm | UpsampleConv]:
        """The 16 layers in the order their variables appear in the manifest."""
        layers: list[ConvNorm | UpsampleConv] = [self.conv1, self.conv2, self.conv3]
        for block in self.res:
            layers += [block.conv1, block.conv2]
        return [*layers, self.up1, self.up2, self.conv_out]


def _variable_names(count: int) -> list[str]:
    return ["Variable" if i == 0 else f"Variable_{i}" for i in range(count)]


def read_manifest_arrays(directory: Path) -> list[np.ndarray]:
    """Read the 48 variables of an ml5 checkpoint folder, checking sizes."""
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ModelFormatError(directory, "no manifest.json in the folder") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(manifest_path, f"manifest is not JSON ({exc})") from None
    names = _variable_names(48)
    missing = [n for n in names if n not in manifest]
    if missing:
        raise ModelFormatError(manifest_path, f"missing variables {', '.join(missing[:3])}")
    arrays = []
    for name in names:
        entry = manifest[name]
        try:
            shape = tuple(int(s) for s in entry["shape"])
            path = directory / entry["filename"]
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(manifest_path, f"bad entry for {name}") from None
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ModelFormatError(path, f"file of {name} is missing") from None
        expected = int(np.prod(shape)) * 4
        if len(raw) != expected:
            raise ModelFormatError(
                path, f"{name} has {len(raw)} bytes, shape {list(shape)} needs {expected}"
            )
        arrays.append(np.frombuffer(raw, dtype="<f4").reshape(shape))
    return arrays


def load_ml5(directory: Path | str) -> Ml5StyleNet:
    """Build the network from an ml5 checkpoint folder; refuse any mismatch whole."""
    directory = Path(directory)
    arrays = read_manifest_arrays(directory)
    net = Ml5StyleNet()
    layers = net.layers_in_checkpoint_order()
    state: dict[str, Tensor] = {}
    prefix = {id(m): n for n, m in net.named_modules()}
    for i, layer in enumerate(layers):
        kernel, beta, gamma = arrays[3 * i : 3 * i + 3]
        conv_w = layer.conv.weight
        # HWIO (HW,out,in for transposed) -> PyTorch's (out,in,H,W) / (in,out,H,W):
        # both are a permute(3, 2, 0, 1) of the TF array.
        converted = torch.from_numpy(kernel.copy()).permute(3, 2, 0, 1).contiguous()
        if tuple(converted.shape) != tuple(conv_w.shape):
            raise ModelFormatError(
                directory,
                f"layer {i + 1} kernel has shape {list(kernel.shape)}, "
                f"expected {list(conv_w.permute(2, 3, 1, 0).shape)}",
            )
        for vec, what in ((beta, "shift"), (gamma, "scale")):
            if vec.shape != (layer.norm.channels,):
                raise ModelFormatError(
                    directory, f"layer {i + 1} {what} has shape {list(vec.shape)}"
                )
        name = prefix[id(layer)]
        state[f"{name}.conv.weight"] = converted
        state[f"{name}.norm.bias"] = torch.from_numpy(beta.copy())
        state[f"{name}.norm.weight"] = torch.from_numpy(gamma.copy())
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)
