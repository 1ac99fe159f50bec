"""OpenVINO on CPU: the fast path on x86 (bf16 on AMX/AVX512-BF16 CPUs, fp32 else).

Measured on this project's Sapphire Rapids (AMX) at 1280×960, wave: OpenVINO
bf16 ≈ 0.4 s against eager fp32 ≈ 4.5 s (≈ 11×) at ≈ 56 dB; see benchmarks/.

Conversion is `torch.export` → `openvino.convert_model`, done once per model
and cached on disk as IR (`<cache>/compiled/openvino/<weights hash>/`). One
export cannot serve every size: TensorFlow "SAME" padding and the final crop
depend on each side modulo 4 (the PERF-NOTES trap: an export specialised to
multiples of 4), so each residue class (h % 4, w % 4) gets its own export with
sides `4·k + r` dynamic in k: 16 variants at most per model, made on first use
(≈ 5 s each), then read from disk (< 0.5 s).

Every conversion (these variants and the tile IRs of `ovtiles`) runs in a
short-lived child process (`make_ir`) that writes the IR and exits: torch.export
and the converter leave ≈ 125 MB resident in the process that ran them (their
modules and caches, measured at a 640² tile IR; not given back by gc or
malloc_trim), which put a cold 4000×3000 `auto` run at 866–870 MB peak RSS
against 694 MB with the IRs on disk. The child costs ≈ 1.5 s of start-up once
per IR; if it cannot run (or cannot unpickle the network), the conversion
happens in this process as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from totoshka.engine import tiling
from totoshka.engine.backends.eager import BUDGET, resolve_max_pixels, run_untiled_or_tiled
from totoshka.engine.backends.hardware import cpu_info

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """torch.export and OpenVINO's converter (torch 2.13) warn about torch's own pytree
    internals (`LeafSpec`): torch's business, not the user's, so keep it off their
    terminal."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        yield


ALIGN = 4
MIN_SIDE = 16  # smaller pictures go through eager (Magenta pads them specially)
MAX_SIDE = 8192
FORMAT_VERSION = "1"
# peak RSS of one untiled bf16 pass per pixel, measured: 2.4 GB at 2560×1920 (see eager.py)
BYTES_PER_PIXEL = 425

# How many IRs this process made, in a child or here (tests check the disk cache with it).
conversions = 0
_conversions_lock = threading.Lock()
# "1": convert in this process (no child); for debugging, or where no child may run
IN_PROCESS_ENV = "TOTOSHKA_CONVERT_IN_PROCESS"
CHILD_TIMEOUT_S = 900
_CHILD_BAD_JOB = 2  # the child's exit status when it cannot load the job
_CHILD_FAILED = 3  # ... and when the conversion itself raised
_CHILD_CODE = (
    "import sys; from totoshka.engine.backends.openvino import _child_main; "
    "_child_main(sys.argv[1])"
)


def compiled_root() -> Path:
    """`<model cache>/compiled`, i.e. `$TOTOSHKA_CACHE_DIR/compiled` when that is set."""
    from totoshka.engine.paths import cache_dir

    return cache_dir() / "compiled"


def weights_key(net: nn.Module) -> str:
    """A hash of the network's class and every parameter and buffer (bound style included)."""
    h = hashlib.sha256(f"{type(net).__module__}.{type(net).__qualname__}".encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:32]


class StyleAsInput(nn.Module):
    """A style-bound network (Magenta's `BoundTransfer`) with its style vector as an input.

    Own styles give a new vector for nearly every photo; with the vector baked in,
    each would need its own conversion (5–9 s). Exported this way, one IR per
    residue class serves every vector. The bound module's own `forward` runs with
    `self` standing for an object whose `style` is the input.
    """

    def __init__(self, bound: nn.Module) -> None:
        super().__init__()
        self.transfer = bound.transfer
        self._forward = type(bound).forward

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self._forward(SimpleNamespace(transfer=self.transfer, style=style), x)


def bound_style(net: nn.Module) -> Tensor | None:
    """The style vector of a style-bound network (a `style` buffer beside `transfer`)."""
    style = getattr(net, "style", None)
    if isinstance(style, Tensor) and isinstance(getattr(net, "transfer", None), nn.Module):
        return style
    return None


def exported_module(net: nn.Module) -> nn.Module:
    return StyleAsInput(net) if bound_style(net) is not None else net


def residue(x: Tensor) -> tuple[int, int]:
    return x.shape[-2] % ALIGN, x.shape[-1] % ALIGN


def export_variant(net: nn.Module, res: tuple[int, int]) -> Any:
    """Export `net` for sides ≡ `res` (mod 4), dynamic otherwise; returns an ov.Model."""
    import openvino as ov

    dim = torch.export.Dim
    lo, hi = MIN_SIDE // ALIGN, MAX_SIDE // ALIGN
    kh, kw = dim("kh", min=lo, max=hi), dim("kw", min=lo, max=hi)
    example = torch.rand(1, 3, ALIGN * 24 + res[0], ALIGN * 32 + res[1]) * 255
    spatial = {2: ALIGN * kh + res[0], 3: ALIGN * kw + res[1]}
    style = bound_style(net)
    module = exported_module(net)
    args: tuple[Tensor, ...] = (example,) if style is None else (example, style.clone())
    shapes: tuple[Any, ...] = (spatial,) if style is None else (spatial, None)
    with torch.no_grad(), quiet_export():
        exported = torch.export.export(module, args, dynamic_shapes=shapes)
        _fold_constant_sym_ops(exported)
        model = ov.convert_model(exported)
    return model


def _fold_constant_sym_ops(exported: Any) -> None:
    """Replace shape arithmetic that is constant within the residue class by its value.

    Magenta's wrapper pads by `-h % 4`; with h = 4·k + r that is a constant, but
    sympy keeps `PythonMod(-4·k - r, 4)` and OpenVINO has no rule for Python's
    `mod`. Each such node is evaluated at several k; if the value never changes
    it becomes a plain int in the graph.
    """
    import operator

    graph = exported.graph_module.graph
    changed = False
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (operator.mod, operator.floordiv):
            continue
        val = node.meta.get("val")
        expr = getattr(getattr(val, "node", None), "expr", None)
        if expr is None:
            continue
        symbols = sorted(expr.free_symbols, key=str)
        values = {int(expr.subs({s: k for s in symbols})) for k in (5, 6, 7, 8, 101)}
        if len(values) != 1:
            continue
        node.replace_all_uses_with(values.pop())
        graph.erase_node(node)
        changed = True
    if changed:
        graph.eliminate_dead_code()
        exported.graph_module.recompile()


# -- conversion in a child process ------------------------------------------------------


def _convert(job: dict[str, Any]) -> Any:
    """The ov.Model a job describes (what `make_ir` converts, here or in its child)."""
    if job["kind"] == "variant":
        return export_variant(job["net"], job["res"])
    if job["kind"] == "tiles":
        from totoshka.engine.backends.ovtiles import export_tiles

        return export_tiles(job["net"], job["norms"], job["shape"])
    raise ValueError(f"unknown conversion {job['kind']!r}")


def _save(model: Any, path: Path) -> None:
    import openvino as ov

    ov.save_model(model, str(path), compress_to_fp16=False)


def _convert_in_child(job: dict[str, Any], out: Path) -> bool:
    """Convert `job` in a fresh Python process writing the IR at `out`; False if that
    process could not do it for reasons of its own (then the caller converts here).

    A conversion that fails in the child raises here, as it would have here.
    """
    fd, name = tempfile.mkstemp(prefix=".job-", suffix=".pt", dir=out.parent)
    os.close(fd)
    job_file = Path(name)
    try:
        try:
            # one pickle: the norms stay the very modules inside the network
            torch.save({**job, "out": str(out)}, job_file)
        except Exception as exc:  # a network that does not pickle: convert here
            log.info("converting in this process: the network does not pickle (%s)", exc)
            return False
        env = dict(os.environ)
        # the child imports the network's classes from where this process found them
        paths = [p for p in sys.path if p]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD_CODE, str(job_file)],
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("conversion child did not run (%s); converting in this process", exc)
            return False
        tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
        if proc.returncode == 0 and out.exists() and out.with_suffix(".bin").exists():
            return True
        if proc.returncode == _CHILD_FAILED:
            raise RuntimeError(f"conversion failed: {tail}")
        log.warning(
            "conversion child failed (exit %s: %s); converting in this process",
            proc.returncode,
            tail,
        )
        return False
    finally:
        job_file.unlink(missing_ok=True)


def _child_main(job_file: str) -> None:
    """The child of `_convert_in_child`: load the job, convert, save, exit."""
    try:
        job = torch.load(job_file, weights_only=False)
    except Exception as exc:
        print(f"cannot load the conversion job: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(_CHILD_BAD_JOB) from None
    try:
        _save(_convert(job), Path(job["out"]))
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(_CHILD_FAILED) from None


def make_ir(path: Path, job: dict[str, Any]) -> None:
    """Convert `job` (see `_convert`) and save its IR at `path` (+ .bin), atomically.

    The conversion runs in a short-lived child process, so what torch.export and
    the converter leave behind (≈ 125 MB) goes back to the system with it; this
    process only reads the IR. Without a working child it runs here.
    """
    global conversions
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.xml")
    try:
        if os.environ.get(IN_PROCESS_ENV) == "1" or not _convert_in_child(job, tmp):
            _save(_convert(job), tmp)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    with _conversions_lock:
        conversions += 1


class OpenVinoRunner:
    """Runs a network through OpenVINO; `precision` is "bf16" or "f32"."""

    def __init__(
        self,
        precision: str = "bf16",
        *,
        cache_dir: Path | None = None,
        threads: int | None = None,
        max_pixels: int | str | None = BUDGET,
    ) -> None:
        import openvino as ov

        if precision not in ("bf16", "f32"):
            raise ValueError("precision is bf16 or f32")
        self.precision = precision
        self.name = f"openvino-{'bf16' if precision == 'bf16' else 'fp32'}"
        self.cache_dir = cache_dir
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
        self._tiles: Any = None

    # -- the on-disk cache ------------------------------------------------------------
    def folder(self, net: nn.Module) -> Path:
        with self._lock:
            key = self._keys.get(net)
            if key is None:
                key = self._keys[net] = weights_key(exported_module(net))
        root = self.cache_dir or compiled_root()
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
        make_ir(path, {"kind": "variant", "net": net, "res": res})
        return self.core.read_model(str(path))

    def compiled(self, net: nn.Module, res: tuple[int, int]) -> Any:
        key = (self.folder(net), res)
        with self._lock:
            found = self._compiled.get(key)
        if found is not None:
            return found
        compiled = self.core.compile_model(self._model(net, res), "CPU", self.config)
        with self._lock:
            self._compiled[key] = compiled
        return compiled

    # -- Runner ----------------------------------------------------------------------
    def variant(self, x: Tensor) -> tuple[int, int]:
        return residue(x)

    def handles(self, x: Tensor) -> bool:
        h, w = x.shape[-2:]
        return min(h, w) >= MIN_SIDE and max(h, w) <= MAX_SIDE

    def tiles(self) -> Any:
        """Big pictures: tiles through OpenVINO with whole-picture statistics (`ovtiles`)."""
        from totoshka.engine.backends.ovtiles import OpenVinoTiles

        with self._lock:
            if self._tiles is None:
                self._tiles = OpenVinoTiles(self)
            return self._tiles

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        big = self.max_pixels is not None and x.shape[-2] * x.shape[-1] > self.max_pixels
        if big and x.shape[0] == 1 and min(x.shape[-2:]) >= MIN_SIDE:
            try:
                return self.tiles().stylize(net, x)
            except Exception as exc:  # eager tiles always work, only slower
                log.warning("OpenVINO tiles failed (%s); tiling eagerly", exc)
        if big or not self.handles(x):
            # tiny pictures are under every export's minimum side
            forward = tiling.bf16_forward if cpu_info().fast_bf16 else tiling.eager_forward
            return run_untiled_or_tiled(net, x, forward, self.max_pixels).clamp(0, 255)
        request = self.compiled(net, residue(x)).create_infer_request()
        inputs = [x.detach().contiguous().numpy()]
        style = bound_style(net)
        if style is not None:
            inputs.append(style.detach().contiguous().numpy())
        out = request.infer(inputs)
        return torch.from_numpy(out[0].copy()).clamp_(0, 255)

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        return [self.run(net, x) for x in xs]
