"""Inference paths. A runner turns (network, batch of 0..255 NCHW tensors) into
pictures; which one serves is chosen by measurement, eager fp32 is the fallback
that always works (see `select_runner`)."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn


class Runner(Protocol):
    name: str

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        """Stylize `x` (float32 NCHW 0..255) with `net`; same shape out."""
        ...


def select_runner(name: str = "auto") -> Runner:
    from totoshka.engine.backends.eager import EagerRunner

    if name in ("auto", "eager", "fp32"):
        return EagerRunner()
    raise ValueError(f"unknown backend {name!r}")
