"""GPU inference: half precision and batching of same-style jobs.

A bot on a GPU gets many jobs of one style at once; batching them amortises the
launch overhead and fills the device. Instance norm makes padding to a common
size wrong (padded pixels would enter every layer's statistics), so only
pictures of the *same size* are batched: `run_batch` groups its inputs by
(height, width), runs each group in chunks of `max_batch`, and returns the
results in the input order. fp16 is the default on CUDA (tensor cores; output
in 0..255 after a tanh/sigmoid, well within range), bf16 on request.

Everything works with `device="cpu"` too (bf16 autocast there), which is how
the tests exercise it on machines without a GPU; nothing touches CUDA until a
runner is created with a CUDA device.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import defaultdict

import torch
from torch import Tensor, nn

from totoshka.engine import tiling

# Per-picture memory on a GPU is the same ≈ 0.5 GB per megapixel in fp32 (half in fp16).
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_BATCH = 8


class CudaRunner:
    def __init__(
        self,
        device: str | torch.device = "cuda",
        dtype: torch.dtype = torch.float16,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cpu" and dtype == torch.float16:
            dtype = torch.bfloat16  # CPU autocast computes in bf16
        self.dtype = dtype
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        kind = "cuda" if self.device.type == "cuda" else self.device.type
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]
        self.name = f"{kind}-{precision}"
        self._copies: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _on_device(self, net: nn.Module) -> nn.Module:
        """The network's copy on the device, made once per network."""
        if self.device.type == "cpu":
            return net
        with self._lock:
            moved = self._copies.get(net)
            if moved is None:
                moved = self._copies[net] = copy.deepcopy(net).to(self.device)
        return moved

    def _forward(self, net: nn.Module, x: Tensor) -> Tensor:
        if self.dtype == torch.float32:
            return net(x)
        with torch.autocast(self.device.type, dtype=self.dtype):
            return net(x).float()

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        return self.run_batch(net, [x])[0]

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        """Stylize many pictures with one network: same-size ones go together."""
        model = self._on_device(net)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, x in enumerate(xs):
            groups[(x.shape[-2], x.shape[-1])].append(i)
        out: list[Tensor | None] = [None] * len(xs)
        with torch.inference_mode():
            for (h, w), indices in groups.items():
                if self.max_pixels is not None and h * w > self.max_pixels:
                    for i in indices:  # one by one, in tiles
                        y = tiling.stylize_tiled(model, xs[i].to(self.device), None, self._forward)
                        out[i] = y.cpu().clamp_(0, 255)
                    continue
                for start in range(0, len(indices), self.max_batch):
                    chunk = indices[start : start + self.max_batch]
                    batch = torch.cat([xs[i] for i in chunk]).to(self.device, non_blocking=True)
                    ys = self._forward(model, batch).clamp_(0, 255).cpu()
                    for k, i in enumerate(chunk):
                        out[i] = ys[k : k + 1]
        return [y for y in out if y is not None]
