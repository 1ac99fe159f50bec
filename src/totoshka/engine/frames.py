"""A clip's frames painted exactly as photos are, with one network for the whole clip.

`Stylizer.stylize` chooses a network per photo: an own style below full strength is
bound to that photo's own style vector. A clip must not do that per frame (the
style vector would wander and the painting flicker), so the network is chosen once,
from the first frame painted or the first sampled frame, and kept. Frames go
through the runner's `run_batch` when it has one: a GPU paints several at once.
With `stats_frames`, every frame is normalised with the instance-norm statistics
pooled over those frames (`backends.shared_stats`): one more cause of flicker gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from totoshka.engine import color
from totoshka.engine.backends.shared_stats import StatsReplay, measure
from totoshka.engine.errors import EngineError
from totoshka.engine.mixing import StyleMix
from totoshka.engine.own_style import OwnStyle


class Networks(Protocol):
    """What a painter needs of the `Stylizer` (which builds it): its networks and runner."""

    runner: Any

    def network(self, style_id: str | StyleMix) -> nn.Module: ...

    def own_style_network(self, style: OwnStyle, photo: Tensor) -> nn.Module: ...


def frame_tensor(frame: np.ndarray) -> Tensor:
    """HWC uint8 RGB -> float32 NCHW 0..255 (a copy: decoded frames may be read-only)."""
    x = torch.empty((1, 3, frame.shape[0], frame.shape[1]), dtype=torch.float32)
    x[0].copy_(torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1))
    return x


def frame_array(x: Tensor) -> np.ndarray:
    """float32 NCHW 0..255 -> HWC uint8, rounded as `stylizer.to_image` rounds."""
    out = torch.empty((x.shape[2], x.shape[3], 3), dtype=torch.uint8)
    out.copy_(x[0].detach().cpu().clamp(0, 255).add_(0.5).permute(1, 2, 0))
    return out.numpy()


class FramePainter:
    """Call with one frame (HWC uint8 RGB) or `batch` with several of the same size."""

    def __init__(
        self,
        stylizer: Networks,
        style: str | StyleMix | OwnStyle,
        *,
        strength: float = 1.0,
        preserve_colors: bool = False,
        stats_frames: Sequence[np.ndarray] | None = None,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise EngineError("strength must be between 0 and 1")
        self.stylizer = stylizer
        self.style = style
        self.strength = strength
        self.preserve_colors = preserve_colors
        self.net: nn.Module | None = None
        self.replay: StatsReplay | None = None
        if stats_frames:
            samples = [frame_tensor(f) for f in stats_frames]
            net = self._network(samples[0])
            self.replay = StatsReplay(stylizer.runner, net, measure(net, samples), samples[0])

    def _network(self, photo: Tensor) -> nn.Module:
        if self.net is None:
            if isinstance(self.style, OwnStyle):
                self.net = self.stylizer.own_style_network(self.style, photo)
            else:
                self.net = self.stylizer.network(self.style)
        return self.net

    def _run(self, photos: list[Tensor]) -> list[Tensor]:
        net = self._network(photos[0])
        if self.replay is not None and photos[0].shape == self.replay.shape:
            return [self.replay.run(x) for x in photos]
        runner = self.stylizer.runner
        batched = getattr(runner, "run_batch", None)
        if batched is not None and len(photos) > 1:
            return list(batched(net, photos))
        return [runner.run(net, x) for x in photos]

    def batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        photos = [frame_tensor(f) for f in frames]
        out = []
        for photo, painting in zip(photos, self._run(photos), strict=True):
            if self.preserve_colors:
                painting = color.preserve_colors(photo, painting)
            out.append(frame_array(color.blend(photo, painting, self.strength)))
        return out

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.batch([frame])[0]
