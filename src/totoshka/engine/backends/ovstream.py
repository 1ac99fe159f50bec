"""Big photos in bands through OpenVINO, from a torch network (`ovbands` paints).

Why this layer: the band painter is torch-free (numpy and OpenVINO), but its IR
(every norm's statistics as inputs, every norm's input as an output) is exported
from the torch module, once per model and residue class of the sides, into the
model's IR folder beside the untiled variants. Here the torch path finds or makes
that IR, keeps the last few in memory, and hands the photo over as numpy; a warm
cache's `coldpath` reads the same file and paints without torch.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from totoshka.engine.backends import ovbands
from totoshka.engine.backends.ovbands import Unstreamable, name_ops, stream_file
from totoshka.engine.backends.ovconvert import bound_style, residue

__all__ = ["OpenVinoStream", "Unstreamable", "stream_file"]

log = logging.getLogger(__name__)

KEEP_MODELS = 4  # dynamic IRs (model × residue class) kept in memory


class OpenVinoStream:
    """Per model and residue class: the dynamic IR; per picture, `ovbands.painted`."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner  # the OpenVinoRunner: core, config, cache folder, make_ir
        self._models: OrderedDict[tuple[Path, tuple[int, int]], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.peak_store_bytes = 0  # the most bytes stored at once in the last picture

    def path(self, net: nn.Module, res: tuple[int, int]) -> Path:
        return self.runner.folder(net) / stream_file(res)

    def model(self, net: nn.Module, norms: list[nn.Module], res: tuple[int, int]) -> Any:
        """The dynamic IR (sides ≡ res mod 4), made once per model on disk, kept in memory."""
        key = (self.runner.folder(net), res)
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
        path = self.path(net, res)
        core = self.runner.core
        model = None
        if path.exists() and path.with_suffix(".bin").exists():
            try:
                model = core.read_model(str(path))
            except RuntimeError as exc:
                log.warning("compiled model %s unreadable (%s); converting again", path, exc)
        if model is None:
            self.runner.make_ir(path, {"kind": "stream", "net": net, "norms": norms, "res": res})
            model = core.read_model(str(path))
        name_ops(model)
        with self._lock:
            self._models[key] = model
            while len(self._models) > KEEP_MODELS:
                self._models.popitem(last=False)
        return model

    def stylize(self, net: nn.Module, x: Tensor, norms: list[nn.Module]) -> Tensor:
        """`x` (1×3×H×W, 0..255) painted stage by stage in bands; `Unstreamable` if the
        graph cannot be cut."""
        if x.shape[0] != 1:
            raise ValueError("streaming takes one picture at a time")
        dynamic = self.model(net, norms, residue(x))
        style = bound_style(net)
        head = None if style is None else style.detach().float().contiguous().numpy()
        self.peak_store_bytes = 0
        picture, self.peak_store_bytes = ovbands.painted(
            self.runner.core,
            self.runner.config,
            dynamic,
            x.detach().float().contiguous().numpy(),
            head,
            [n.channels for n in norms],
        )
        return torch.from_numpy(picture)
