"""Tiles of big photos through OpenVINO, with the whole picture's norm statistics as inputs.

`tiling.stylize_tiled` measures each instance norm's statistics over the whole
picture norm by norm and then replays them; in eager PyTorch that is ≈ 500 s at
4000×3000. Here the same algorithm runs on OpenVINO bf16 (AMX):

- one `torch.export` per model and tile shape of a wrapper whose norms take
  (mean, var) from *inputs* (`ovconvert.StatsAsInputs`) and which returns the picture and
  every norm's input; tiles all have one static shape (`tile_geometry.tile_span`: edge
  tiles are shifted inwards, not cut), so the IR is static and is cached on disk
  next to the untiled variants (`ovconvert.export_tiles`, made the runner's way:
  in a short-lived child process, so the export's leftovers do not stay in this one);
- from that IR, per norm k a sub-model whose only output is norm k's input (it
  stops there, like the eager measuring pass), and one whose only output is the
  picture; OpenVINO computes just what the chosen output needs;
- pass k feeds the statistics measured so far (norms < k; later inputs get
  placeholders that the sub-model does not read), crops norm k's input to each
  tile's owned part and adds it to the exact float64 accumulator; the last pass
  writes the picture with the ramps of `tiling.stylize_tiled`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from totoshka.engine import tile_geometry, tiling
from totoshka.engine.backends.ovconvert import bound_style
from totoshka.engine.models.layers import StatsAccumulator, StatsTape

log = logging.getLogger(__name__)

# owned ≤ 512 + 2·64 context = 640-pixel tiles (48 at 4000×3000, 1.6× the picture's
# pixels). Bigger tiles waste less on overlaps but one OpenVINO request's peak grows
# with the tile: measured ≈ 285 MB over the baseline at 640², 390 MB at 768², 580 MB at
# 1024²; with the picture in and out (288 MB at 12 MP) only 640² stays under 1 GB.
DEFAULT_CFG = tile_geometry.TileConfig(tile=512, overlap=64)
FORMAT_VERSION = "1"
KEEP_MODELS = 4  # IRs (model × tile shape) kept in memory


def _bf16(array: np.ndarray) -> Tensor:
    """A bf16 OpenVINO output (numpy has no bf16: 16-bit words) as a torch bf16 tensor."""
    if array.dtype == np.float32:
        return torch.from_numpy(array)
    return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)


class OpenVinoTiles:
    """Per model and tile shape: the IR, and compiled sub-models (picture, norm k's input)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner  # the OpenVinoRunner: core, config, cache folder, make_ir
        # (folder, tile shape) -> the IR, the most recently used last
        self._models: OrderedDict[tuple[Path, tuple[int, int]], Any] = OrderedDict()
        self._norms: weakref.WeakKeyDictionary[nn.Module, list[nn.Module]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def norms(self, net: nn.Module, x: Tensor) -> list[nn.Module]:
        with self._lock:
            found = self._norms.get(net)
        if found is None:
            with torch.inference_mode():
                found = tiling.norm_order(net, x, tiling.eager_forward)
            with self._lock:
                self._norms[net] = found
        return found

    def path(self, net: nn.Module, shape: tuple[int, int]) -> Path:
        return self.runner.folder(net) / f"tiles{FORMAT_VERSION}-{shape[0]}x{shape[1]}.xml"

    def _model(self, net: nn.Module, norms: list[nn.Module], shape: tuple[int, int]) -> Any:
        path = self.path(net, shape)
        core = self.runner.core
        if path.exists() and path.with_suffix(".bin").exists():
            try:
                return core.read_model(str(path))
            except RuntimeError as exc:
                log.warning("compiled model %s unreadable (%s); converting again", path, exc)
        # in a child process: the export's leftovers (≈ 125 MB) leave with it
        self.runner.make_ir(path, {"kind": "tiles", "net": net, "norms": norms, "shape": shape})
        return core.read_model(str(path))

    def model(self, net: nn.Module, norms: list[nn.Module], shape: tuple[int, int]) -> Any:
        """The IR of (model, tile shape), kept in memory for the next pictures (≈ 7 MB)."""
        key = (self.runner.folder(net), shape)
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
        found = self._model(net, norms, shape)
        with self._lock:
            self._models[key] = found
            while len(self._models) > KEEP_MODELS:
                self._models.popitem(last=False)
        return found

    def compile(self, full: Any, output: int) -> Any:
        """A compiled sub-model of `full` whose one output is `full`'s output `output`.

        Compiled per pass and dropped after it (≈ 0.1–0.2 s each on 768² tiles): the
        17 compiled sub-models of a 1024² tile held together cost ≈ 300 MB of RSS.
        """
        import openvino as ov

        whole = full.clone()  # a sub-model shares nodes with the model it is cut from
        sub = ov.Model([whole.get_results()[output]], whole.get_parameters(), f"out{output}")
        if output > 0 and self.runner.precision == "bf16":
            # a norm's input leaves as bf16, as the network holds it (3× faster than
            # converting it to f32 inside OpenVINO: measured on 1024² tiles)
            ppp = ov.preprocess.PrePostProcessor(sub)
            ppp.output(0).tensor().set_element_type(ov.Type.bf16)
            sub = ppp.build()
        return self.runner.core.compile_model(sub, "CPU", self.runner.config)

    # ------------------------------------------------------------------------------
    def stylize(
        self, net: nn.Module, x: Tensor, cfg: tile_geometry.TileConfig | None = None
    ) -> Tensor:
        """Like `tiling.stylize_tiled`, every pass through OpenVINO."""
        cfg = cfg or DEFAULT_CFG
        if x.shape[0] != 1:
            raise ValueError("tiles take one picture at a time")
        tile_geometry.limit_heap_growth()
        height, width = x.shape[-2:]
        shape = (tile_geometry.tile_span(height, cfg), tile_geometry.tile_span(width, cfg))
        norms = self.norms(net, x)
        full = self.model(net, norms, shape)
        style = bound_style(net)
        head = [] if style is None else [style.detach().float().contiguous().numpy()]
        placeholders = {
            n: (torch.zeros(1, n.channels, 1, 1), torch.ones(1, n.channels, 1, 1)) for n in norms
        }
        tiles = list(tiling._tiles(height, width, cfg))
        tape = StatsTape()

        def inputs(tile: Tensor) -> list:
            stats = []
            for n in norms:
                mean, var = tape.stats.get(n, placeholders[n])
                stats += [
                    mean.reshape(1, -1, 1, 1).float().numpy(),
                    var.reshape(1, -1, 1, 1).float().numpy(),
                ]
            return [tile.float().contiguous().numpy(), *head, *stats]

        with torch.inference_mode():
            for k, norm in enumerate(norms):
                acc = StatsAccumulator()
                compiled = self.compile(full, k + 1)
                request = compiled.create_infer_request()
                for rows, cols, crop in tiles:
                    request.infer(inputs(x[..., rows, cols]))
                    acc.add(norm, crop(_bf16(request.get_output_tensor(0).data)))
                del request, compiled
                tape.stats[norm] = acc.tape().stats[norm]
            rows_t, cols_t = (
                tile_geometry.axis_tiles(height, cfg),
                tile_geometry.axis_tiles(width, cfg),
            )
            result = torch.zeros(1, 3, height, width, dtype=torch.float32)
            half = cfg.overlap // 4
            compiled = self.compile(full, 0)
            request = compiled.create_infer_request()
            for i, (_, _, r0, r1) in enumerate(rows_t):
                wy = tiling._ramp(rows_t, i, half)
                for j, (_, _, c0, c1) in enumerate(cols_t):
                    wx = tiling._ramp(cols_t, j, half)
                    y = torch.from_numpy(request.infer(inputs(x[..., r0:r1, c0:c1]))[0])
                    result[..., r0:r1, c0:c1].addcmul_(y, wy.view(-1, 1) * wx.view(1, -1))
                    del y
            del request, compiled
            return result.clamp_(0, 255)
