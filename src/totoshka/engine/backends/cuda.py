"""GPU inference: half precision and batching of same-style pictures.

A bot on a GPU gets many jobs of one style at once; batching them amortises the
launch overhead and fills the device (`BatchingRunner` gathers concurrent jobs
into one `run_batch` call). Instance norm makes padding to a common size wrong
(padded pixels would enter every layer's statistics), so only pictures of the
*same size* are batched: `run_batch` groups its inputs by (height, width), runs
each group in chunks of `max_batch`, and returns the results in the input order.
fp16 is the default on CUDA (tensor cores; output in 0..255 after a tanh/sigmoid,
well within range), bf16 on request; instance-norm statistics stay float32
under autocast (see `layers.InstanceNorm`).

Channels-last layout lets cuDNN use its tensor-core convolutions without
transposing every layer's input, and cuDNN's autotuner picks the fastest
algorithm once per shape (a bot sees the same few photo sizes all day).
Transfers go through pinned buffers so the copies run at the bus's speed.

Each forward pass is captured once per network and batch shape as a CUDA graph
and replayed: one call instead of a few hundred kernel launches from Python.
That matters more than it seems. A bot's worker threads decode and encode
pictures while one of them drives the GPU, and every launch from Python must
win back the GIL from them: on an H100 host with 16 worker threads, eager
launching fell from 22 photos/s (one thread) to 4-8 photos/s.

Everything works with `device="cpu"` too (bf16 autocast there), which is how
the tests exercise it on machines without a GPU; nothing touches CUDA until a
runner is created with a CUDA device.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from totoshka.engine import tiling

# Per-picture memory on a GPU is the same ≈ 0.5 GB per megapixel in fp32 (half in fp16).
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_BATCH = 8


@dataclass
class _Graph:
    """A captured forward pass: replayed with new pictures copied into `static_in`."""

    cuda_graph: Any
    base: nn.Module  # the device network it was captured for (kept alive: the key is its id)
    model: nn.Module
    static_in: Tensor
    static_style: Tensor | None
    static_out: Tensor


class CudaRunner:
    def __init__(
        self,
        device: str | torch.device = "cuda",
        dtype: torch.dtype = torch.float16,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        channels_last: bool | None = None,
        cudnn_benchmark: bool = True,
        use_graphs: bool = True,
        max_graphs: int = 16,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cpu" and dtype == torch.float16:
            dtype = torch.bfloat16  # CPU autocast computes in bf16
        self.dtype = dtype
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        # measured on an H100: NCHW is the faster layout for fp32 (TF32), channels-last
        # for half precision at batch sizes >= 8 (benchmarks/results/NOTES.md)
        self.channels_last = dtype != torch.float32 if channels_last is None else channels_last
        self._pinned = self.device.type == "cuda"
        if self.device.type == "cuda" and cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]
        self.name = f"{self.device.type}-{precision}"
        self._copies: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.use_graphs = self.device.type == "cuda" and use_graphs
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple[object, ...], _Graph] = OrderedDict()
        self._graph_pool: Any = None  # one memory pool shared by every graph
        self._replay_lock = threading.Lock()

    def _on_device(self, net: nn.Module) -> nn.Module:
        """The network's copy on the device, made once per network.

        A style-bound network (Magenta's own styles: a new binding per job) is
        rebound to one device copy of the network it shares, so a job copies a
        style vector to the GPU, not the weights.
        """
        shared = getattr(net, "shared_network", None)
        rebind = getattr(net, "with_shared", None)
        if shared is not None and rebind is not None:
            return rebind(self._copy(shared))  # type: ignore[no-any-return]
        return self._copy(net)

    def _copy(self, net: nn.Module) -> nn.Module:
        if self.device.type == "cpu" and not self.channels_last:
            return net
        with self._lock:
            moved = self._copies.get(net)
            if moved is None:
                moved = copy.deepcopy(net).to(self.device)
                if self.channels_last:
                    moved = moved.to(memory_format=torch.channels_last)
                self._copies[net] = moved
        return moved

    def _forward(self, net: nn.Module, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype == torch.float32:
            return net(x)
        # no weight-cast cache: a cache filled during a graph capture would dangle
        with torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False):
            return net(x).float()

    def _upload(self, xs: list[Tensor]) -> Tensor:
        """One NCHW float32 batch on the device, through a pinned buffer on CUDA."""
        if not self._pinned:
            return torch.cat(xs).to(self.device)
        shape = (sum(x.shape[0] for x in xs), *xs[0].shape[1:])
        staging = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        torch.cat(xs, out=staging)
        return staging.to(self.device, non_blocking=True)

    def _download(self, y: Tensor) -> Tensor:
        y = y.contiguous()  # NCHW again (channels-last inside the network)
        if not self._pinned:
            return y.cpu()
        out = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        out.copy_(y, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return out

    def _graph_for(self, model: nn.Module, batch: Tensor) -> _Graph:
        """The captured forward pass for this network and batch shape (LRU)."""
        style = getattr(model, "style", None) if hasattr(model, "with_shared") else None
        base = getattr(model, "shared_network", model) if style is not None else model
        key = (id(base), tuple(batch.shape), None if style is None else tuple(style.shape))
        graph = self._graphs.get(key)
        if graph is not None and graph.base is base:
            self._graphs.move_to_end(key)
            return graph
        static_in = batch.clone()
        static_style = None
        if style is not None:  # the bound vector(s) become a static input too
            static_style = style.clone()
            model.style = static_style  # type: ignore[union-attr]
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # cuDNN autotuning and lazy allocations stay out of the graph
                self._forward(model, static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph, pool=self._graph_pool):
            static_out = self._forward(model, static_in).clamp_(0, 255).contiguous()
        self._graph_pool = cuda_graph.pool()
        graph = _Graph(cuda_graph, base, model, static_in, static_style, static_out)
        self._graphs[key] = graph
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return graph

    def _padded_size(self, n: int) -> int:
        """Batches are padded to a power of two (at most `max_batch`): a few graphs
        per network and size instead of one per batch size."""
        return min(1 << (n - 1).bit_length(), max(self.max_batch, n))

    def _run_graph(self, model: nn.Module, xs: list[Tensor]) -> Tensor:
        n = len(xs)
        size = self._padded_size(n)
        xs = xs + [xs[-1]] * (size - n)  # the padding repeats the last picture
        style: Tensor | None = None
        if hasattr(model, "with_shared") and isinstance(getattr(model, "style", None), Tensor):
            style = model.style  # type: ignore[assignment]
            if style.shape[0] == n and size > n:  # one vector per picture: pad them too
                style = torch.cat([style, style[-1:].expand(size - n, -1)])
                model = model.with_shared(model.shared_network)  # type: ignore[operator]
                model.style = style
        # one thread at a time: each graph has one set of static buffers, and no
        # other thread may allocate on the device while a graph is being captured
        with self._replay_lock:
            batch = self._upload(xs)
            graph = self._graph_for(model, batch)
            graph.static_in.copy_(batch, non_blocking=True)
            if graph.static_style is not None and style is not None:
                graph.static_style.copy_(style, non_blocking=True)
            graph.cuda_graph.replay()
            return self._download(graph.static_out)[:n]

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
                    pictures = [xs[i] for i in chunk]
                    if self.use_graphs:
                        ys = self._run_graph(model, pictures)
                    else:
                        batch = self._upload(pictures)
                        ys = self._download(self._forward(model, batch).clamp_(0, 255))
                    for k, i in enumerate(chunk):
                        out[i] = ys[k : k + 1]
        return [y for y in out if y is not None]
