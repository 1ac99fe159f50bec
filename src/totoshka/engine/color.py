"""Strength and colour options, applied after the network on 0..255 tensors.

`strength` blends photo and painting per pixel; `preserve_colors` keeps the
photo's chroma and takes only the painting's luminance (Gatys et al. 2016,
"Preserving color in neural artistic style transfer"), in YCbCr with BT.601
weights — the space JPEG itself uses, so nothing is lost on the way out.
"""

from __future__ import annotations

import torch
from torch import Tensor

_RGB_TO_Y = torch.tensor([0.299, 0.587, 0.114])


def blend(photo: Tensor, painting: Tensor, strength: float) -> Tensor:
    if not 0.0 <= strength <= 1.0:
        raise ValueError("strength must be between 0 and 1")
    if strength == 1.0:
        return painting
    return painting * strength + photo * (1.0 - strength)


def luminance(x: Tensor) -> Tensor:
    w = _RGB_TO_Y.to(x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def preserve_colors(photo: Tensor, painting: Tensor) -> Tensor:
    """The painting's luminance with the photo's chroma: photo + (Y_paint - Y_photo)."""
    return (photo + (luminance(painting) - luminance(photo))).clamp(0.0, 255.0)
