"""OpenVINO on CPU: the fast path on x86 (bf16 on AMX/AVX512-BF16 CPUs, fp32 else).

Measured on this project's Sapphire Rapids (AMX) at 1280×960, wave: OpenVINO
bf16 ≈ 0.4 s against eager fp32 ≈ 4.5 s (≈ 11×) at ≈ 56 dB; see benchmarks/.

The runner reads one IR per model and residue class of the sides (h % 4, w % 4),
cached on disk (`<cache>/compiled/openvino/<weights hash>/`) and made on first use
by `ovconvert` (in a short-lived child process unless `convert_in_process`);
pictures over its pixel budget go through `ovtiles`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from totoshka.engine import paths, tiling
from totoshka.engine.backends import ovconvert
from totoshka.engine.backends.eager import BUDGET, resolve_max_pixels, run_untiled_or_tiled
from totoshka.engine.backends.hardware import cpu_info
from totoshka.engine.backends.limits import OPENVINO_BYTES_PER_PIXEL as BYTES_PER_PIXEL
from totoshka.engine.backends.ovconvert import (
    MAX_SIDE,
    MIN_SIDE,
    bound_style,
    exported_module,
    residue,
)
from totoshka.engine.backends.ovsources import FORMAT_VERSION, SourceIndex
from totoshka.engine.backends.ovstream import OpenVinoStream, Unstreamable
from totoshka.engine.backends.ovtiles import OpenVinoTiles

log = logging.getLogger(__name__)

# FORMAT_VERSION (the IR folders' layout) and BYTES_PER_PIXEL (one untiled pass's
# peak, which decides tiling) live in torch-free modules: the cold path reads them.
__all__ = [
    "BYTES_PER_PIXEL",
    "FORMAT_VERSION",
    "OpenVinoRunner",
    "remember_predictor",
    "remember_source",
    "weights_key",
]

# How many IRs this process made, in a child or here (tests check the disk cache with it).
conversions = 0
_conversions_lock = threading.Lock()


def weights_key(net: nn.Module) -> str:
    """A hash of the network's class and every parameter and buffer (bound style included)."""
    h = hashlib.sha256(f"{type(net).__module__}.{type(net).__qualname__}".encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:32]


def remember_source(
    compiled_dir: Path, source: str, family: str, net: nn.Module, vector: Any
) -> bool:
    """Record under `source` (`ovsources.source_key`) which IR folder and verdict key
    `net` has, so a later process serves it without torch (`engine.coldpath`).

    `vector`: the catalog style's vector, for a style-bound network. The cold path
    makes the style input from it by its family's rule; that is recorded only if
    the rule gives, to the bit, the vector this network was bound to. False when
    nothing was recorded."""
    from totoshka.engine import coldpath

    style = bound_style(net)
    rule: str | None = None
    if style is not None:
        made = coldpath.style_input(family, vector)
        bound = style.detach().cpu().contiguous().numpy()
        if made is None or made.shape != bound.shape or made.tobytes() != bound.tobytes():
            log.debug("style input of %s not reproducible without torch", family)
            return False
        rule = family
    record = {
        "ir": f"v{FORMAT_VERSION}-{weights_key(exported_module(net))}",
        "verdict": weights_key(getattr(net, "shared_network", net)),
        "style": rule,
    }
    SourceIndex(compiled_dir).put(source, record)
    return True


PREDICTOR_FILE = "predictor.xml"


def remember_predictor(
    compiled_dir: Path,
    source: str,
    load: Callable[[], nn.Module],
    *,
    side: int,
    convert_in_process: bool = False,
) -> bool:
    """Make Magenta's style predictor an IR (once per cache) and record it under
    `source` (`ovsources.predictor_key`), so a later process turns a painting into
    its style vector without torch (`engine.coldpath`).

    `load` gives the torch predictor; it is called only when the index has no
    readable entry yet, so a process whose cache is complete never loads it. The
    IR lives beside the transfer networks', in a folder named by its weights' hash
    like theirs. False when nothing had to be done."""
    global conversions
    index = SourceIndex(compiled_dir)
    found = index.get(source)
    if found is not None:
        xml = compiled_dir / "openvino" / str(found.get("ir", "")) / str(found.get("file", ""))
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return False
    net = load()
    folder = f"v{FORMAT_VERSION}-{weights_key(net)}"
    xml = compiled_dir / "openvino" / folder / PREDICTOR_FILE
    if not (xml.is_file() and xml.with_suffix(".bin").is_file()):
        job = {"kind": "predictor", "net": net, "side": side}
        ovconvert.make_ir(xml, job, in_process=convert_in_process)
        with _conversions_lock:
            conversions += 1
    index.put(source, {"ir": folder, "verdict": None, "style": None, "file": PREDICTOR_FILE})
    return True


class OpenVinoRunner:
    """Runs a network through OpenVINO; `precision` is "bf16" or "f32".

    `convert_in_process`: make IRs in this process, not in a child (for debugging,
    or where no child may run; the process then keeps the converter's ≈ 125 MB).
    """

    def __init__(
        self,
        precision: str = "bf16",
        *,
        cache_dir: Path | None = None,
        threads: int | None = None,
        max_pixels: int | str | None = BUDGET,
        convert_in_process: bool = False,
    ) -> None:
        import openvino as ov

        if precision not in ("bf16", "f32"):
            raise ValueError("precision is bf16 or f32")
        self.precision = precision
        self.name = f"openvino-{'bf16' if precision == 'bf16' else 'fp32'}"
        self.cache_dir = cache_dir
        self.convert_in_process = convert_in_process
        self.max_pixels = resolve_max_pixels(max_pixels, BYTES_PER_PIXEL)
        self.core = ov.Core()
        self.config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        # (folder, residue) -> compiled model: style-bound networks share one
        self._compiled: dict[tuple[Path, tuple[int, int]], Any] = {}
        self._keys: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._tiles: OpenVinoTiles | None = None
        self._stream: OpenVinoStream | None = None

    # -- the on-disk cache ------------------------------------------------------------
    def folder(self, net: nn.Module) -> Path:
        with self._lock:
            key = self._keys.get(net)
            if key is None:
                key = self._keys[net] = weights_key(exported_module(net))
        root = self.cache_dir or paths.compiled_dir()
        return root / "openvino" / f"v{FORMAT_VERSION}-{key}"

    def variant_path(self, net: nn.Module, res: tuple[int, int]) -> Path:
        return self.folder(net) / f"r{res[0]}{res[1]}.xml"

    def _model(self, net: nn.Module, res: tuple[int, int]) -> Any:
        """The IR of a residue class: read from disk, or exported (`make_ir`) and read."""
        path = self.variant_path(net, res)
        if path.exists() and path.with_suffix(".bin").exists():
            try:
                return self.core.read_model(str(path))
            except RuntimeError as exc:  # a torn file from a crash: make it again
                log.warning("compiled model %s unreadable (%s); converting again", path, exc)
        self.make_ir(path, {"kind": "variant", "net": net, "res": res})
        return self.core.read_model(str(path))

    def make_ir(self, path: Path, job: dict[str, Any]) -> None:
        """`ovconvert.make_ir` as this runner is set to, counted in `conversions`."""
        global conversions
        ovconvert.make_ir(path, job, in_process=self.convert_in_process)
        with _conversions_lock:
            conversions += 1

    def blob_dir(self) -> Path:
        """Where OpenVINO keeps compiled blobs (its model cache, `CACHE_DIR`)."""
        return (self.cache_dir or paths.compiled_dir()) / "openvino" / "blobs"

    def compiled(self, net: nn.Module, res: tuple[int, int]) -> Any:
        """The compiled model of a residue class. Compiling packs the weights for this
        CPU and took 1.1 s of a cold process's first 1.6 s `infer` (issue 13); with
        OpenVINO's model cache a new process loads the packed blob instead. The IR
        is compiled from its path, which is what the cache keys a blob by (a model
        passed as an object is hashed in full on every start)."""
        key = (self.folder(net), res)
        with self._lock:
            found = self._compiled.get(key)
        if found is not None:
            return found
        path = self.variant_path(net, res)
        self._model(net, res)  # on disk and readable, converted first if need be
        config = {**self.config, "CACHE_DIR": str(self.blob_dir())}
        try:
            compiled = self.core.compile_model(str(path), "CPU", config)
        except RuntimeError as exc:  # a torn blob or IR: compile from a fresh read
            log.warning("compiling %s from its cache failed (%s); compiling afresh", path, exc)
            compiled = self.core.compile_model(self._model(net, res), "CPU", self.config)
        with self._lock:
            self._compiled[key] = compiled
        return compiled

    def compiled_for(self, net: nn.Module, x: Tensor) -> Any:
        """The compiled model that paints `x` (one per residue class here; the int8
        runner compiles one per size)."""
        return self.compiled(net, residue(x))

    @staticmethod
    def extra_inputs(net: nn.Module) -> list[Any]:
        """The model's inputs after the picture: a bound style vector, if any."""
        style = bound_style(net)
        return [] if style is None else [style.detach().contiguous().numpy()]

    # -- Runner ----------------------------------------------------------------------
    def variant(self, x: Tensor) -> tuple[int, int]:
        return residue(x)

    def handles(self, x: Tensor) -> bool:
        h, w = x.shape[-2:]
        return min(h, w) >= MIN_SIDE and max(h, w) <= MAX_SIDE

    def tiles(self) -> OpenVinoTiles:
        """Big pictures: tiles through OpenVINO with whole-picture statistics (`ovtiles`)."""
        with self._lock:
            if self._tiles is None:
                self._tiles = OpenVinoTiles(self)
            return self._tiles

    def stream(self) -> OpenVinoStream:
        """Big pictures in bands, stage by stage, stored between stages (`ovstream`)."""
        with self._lock:
            if self._stream is None:
                self._stream = OpenVinoStream(self)
            return self._stream

    def run_big(self, net: nn.Module, x: Tensor) -> Tensor:
        """A picture over the memory budget: in bands (≈ 1.5 untiled passes), or in tiles
        (≈ 10 passes, the same exact statistics) for a graph that bands cannot cut."""
        tiles = self.tiles()
        try:
            return self.stream().stylize(net, x, tiles.norms(net, x))
        except Unstreamable as exc:
            log.info("painting in tiles: %s", exc)
        return tiles.stylize(net, x)

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        big = self.max_pixels is not None and x.shape[-2] * x.shape[-1] > self.max_pixels
        if big and x.shape[0] == 1 and min(x.shape[-2:]) >= MIN_SIDE:
            try:
                return self.run_big(net, x)
            except Exception as exc:  # eager tiles always work, only slower
                log.warning("OpenVINO tiles failed (%s); tiling eagerly", exc)
        if big or not self.handles(x):
            # tiny pictures are under every export's minimum side
            forward = tiling.bf16_forward if cpu_info().fast_bf16 else tiling.eager_forward
            return run_untiled_or_tiled(net, x, forward, self.max_pixels).clamp(0, 255)
        request = self.compiled_for(net, x).create_infer_request()
        out = request.infer([x.detach().contiguous().numpy(), *self.extra_inputs(net)])
        return torch.from_numpy(out[0].copy()).clamp_(0, 255)

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        return [self.run(net, x) for x in xs]
