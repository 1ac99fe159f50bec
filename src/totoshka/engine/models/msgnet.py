"""MSG-Net, the multi-style generative network of Zhang & Dana 2017 ("Multi-style
Generative Network for Real-time Transfer", arXiv:1703.06953), for the
`21styles.model` checkpoint of zhanghang1989/PyTorch-Multi-Style-Transfer.

The network is a siamese encoder and a generator around one new layer:

- `model1` (the encoder, shared by both branches): 7x7 conv to 64 channels,
  instance norm, ReLU, then two down-sampling pre-activation bottleneck blocks
  (stride 2 each) to 4*ngf = 512 channels at 1/4 scale.
- `ins`, the **Inspiration layer (CoMatch)**: given the target Gram matrix G of the
  *painting's* encoder features, it maps the photo's features F (C x HW) to
  (W G)^T F, W a learned C x C matrix. Setting the target is what makes one
  network paint any style: here the target is computed once per painting.
- the generator: six bottleneck blocks, two up-sampling bottleneck blocks
  (nearest x2, then conv: no checkerboard of transposed convs), instance norm,
  ReLU and a 7x7 conv back to 3 channels.

Convolutions pad by reflection; every norm is an affine-free instance norm (eps
1e-5), here `layers.InstanceNorm` so tiling can record and replay statistics.
Values: the upstream code feeds BGR in 0..255 (Caffe VGG habit) to both branches
and its output is BGR 0..255; `BoundMSGNet` converts from and to the engine's
RGB, pads any size to a multiple of 4 (two stride-2 blocks, two x2 upsamplings)
by reflection and crops back.

The module attributes reproduce the upstream `Net(ngf=128)` state-dict layout
exactly, including that the encoder appears twice (`model1.*` and `model.0.*`,
the same module registered under both names), so the checkpoint loads unchanged;
`load_msgnet` refuses missing, unexpected or mis-shaped keys. The upstream
evaluation deletes InstanceNorm `running_mean`/`running_var` entries left by old
PyTorch versions; they are accepted and ignored here the same way.

Target (`style_target`): upstream resizes the painting to 512x512; here its longer
side is scaled to 512 keeping its aspect ratio (a Gram matrix is a spatial average,
squashing would only distort the strokes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models.checkpoint import load_state, read_state_dict
from totoshka.engine.models.layers import InstanceNorm
from totoshka.engine.models.transformer_net import ConvLayer, UpsampleConvLayer

CHECKPOINT_FILE = "21styles.model"
NGF = 128
EXPANSION = 4
EPS = 1e-5
STYLE_SIZE = 512
TOTAL_STRIDE = 4
MIN_SIDE = 16
_IGNORED_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def _norm(channels: int) -> InstanceNorm:
    return InstanceNorm(channels, eps=EPS, affine=False)


def _conv_block(inplanes: int, planes: int, middle: nn.Module) -> nn.Sequential:
    """norm-ReLU-1x1, norm-ReLU-`middle`, norm-ReLU-1x1 to 4*planes (the upstream
    `conv_block.N` keys follow this order)."""
    return nn.Sequential(
        _norm(inplanes),
        nn.ReLU(),
        nn.Conv2d(inplanes, planes, 1),
        _norm(planes),
        nn.ReLU(),
        middle,
        _norm(planes),
        nn.ReLU(),
        nn.Conv2d(planes, planes * EXPANSION, 1),
    )


class Bottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016): norm-ReLU-1x1, norm-ReLU-3x3 (stride),
    norm-ReLU-1x1 to 4*planes, plus the input (through a strided 1x1 conv when the
    block changes size or width)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        self.residual_layer = (
            nn.Conv2d(inplanes, planes * EXPANSION, 1, stride) if downsample else None
        )
        self.conv_block = _conv_block(inplanes, planes, ConvLayer(planes, planes, 3, stride))

    def forward(self, x: Tensor) -> Tensor:
        residual = self.residual_layer(x) if self.residual_layer is not None else x
        return residual + self.conv_block(x)


class UpBottleneck(nn.Module):
    """The up-sampling bottleneck of MSG-Net: both paths upsample x2 (nearest + conv)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 2) -> None:
        super().__init__()
        self.residual_layer = UpsampleConvLayer(inplanes, planes * EXPANSION, 1, stride)
        self.conv_block = _conv_block(
            inplanes, planes, UpsampleConvLayer(planes, planes, 3, stride)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.residual_layer(x) + self.conv_block(x)


class Inspiration(nn.Module):
    """CoMatch: y = (W G)^T F for features F (N,C,H,W) and target Gram G (N or 1,C,C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.zeros(1, channels, channels))

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        n, c = x.shape[:2]
        p = torch.bmm(self.weight.expand_as(target), target)  # (B,C,C)
        p = p.transpose(1, 2).expand(n, c, c)
        return torch.bmm(p, x.reshape(n, c, -1)).view_as(x)


def gram_matrix(features: Tensor) -> Tensor:
    """(N,C,H,W) -> (N,C,C), normalised by C*H*W as upstream."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class MSGNet(nn.Module):
    """Upstream `Net(ngf)` layout: `model1` (encoder), `ins`, `model` (everything)."""

    def __init__(self, ngf: int = NGF, n_blocks: int = 6) -> None:
        super().__init__()
        self.model1 = nn.Sequential(
            ConvLayer(3, 64, 7, 1),
            _norm(64),
            nn.ReLU(),
            Bottleneck(64, 32, 2, downsample=True),
            Bottleneck(32 * EXPANSION, ngf, 2, downsample=True),
        )
        self.ins = Inspiration(ngf * EXPANSION)
        self.model = nn.Sequential(
            self.model1,
            self.ins,
            *(Bottleneck(ngf * EXPANSION, ngf) for _ in range(n_blocks)),
            UpBottleneck(ngf * EXPANSION, 32),
            UpBottleneck(32 * EXPANSION, 16),
            _norm(16 * EXPANSION),
            nn.ReLU(),
            ConvLayer(16 * EXPANSION, 3, 7, 1),
        )

    def target(self, style_bgr: Tensor) -> Tensor:
        """The Gram matrix of the painting's encoder features (BGR 0..255 in)."""
        return gram_matrix(self.model1(style_bgr))

    def forward(self, x_bgr: Tensor, target: Tensor) -> Tensor:
        y = self.ins(self.model1(x_bgr), target)
        for layer in list(self.model)[2:]:
            y = layer(y)
        return y


class BoundMSGNet(nn.Module):
    """MSG-Net bound to a target Gram matrix: RGB 0..255 in, RGB 0..255 out, any size."""

    family = "msgnet"

    def __init__(self, net: MSGNet, target: Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("target", target.detach().reshape(1, *target.shape[-2:]))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = _pad_to(h), _pad_to(w)
        x = x.flip(1)  # RGB -> BGR
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.net(x, self.target)
        return y[..., :h, :w].flip(1).clamp(0.0, 255.0)


def _pad_to(n: int) -> int:
    target = max(n, MIN_SIDE)
    target += -target % TOTAL_STRIDE
    return target - n


def style_tensor(painting: Image.Image, size: int = STYLE_SIZE) -> Tensor:
    """A painting as (1,3,h,w) BGR 0..255 with its longer side `size`."""
    image = painting.convert("RGB")
    s = size / max(image.size)
    dims = (max(MIN_SIDE, round(image.width * s)), max(MIN_SIDE, round(image.height * s)))
    image = image.resize(dims, Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = np.asarray(image, dtype=np.float32)[:, :, ::-1]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0)


def mixed_target(net: MSGNet, paintings: Sequence[Image.Image], weights: Sequence[float]) -> Tensor:
    """Weighted mean of the paintings' Gram targets (weights normalised to sum 1)."""
    total = float(sum(weights))
    with torch.inference_mode():
        grams = [
            net.target(style_tensor(p)) * (w / total)
            for p, w in zip(paintings, weights, strict=True)
        ]
    return torch.stack(grams).sum(0).clone()


def load_msgnet(path: Path | str) -> MSGNet:
    """Build `Net(ngf)` from an upstream state dict (ngf read from the Inspiration
    layer, 128 for `21styles.model`); refuse any mismatch whole."""
    path = Path(path)
    state = read_state_dict(path)
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}
    ins = state.get("ins.weight")
    if ins is None or ins.ndim != 3 or ins.shape[1] % EXPANSION:
        raise ModelFormatError(path, "no Inspiration layer weight 'ins.weight' of shape (1, C, C)")
    for key, value in state.items():
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise ModelFormatError(path, f"{key} is not finite floating point")
    net = load_state(MSGNet(ins.shape[1] // EXPANSION), state, path)
    twins = [(k, "model.0." + k[len("model1.") :]) for k in state if k.startswith("model1.")]
    for key, twin in [*twins, ("ins.weight", "model.1.weight")]:
        if not torch.equal(state[key], state[twin]):
            raise ModelFormatError(path, f"{key} and {twin} differ (they are one layer)")
    return net
