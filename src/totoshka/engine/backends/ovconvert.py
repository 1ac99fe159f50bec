"""Networks into OpenVINO IR: the exports, and the short-lived process that makes them.

Both OpenVINO paths read IRs made here: the untiled runner (`openvino`) and the
tiles of big photos (`ovtiles`). Conversion is `torch.export` →
`openvino.convert_model`, done once per model and cached on disk by the runner.
One export cannot serve every size: TensorFlow "SAME" padding and the final crop
depend on each side modulo 4 (the PERF-NOTES trap: an export specialised to
multiples of 4), so each residue class (h % 4, w % 4) gets its own export with
sides `4·k + r` dynamic in k: 16 variants at most per model, made on first use
(≈ 5 s each), then read from disk (< 0.5 s). Tiles all have one static shape,
so their IR is static.

Every conversion runs in a short-lived child process (`make_ir`) that writes the
IR and exits: torch.export and the converter leave ≈ 125 MB resident in the
process that ran them (their modules and caches, measured at a 640² tile IR; not
given back by gc or malloc_trim), which put a cold 4000×3000 `auto` run at
866–870 MB peak RSS against 694 MB with the IRs on disk. The child costs ≈ 1.5 s
of start-up once per IR; if it cannot run (or cannot unpickle the network), the
conversion happens in this process as before.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from totoshka.engine.backends.limits import ALIGN, MAX_SIDE, MIN_SIDE
from totoshka.engine.models.layers import (
    StatsAccumulator,
    StatsTape,
    measure_stats,
    replay_stats,
)

log = logging.getLogger(__name__)

# ALIGN, MIN_SIDE, MAX_SIDE (the exports' sides) come from `limits`: the cold path
# checks a picture against them without importing torch
CHILD_TIMEOUT_S = 900
_CHILD_BAD_JOB = 2  # the child's exit status when it cannot load the job
_CHILD_FAILED = 3  # ... and when the conversion itself raised
_CHILD_CODE = (
    "import sys; from totoshka.engine.backends.ovconvert import _child_main; "
    "_child_main(sys.argv[1])"
)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """torch.export and OpenVINO's converter (torch 2.13) warn about torch's own pytree
    internals (`LeafSpec`): torch's business, not the user's, so keep it off their
    terminal."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        yield


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


# -- tiles: the whole picture's norm statistics as inputs ---------------------------------


class _Capture(StatsAccumulator):
    """Keeps each norm's input as it is (the export returns them as outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[nn.Module, Tensor] = {}

    def add(self, module: nn.Module, x: Tensor) -> None:
        self.inputs[module] = x


class StatsAsInputs(nn.Module):
    """`net` with each InstanceNorm's (mean, var) taken from inputs; returns (y, *norm inputs).

    Inputs: the tile, the style vector for style-bound networks, then (mean, var)
    of each norm in execution order, each shaped (1, C, 1, 1).
    """

    def __init__(self, net: nn.Module, norms: list[nn.Module], styled: bool) -> None:
        super().__init__()
        self.net = net
        self.norms = norms
        self.styled = styled

    def forward(self, x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        style, stats = (rest[0], rest[1:]) if self.styled else (None, rest)
        tape = StatsTape()
        for i, norm in enumerate(self.norms):
            tape.stats[norm] = (stats[2 * i], stats[2 * i + 1])
        capture = _Capture()
        with replay_stats(tape), measure_stats(capture, lambda t: t):
            y = self.net(x) if style is None else self.net(x, style)
        return (y, *(capture.inputs[n].float() for n in self.norms))


def export_tiles(net: nn.Module, norms: list[nn.Module], shape: tuple[int, int]) -> Any:
    """`StatsAsInputs(net)` exported for tiles of `shape`, with static inputs: an ov.Model."""
    import openvino as ov

    style = bound_style(net)
    module = StatsAsInputs(exported_module(net), norms, style is not None)
    args: list[Tensor] = [torch.rand(1, 3, *shape) * 255]
    if style is not None:
        args.append(style.clone())
    for norm in norms:
        c = norm.channels
        args += [torch.zeros(1, c, 1, 1), torch.ones(1, c, 1, 1)]
    with torch.no_grad(), quiet_export():
        exported = torch.export.export(module, tuple(args))
        model = ov.convert_model(exported)
    # the converted inputs come out with dynamic shapes; static ones let OpenVINO
    # plan memory once and pick its fastest kernels (≈ 3× on a 1024² tile)
    model.reshape({model.inputs[i]: ov.PartialShape(list(a.shape)) for i, a in enumerate(args)})
    return model


# -- Magenta's style predictor: painting crops -> style vectors --------------------------

PREDICTOR_MAX_BATCH = 8  # the crops of one painting: 1 or 3 (`own_style.PAINTING_FIT`)


def export_predictor(net: nn.Module, side: int) -> Any:
    """Magenta's style predictor for (N, 3, side, side) crops, N dynamic: an ov.Model.

    The spatial sides are static (the predictor always sees `side`² crops, and TF
    "SAME" padding is then a constant); the batch is dynamic so that one IR serves a
    square painting (one crop) and a long one (three), whose vector is their mean."""
    import openvino as ov

    example = torch.rand(3, 3, side, side)
    batch = torch.export.Dim("n", min=1, max=PREDICTOR_MAX_BATCH)
    with torch.no_grad(), quiet_export():
        exported = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        model = ov.convert_model(exported)
    return model


def export_stream(net: nn.Module, norms: list[nn.Module], res: tuple[int, int]) -> Any:
    """`StatsAsInputs(net)` for sides ≡ `res` (mod 4), dynamic otherwise: an ov.Model.

    The bands of `ovstream` reshape it to each stage's band (static, shape
    arithmetic folded) and cut it into stages; dynamic sides let one IR serve
    every picture width and band height of the residue class.
    """
    import openvino as ov

    dim = torch.export.Dim
    lo, hi = MIN_SIDE // ALIGN, MAX_SIDE // ALIGN
    kh, kw = dim("kh", min=lo, max=hi), dim("kw", min=lo, max=hi)
    style = bound_style(net)
    module = StatsAsInputs(exported_module(net), norms, style is not None)
    args: list[Tensor] = [torch.rand(1, 3, ALIGN * 24 + res[0], ALIGN * 32 + res[1]) * 255]
    rest: list[Any] = []
    if style is not None:
        args.append(style.clone())
        rest.append(None)
    for norm in norms:
        c = norm.channels
        args += [torch.zeros(1, c, 1, 1), torch.ones(1, c, 1, 1)]
        rest += [None, None]
    spatial = {2: ALIGN * kh + res[0], 3: ALIGN * kw + res[1]}
    with torch.no_grad(), quiet_export():
        exported = torch.export.export(module, tuple(args), dynamic_shapes=(spatial, tuple(rest)))
        _fold_constant_sym_ops(exported)
        model = ov.convert_model(exported)
    return model


# -- conversion in a child process ------------------------------------------------------


def _convert(job: dict[str, Any]) -> Any:
    """The ov.Model a job describes (what `make_ir` converts, here or in its child)."""
    if job["kind"] == "variant":
        return export_variant(job["net"], job["res"])
    if job["kind"] == "tiles":
        return export_tiles(job["net"], job["norms"], job["shape"])
    if job["kind"] == "stream":
        return export_stream(job["net"], job["norms"], job["res"])
    if job["kind"] == "predictor":
        return export_predictor(job["net"], job["side"])
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
                encoding="utf-8",
                errors="replace",
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


def make_ir(path: Path, job: dict[str, Any], *, in_process: bool = False) -> None:
    """Convert `job` (see `_convert`) and save its IR at `path` (+ .bin), atomically.

    The conversion runs in a short-lived child process, so what torch.export and
    the converter leave behind (≈ 125 MB) goes back to the system with it; this
    process only reads the IR. `in_process` (or a child that cannot work) runs it here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.xml")
    try:
        if in_process or not _convert_in_child(job, tmp):
            _save(_convert(job), tmp)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
