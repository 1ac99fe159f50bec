"""Eager fp32 PyTorch: the reference path, the way pytorch/examples stylizes."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EagerRunner:
    name = "eager-fp32"

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return net(x)
