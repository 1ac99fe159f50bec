"""The quality floor: a fast path serves a model only if its picture stays close
to the eager fp32 reference (PSNR in dB, peak 255).

A path is checked on first use for each model (and each variant it compiles),
on a small calibration picture cut from the photo being served, so the check
costs one small fp32 inference and no shipped data. Verdicts are kept on disk
next to the compiled model, so a restart does not check again.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# the floors live with the verdicts (torch-free); re-exported where they always were
from totoshka.engine.backends.verdicts import BEST_FLOOR_DB as BEST_FLOOR_DB
from totoshka.engine.backends.verdicts import DEFAULT_FLOOR_DB as DEFAULT_FLOOR_DB

CALIBRATION_SIDE = 256


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR of two 0..255 pictures of the same shape; inf when identical."""
    mse = float((a.double() - b.double()).square().mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def calibration_picture(x: Tensor, residue: tuple[int, int] = (0, 0), align: int = 4) -> Tensor:
    """`x` scaled down to about CALIBRATION_SIDE, cropped so that each side ≡ residue (mod align).

    The residue matters: compiled variants differ by the sides' residues
    (padding parity), and each must prove itself on a picture of its own kind.
    """
    h, w = x.shape[-2:]
    scale = min(1.0, CALIBRATION_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(24, round(h * scale)), max(24, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        h, w = size
    ch = h - (h - residue[0]) % align
    cw = w - (w - residue[1]) % align
    if ch < 16 or cw < 16:
        raise ValueError("picture too small to calibrate on")
    return x[..., :ch, :cw].contiguous()


def reference(net: torch.nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return net(x)
