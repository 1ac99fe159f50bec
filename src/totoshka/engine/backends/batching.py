"""Gather concurrent jobs of the same style into one batch (for GPUs).

A bot's workers call `run(net, x)` from several threads, one photo each. On a
GPU one photo leaves most of the device idle, so `BatchingRunner` lets the
calls that arrive while the device is busy queue up, and the next call to reach
the device takes the oldest waiting photo plus every other waiting photo of the
same network and size (up to `max_batch`) into one `run_batch`. There is no
timer: an idle device serves a lone photo at once, and batches form only under
load, exactly when they pay. Whichever caller's turn it is runs the batch in its
own thread and hands the others their pictures, so no extra thread exists.

Only the same network and the same size batch (instance norm forbids padding),
or, for networks whose style is an input (Magenta's own styles), bindings of
the same network: their vectors are stacked, one per picture. The order between
different styles stays first come, first served.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass(eq=False)
class _Request:
    net: nn.Module
    x: Tensor
    done: bool = False
    result: Tensor | None = None
    error: BaseException | None = None
    key: tuple[int, tuple[int, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.key = (id(_batch_identity(self.net)), tuple(self.x.shape))


def _batch_identity(net: nn.Module) -> nn.Module:
    """Networks that can share a batch: the same one, or bindings of one shared
    network that can be stacked (Magenta's own styles: a vector per picture)."""
    if hasattr(type(net), "stacked"):
        return getattr(net, "shared_network", net)
    return net


def _batch_network(nets: list[nn.Module]) -> nn.Module:
    first = nets[0]
    if all(n is first for n in nets):
        return first
    return type(first).stacked(nets)  # type: ignore[attr-defined,no-any-return]


class BatchingRunner:
    """Wraps a runner that has `run_batch`; `run` calls from many threads batch."""

    def __init__(self, inner: Any, max_batch: int | None = None) -> None:
        self.inner = inner
        self.max_batch = max_batch or getattr(inner, "max_batch", 8)
        self.name = getattr(inner, "name", "batched")
        self._cond = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._busy = False
        # batch sizes served so far (for benchmarks and tests: did batching happen?)
        self.batch_sizes: list[int] = []

    @property
    def last_path(self) -> str:
        return getattr(self.inner, "last_path", None) or self.name

    def __getattr__(self, name: str) -> Any:  # max_pixels, fallback, ... of the inner runner
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _take(self) -> list[_Request]:
        """The oldest waiting request and its same-key followers (lock held)."""
        head = self._waiting.popleft()
        batch = [head]
        for req in list(self._waiting):
            if len(batch) >= self.max_batch:
                break
            if req.key == head.key:
                batch.append(req)
                self._waiting.remove(req)
        return batch

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        req = _Request(net, x)
        with self._cond:
            self._waiting.append(req)
        while True:
            with self._cond:
                while not req.done and self._busy:
                    self._cond.wait()
                if req.done:
                    return self._result(req)
                # our request is still waiting and the device is free: our turn to
                # serve the oldest batch (which may be another caller's)
                self._busy = True
                batch = self._take()
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        try:
            net = _batch_network([r.net for r in batch])
            outs = self.inner.run_batch(net, [r.x for r in batch])
            for r, y in zip(batch, outs, strict=True):
                r.result = y
        except BaseException as exc:  # every caller in the batch gets the error
            for r in batch:
                r.error = exc
        finally:
            with self._cond:
                self.batch_sizes.append(len(batch))
                for r in batch:
                    r.done = True
                self._busy = False
                self._cond.notify_all()

    @staticmethod
    def _result(req: _Request) -> Tensor:
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._busy = True
        try:
            return list(self.inner.run_batch(net, xs))
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
