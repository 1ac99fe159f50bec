"""Big photos painted through OpenVINO band by band, layer group by layer group.

Torch-free: numpy and OpenVINO only, so a warm cache paints a 12-MP photo without
importing torch (`coldpath`; ≈ 230 MB resident less). `ovstream` makes the IR
(torch) and calls the same code.

Why: instance norm needs each norm's statistics over the *whole* picture before
anything after it can be computed. The tile path (`ovtiles`) measures them norm
by norm, re-running every tile from the photo up to norm k in pass k: ≈ 6 full
passes per tile, ×1.6 for the tiles' overlaps (4000×3000: ≈ 45 s against ≈ 4–10 s
untiled). Here what the network has computed is *kept* between passes instead:

- the network is exported once per model and residue class with every norm's
  (mean, var) as inputs and every norm's input as an output (`StatsAsInputs`,
  dynamic sides), and cut, in OpenVINO, into one *stage* per norm: stage k
  starts from tensors stored over the whole picture (the photo itself, or what
  an earlier stage stored), runs with norms < k replaying their measured
  statistics, and outputs norm k's input (added to the exact float64
  accumulator) and, where it is small, the *frontier* the next stage starts
  from;
- the frontier after stage k is the set of tensors computed so far that later
  layers still read, pushed forward over layers that do not make it bigger
  (`plan`): for the Johnson/ml5 net the quarter-resolution residual stream and
  the branch (2 × 128 channels at 1/16 of the pixels: 16 values per pixel, 384 MB
  in bf16 at 12 MP), never a full-resolution 32-channel map (32 values per
  pixel), which is recomputed from the last stored frontier instead; past the
  first upsampling, the one quarter map it reads (8 values per pixel), not its
  half-resolution output (16), so the full-resolution stages hold half as much
  and spend the rest on taller bands;
- every stage runs over full-width *bands* of rows whose input carries a halo of
  the stage's receptive field (walked from the graph's kernels), so each band's
  owned rows are exactly the untiled picture's: no tile borders, no seams, and
  no overlap beyond a few rows; stored tensors are kept as chunks of rows and a
  chunk is freed as soon as the last stage reading it has passed it.

The statistics are the whole picture's, exactly (no estimate: statistics of a
downscaled copy gave 18–21 dB, see NOTES.md). The only difference from one
untiled OpenVINO pass is that stored tensors are rounded between stages: to bf16
where the stages compute in bf16, as OpenVINO bf16 does between its own layers
anyway, and to float16 where they compute in f32 (CPUs without bf16, where `auto`
serves openvino-fp32, or the `best` quality): half the bytes of f32 stores, three
more bits than bf16. A value beyond float16's range makes the picture
`Unstreamable` (the tiles paint it).

A network whose graph has an operation that mixes pixels beyond a fixed
neighbourhood (a reduction over the picture, a reshape of its pixels) cannot be
cut into bands: `plan` raises `Unstreamable` and the caller uses the tiles.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from totoshka.engine import tile_geometry
from totoshka.engine.backends.limits import ALIGN

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
# A frontier is stored over the whole picture only if it holds at most this many
# values per picture pixel: 16 = two 128-channel maps at quarter resolution
# (384 MB in bf16 at 12 MP); a full-resolution 32-channel map (32) is recomputed.
STORE_VALUES_PER_PIXEL = 16.0
# Rows per band: about this many values in a band's buffers (`Stage.working`), so a
# band's working memory stays put whatever the picture's width or the stage. The
# stored frontiers (up to `STORE_VALUES_PER_PIXEL`) are held beside it, so this
# trades the peak memory against the halo's share of each band (measured at 12 MP:
# ≈ 2.5–5 bytes resident per value counted here, OpenVINO's own buffers included).
BAND_VALUES = 20_000_000
# ... in a process without torch (`coldpath`): the ≈ 230 MB torch holds go to taller
# bands (fewer halo rows). 4000×3000 wave through `totoshka stylize`, AVX512-BF16:
# 20 M values 780 MB of peak RSS, 40 M 851 MB, 60 M 926 MB, 36–44 s down to 31–35 s
# (benchmarks/results/tiling-12mp.md).
TORCH_FREE_BAND_VALUES = 60_000_000
# A stage holding less than the stores' bound spends what is left of it on taller
# bands (fewer halo rows): this many working values per stored value not held.
SPARE_VALUES_PER_STORED = 0.25
# Stored tensors are kept in chunks of at most this many map rows, so that a stage
# freeing them band by band holds at most a chunk of each beyond what it still reads.
CHUNK_ROWS = 8
MIN_BAND_ROWS = 32
# float16 stores: a value at or beyond this is out of range (float16's max is 65504)
F16_LIMIT = 65504.0
MOMENT_VALUES = 1 << 21  # values of a band's squared deviations held at once (8 MB)
# threads summing a band's moments: the cores, up to 4 (memory-bound past that)
MOMENT_THREADS = max(1, min(4, os.cpu_count() or 1))

# Operations that only read a fixed neighbourhood of each pixel (or none).
_POINTWISE = {
    "Abs",
    "Add",
    "Clamp",
    "Concat",
    "Convert",
    "Divide",
    "Elu",
    "Erf",
    "Exp",
    "Gelu",
    "HSigmoid",
    "HSwish",
    "Log",
    "Maximum",
    "Minimum",
    "Mish",
    "Multiply",
    "Negative",
    "Pad",
    "Power",
    "PRelu",
    "Relu",
    "Select",
    "Sigmoid",
    "Slice",
    "SoftPlus",
    "Sqrt",
    "SquaredDifference",
    "StridedSlice",
    "Subtract",
    "Swish",
    "Tanh",
}
_WINDOWED = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "Interpolate"}
_WINDOWED |= {"MaxPool", "AvgPool"}


def stream_file(res: tuple[int, int]) -> str:
    """The stream IR's file name in a model's IR folder, for sides ≡ res (mod 4)."""
    return f"stream{FORMAT_VERSION}-r{res[0]}{res[1]}.xml"


class Unstreamable(Exception):
    """The network's graph cannot be cut into bands (the tiles serve it instead)."""


Ref = tuple[str, int]  # (friendly name of the op, output index): one tensor


@dataclass
class Stage:
    """One pass over the bands: from `sources`, norm `target`'s input (0: the picture).

    `stores`: tensors kept over the whole picture for later stages; `frees`: stored
    tensors no later stage reads (freed band by band as this stage passes them);
    `halo`: picture rows of context each band needs on each side; `widest`: the
    most values per picture pixel of any tensor the stage computes; `working`:
    values per picture pixel of a band's buffers (its inputs, its outputs and two
    of its widest tensors in between), which sets the band's height; `held`: the
    most values per picture pixel stored while the stage runs.
    """

    target: int
    output: Ref
    sources: list[Ref]
    stores: list[Ref]
    frees: list[Ref]
    halo: int = 0
    widest: float = 1.0
    working: float = 1.0
    held: float = 0.0


@dataclass
class Plan:
    """The stages of one network, and what each parameter of the IR is."""

    stages: list[Stage]
    image: str  # friendly name of the photo's parameter
    style: str | None  # ... of the style vector's
    stats: dict[str, tuple[int, int]]  # parameter -> (norm, 0 for the mean / 1 for the var)
    scale: dict[Ref, int] = field(default_factory=dict)  # picture rows per map row


def _ref(output: Any) -> Ref:
    return output.get_node().get_friendly_name(), output.get_index()


def name_ops(model: Any) -> None:
    """Unique friendly names, so a tensor can be found again in clones of the model."""
    for i, op in enumerate(model.get_ordered_ops()):
        op.set_friendly_name(f"s{i}")


def static_model(
    model: Any, shape: tuple[int, int], style: tuple[int, ...] | None, channels: list[int]
) -> Any:
    """A clone of the dynamic IR at one picture shape, its shape arithmetic folded away
    (the final crop reads the photo's shape: folded, a later stage needs no photo)."""
    import openvino as ov
    import openvino.passes as passes

    clone = model.clone()
    params = clone.get_parameters()
    shapes: dict[Any, Any] = {params[0].output(0): ov.PartialShape([1, 3, *shape])}
    rest = params[1:]
    if style is not None:
        shapes[rest[0].output(0)] = ov.PartialShape(list(style))
        rest = rest[1:]
    for i, p in enumerate(rest):
        shapes[p.output(0)] = ov.PartialShape([1, channels[i // 2], 1, 1])
    clone.reshape(shapes)
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(clone)
    return clone


def norm_channels(model: Any, res: tuple[int, int], style: tuple[int, ...] | None) -> list[int]:
    """Each norm's channels, read from a stream IR (sides ≡ res mod 4) by shape inference:
    its statistics' inputs are dynamic, the norms' inputs (its results after the
    picture) are not once the photo's shape is set. A warm cache has no torch module
    to ask."""
    import openvino as ov

    clone = model.clone()
    params = clone.get_parameters()
    shapes: dict[Any, Any] = {
        params[0].output(0): ov.PartialShape([1, 3, 16 * ALIGN + res[0], 16 * ALIGN + res[1]])
    }
    if style is not None:
        shapes[params[1].output(0)] = ov.PartialShape(list(style))
    clone.reshape(shapes)
    channels = []
    for result in clone.get_results()[1:]:
        dim = result.get_output_partial_shape(0)[1]
        if not dim.is_static:
            raise Unstreamable("a norm's channels are not known from the IR")
        channels.append(dim.get_length())
    return channels


def _window_rows(op: Any) -> int:
    """How many input rows an op's window spans beyond one (conservatively)."""
    kind = op.get_type_name()
    if kind == "Interpolate":
        return 2
    if kind in ("MaxPool", "AvgPool"):
        return int(op.get_attributes()["kernel"][0]) - 1
    weights = op.input_value(1).get_shape()
    dilation = int(op.get_attributes().get("dilations", [1])[0])
    return (int(weights[-2]) - 1) * dilation


def plan(
    model: Any,
    styled: bool,
    store_limit: float = STORE_VALUES_PER_PIXEL,
    *,
    recompute_upsampling: bool = True,
) -> Plan:
    """The stages of a `static_model`: sources, target, what each stores and frees.

    The model's parameters: the photo, the style vector if `styled`, then (mean,
    var) per norm in execution order; its results: the picture, then each norm's
    input. Stage k (k = 1..N, then 0 for the picture) computes, with norms < k
    replaying, everything its target needs from the last stored frontier. The
    frontier after stage k is every tensor computed so far that a later op reads,
    after taking in each op (computable with norms < k) that does not make it
    bigger: ops are pushed forward across the cheap pointwise tail of a norm and a
    residual add, never across a convolution that widens it. It is stored if it
    holds at most `store_limit` values per picture pixel; otherwise the next
    stage recomputes from the last stored frontier.

    `recompute_upsampling`: past an upsampling, the later stages hold the smaller map
    it reads and recompute it (half the stored bytes there, spent on taller bands),
    rather than hold its output. Worth it for short bands (a process with torch,
    `BAND_VALUES`); with the taller torch-free bands the recomputation costs more
    than the halo rows saved: 4000×3000 wave, stages 15–16 8.3 s recomputing, 5.7 s
    holding, at the same peak RSS (both ways ≈ 1 GB and less).
    """
    params = model.get_parameters()
    image = params[0].get_friendly_name()
    style = params[1].get_friendly_name() if styled else None
    first = 2 if styled else 1
    norms = (len(params) - first) // 2
    stats = {
        params[first + 2 * k + i].get_friendly_name(): (k + 1, i)
        for k in range(norms)
        for i in (0, 1)
    }
    height, width = (int(d) for d in params[0].get_shape()[2:])
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() != "Result"]
    by_name = {op.get_friendly_name(): op for op in ops}
    spatial: set[str] = {image}
    needs: dict[str, int] = {}
    inputs: dict[str, list[Ref]] = {}
    order: list[str] = []
    for op in ops:
        name = op.get_friendly_name()
        ins = [_ref(op.input_value(i)) for i in range(op.get_input_size())]
        needs[name] = max([needs[r[0]] for r in ins] + [stats.get(name, (0, 0))[0]])
        if name == image or any(r[0] in spatial for r in ins):
            spatial.add(name)
            order.append(name)
        inputs[name] = [r for r in ins if r[0] in spatial]
    consumers: dict[Ref, set[str]] = {}
    values: dict[Ref, float] = {}
    scale: dict[Ref, int] = {}
    for name in order:
        op = by_name[name]
        kind = op.get_type_name()
        if name != image and kind not in _POINTWISE and kind not in _WINDOWED:
            raise Unstreamable(f"{kind} may mix pixels beyond a neighbourhood")
        for i in range(op.get_output_size()):
            out = op.output(i)
            users = {t.get_node().get_friendly_name() for t in out.get_target_inputs()}
            shape = [int(d) for d in out.get_shape()]
            if len(shape) != 4:
                raise Unstreamable(f"{kind} gives a rank-{len(shape)} tensor")
            consumers[(name, i)] = users & spatial
            rows = 2 ** max(0, round(math.log2(height / shape[2])))
            cols = 2 ** max(0, round(math.log2(width / shape[3])))
            # channels per picture pixel (ceil(n / 4) rows of a quarter map count as n / 4)
            values[(name, i)] = 0.0 if name == image else shape[1] / (rows * cols)
            scale[(name, i)] = rows
    targets = [_ref(r.input_value(0)) for r in model.get_results()]  # picture, norm 1..N

    def ancestors(refs: Iterable[Ref], stop: set[Ref]) -> set[str]:
        seen: set[str] = set()
        todo = [r for r in refs if r not in stop]
        while todo:
            name = todo.pop()[0]
            if name not in seen:
                seen.add(name)
                todo += [r for r in inputs[name] if r not in stop]
        return seen

    def frontier(done: set[str]) -> list[Ref]:
        return [r for r in consumers if r[0] in done and consumers[r] - done]

    def cost(refs: Iterable[Ref]) -> float:
        return sum(values[r] for r in refs)

    def grow(done: set[str], k: int) -> set[str]:
        done = set(done)
        grown = k > 0
        while grown:
            grown = False
            for name in order:
                if name in done or needs[name] > k - 1:
                    continue
                if any(r[0] not in done for r in inputs[name]):
                    continue
                if cost(frontier(done | {name})) <= cost(frontier(done)):
                    done.add(name)
                    grown = True
        return done

    done: set[str] = {image}
    stored: list[Ref] = [(image, 0)]
    stages: list[Stage] = []
    for k in [*range(1, norms + 1), 0]:
        target = targets[k]
        # where the target upsamples (ml5's first transposed conv: 64 channels at 1/4
        # of the pixels from 128 at 1/16), the frontier short of it is smaller, and
        # the following full-resolution stages, which store nothing, hold it instead
        # and recompute the upsampling (a cheap layer) from it
        short = grow(done, k)
        done = grow(done | ancestors([target], set()), k)
        edge = frontier(done)
        ahead = cost(edge) if k != 0 and cost(edge) <= store_limit else math.inf
        before = frontier(short)
        upsamples = bool(before) and scale[target] < min(scale[r] for r in before)
        smaller = cost(before) < min(ahead, cost(stored))
        if recompute_upsampling and k != 0 and upsamples and smaller:
            done, edge = short, before
        keep = k != 0 and cost(edge) <= store_limit
        stores = [r for r in edge if r not in stored] if keep else []
        if k == 0:
            frees = [r for r in stored if r[0] != image]
        else:
            frees = [r for r in stored if r not in edge and r[0] != image] if keep else []
        stage = Stage(target=k, output=target, sources=list(stored), stores=stores, frees=frees)
        computed = ancestors([target, *stores], set(stored))
        reach: dict[Ref, int] = dict.fromkeys(stored, 0)
        for name in order:
            if name not in computed:
                continue
            ins = inputs[name]
            r = max((reach[v] for v in ins), default=0)
            if by_name[name].get_type_name() in _WINDOWED and ins:
                r += _window_rows(by_name[name]) * scale[ins[0]]
            for i in range(by_name[name].get_output_size()):
                reach[(name, i)] = r
                stage.widest = max(stage.widest, values[(name, i)])
        radius = max(reach[r] for r in [target, *stores])
        photo = float(params[0].get_shape()[1])
        read = sum(photo if r[0] == image else values[r] for r in stored)
        # the target leaves in f32 (twice a bf16 value) after a reorder out of
        # OpenVINO's blocked layout: its values count three times
        stage.working = 3 * values[target] + cost(_extra_outputs(stage)) + read
        stage.working += 2 * stage.widest
        # sources this stage frees shrink band by band as its stores grow
        freed = [r for r in stored if r in frees]
        kept = [r for r in stored if r not in frees]
        stage.held = cost(kept) + max(cost(freed), cost(stores))
        stage.halo = ALIGN * math.ceil(radius / ALIGN) + ALIGN
        stages.append(stage)
        if keep:
            stored = list(edge)
    return Plan(stages=stages, image=image, style=style, stats=stats, scale=scale)


def _extra_outputs(stage: Stage) -> list[Ref]:
    """The stores a stage's sub-model outputs besides its target, each in the store's
    type.

    A store that is the target itself (a norm's input kept for the next stage) is
    output twice, f32 for its statistics and in the store's type to keep: OpenVINO
    converts on its threads as it writes the output. Rounding the f32 copy in numpy
    instead cost 4.8 s of a 42-s 4000×3000 wave (one core, six passes a chunk).
    """
    return list(stage.stores)


def cut(model: Any, stage: Stage, store: str, constants: dict[str, np.ndarray]) -> Any:
    """The stage's sub-model of a `static_model`: its sources in, its target and
    stores out.

    `constants`: values for parameters (the statistics measured so far, the style
    vector), baked in: a norm whose (mean, var) are inputs runs as a chain of
    full-size elementwise passes after its convolution; with constants OpenVINO
    folds it into one per-channel scale and shift fused into that convolution
    (measured ≈ 2× on a residual stage). Compiling per picture costs ≈ 0.1 s a
    stage, which a band pass over 12 MP dwarfs.
    """
    import openvino as ov
    import openvino.passes as passes

    by_name = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    image = model.get_parameters()[0]
    sources = []
    for name, index in stage.sources:
        if name == image.get_friendly_name():
            sources.append(image)
            continue
        out = by_name[name].output(index)
        param = ov.op.Parameter(out.get_element_type(), out.get_partial_shape())
        param.set_friendly_name(f"in-{name}-{index}")
        for user in list(out.get_target_inputs()):
            user.replace_source_output(param.output(0))
        sources.append(param)
    wanted = [model.get_results()[stage.target].input_value(0)]
    wanted += [by_name[n].output(i) for n, i in _extra_outputs(stage)]
    results = [ov.op.Result(o) for o in wanted]
    for p in model.get_parameters():
        value = constants.get(p.get_friendly_name())
        if value is not None:
            const = ov.op.Constant(np.ascontiguousarray(value, dtype=np.float32))
            for user in list(p.output(0).get_target_inputs()):
                user.replace_source_output(const.output(0))
    seen: set[str] = set()
    todo = [r.input_value(0).get_node() for r in results]
    while todo:
        node = todo.pop()
        if node.get_friendly_name() not in seen:
            seen.add(node.get_friendly_name())
            todo += [node.input_value(i).get_node() for i in range(node.get_input_size())]
    used = [s for s in sources if s.get_friendly_name() in seen]
    names = {u.get_friendly_name() for u in used}
    rest = [p for p in model.get_parameters() if p.get_friendly_name() in seen - names]
    if rest and any(p.get_friendly_name() not in constants for p in rest):
        raise Unstreamable("a stage reads a parameter it was given no value for")
    sub = ov.Model(results, used, f"stage{stage.target}")
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(sub)
    # stored tensors travel in the store's type (bf16 or float16), converted by OpenVINO
    kind = ov.Type.bf16 if store == "bf16" else ov.Type.f16
    ppp = ov.preprocess.PrePostProcessor(sub)
    for i, p in enumerate(used):
        if p.get_friendly_name().startswith("in-"):
            ppp.input(i).tensor().set_element_type(kind)
    for i in range(len(results)):
        if i > 0:  # the norm's input leaves as f32: its statistics are summed in f32
            ppp.output(i).tensor().set_element_type(kind)
    return ppp.build()


class RowStore:
    """One tensor of the whole picture kept as chunks of rows (C, r, W), freed from the top."""

    def __init__(self) -> None:
        self.chunks: OrderedDict[int, np.ndarray] = OrderedDict()  # first row -> chunk

    def add(self, start: int, chunk: np.ndarray) -> None:
        self.chunks[start] = chunk

    def read(self, start: int, into: np.ndarray) -> None:
        """Rows start .. start + rows of `into` (1, C, rows, W), copied into it."""
        end = start + into.shape[2]
        for s, chunk in self.chunks.items():
            lo, hi = max(s, start), min(s + chunk.shape[1], end)
            if lo < hi:
                into[0, :, lo - start : hi - start] = chunk[:, lo - s : hi - s]

    def drop_before(self, row: int) -> None:
        for s in [s for s, c in self.chunks.items() if s + c.shape[1] <= row]:
            del self.chunks[s]

    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks.values())


def bands(
    height: int, width: int, stage: Stage, band_values: int | None = None
) -> list[tuple[int, int, int, int]]:
    """(owned start, owned end, input start, input end) of each band of a stage: all
    bands one height (a static shape), ≡ the picture's height mod 4, on multiples of 4,
    of about `band_values` (default `BAND_VALUES`) working values."""
    spare = max(0.0, STORE_VALUES_PER_PIXEL - stage.held) * height * width
    budget = BAND_VALUES if band_values is None else band_values
    rows = (budget + SPARE_VALUES_PER_STORED * spare) / max(1.0, stage.working * width)
    owned = max(MIN_BAND_ROWS, 2 * stage.halo, ALIGN * int(rows // ALIGN))
    # `_axis_tiles` gives each owned part at least `overlap` rows of context, and the
    # halo already holds a row of the coarsest map beyond the stage's reach
    return tile_geometry.axis_tiles(
        height, tile_geometry.TileConfig(tile=owned, overlap=stage.halo)
    )


class Moments:
    """Per-channel mean and variance of a map added band by band (f32 sums within a
    band, Chan's pairwise formula across bands in float64).

    Why not a one-call variance (`torch.var_mean`: ≈ 90 M values/s on 2 cores, the
    slowest step of a band; a 12-MP picture's norm inputs hold ≈ 2 G values): a sum,
    then the squared deviations through a reused buffer, run at memory speed
    (numpy's pairwise sums: 0.8–1.2 G values/s a core here, and closer to the
    float64 answer than torch's), the channels split between `MOMENT_THREADS`
    threads (numpy lets go of the GIL), as OpenVINO waits between bands.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self._buffers: list[np.ndarray] = []

    def add(self, band: np.ndarray) -> None:
        """Add one band (C, rows, W) of float32 values."""
        # a band's owned rows of an output (1, C, rows, W) are strided across channels
        # but whole rows within one: (C, rows * W) is a view, not a copy (a copy would
        # be one more band-sized buffer)
        c = band.shape[0]
        x = band.reshape(c, -1)
        n = x.shape[1]
        if n == 0:
            return
        mean = np.empty(c, dtype=np.float32)
        m2 = np.empty(c, dtype=np.float64)
        # squared deviations a few channels at a time: a buffer of the whole band would
        # be as big as the band's f32 output, held beside it
        group = max(1, min(c, MOMENT_VALUES // n))
        parts = min(MOMENT_THREADS, c)
        edges = [c * i // parts for i in range(parts + 1)]
        while len(self._buffers) < parts:
            self._buffers.append(np.empty(0, dtype=np.float32))
        for i in range(parts):
            if self._buffers[i].size < group * n:
                self._buffers[i] = np.empty(group * n, dtype=np.float32)

        def channels(i: int) -> None:
            buffer = self._buffers[i]
            for c0 in range(edges[i], edges[i + 1], group):
                c1 = min(c0 + group, edges[i + 1])
                part = x[c0:c1]
                mean[c0:c1] = part.sum(axis=1, dtype=np.float32) / np.float32(n)
                d = buffer[: part.size].reshape(part.shape)
                np.subtract(part, mean[c0:c1, None], out=d)
                np.multiply(d, d, out=d)
                m2[c0:c1] = d.sum(axis=1)

        if parts > 1:
            list(_moment_pool().map(channels, range(parts)))
        else:
            channels(0)
        mean64 = mean.astype(np.float64)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n, mean64, m2
            return
        total = self.n + n
        delta = mean64 - self.mean
        self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
        self.mean = self.mean + delta * (n / total)
        self.n = total

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.m2 is None:
            raise ValueError("no values")
        return self.mean.astype(np.float32), (self.m2 / self.n).astype(np.float32)


def _stored(rows: np.ndarray, store: str) -> np.ndarray:
    """A compact copy of an output's rows to keep, in the store's type (OpenVINO's
    output already is): bf16 bits (as int16, which numpy can hold), or float16,
    checked to be in its range (OpenVINO's conversion saturates at its maximum)."""
    if store == "bf16":
        return rows.view(np.int16).copy()
    kept = rows.copy()
    if not float(np.abs(kept).max(initial=0)) < F16_LIMIT:
        raise Unstreamable("a stored value is beyond float16's range")
    return kept


def computes_bf16(core: Any, precision: str) -> bool:
    """Whether stages compiled with this precision hint really compute in bf16: the hint
    asks for it and the CPU has it (OpenVINO silently computes f32 for a bf16 hint on
    an AVX2 CPU, where bf16 stores would be the one rounding of an otherwise f32
    picture)."""
    if precision != "bf16":
        return False
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _moment_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MOMENT_THREADS, thread_name_prefix="moments")
        return _pool


def _trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc only; elsewhere nothing).

    A stage frees its compiled plan and its band buffers; without a trim, glibc may
    keep the freed heap pages resident into the next stage, beside its own.
    """
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


_libc: Any = None


def painted(
    core: Any,
    config: dict[str, Any],
    dynamic: Any,
    photo: np.ndarray,
    style: np.ndarray | None,
    channels: list[int],
    band_values: int | None = None,
    *,
    recompute_upsampling: bool = True,
) -> tuple[np.ndarray, int]:
    """The photo painted stage by stage in bands by `dynamic`, a stream IR (named by
    `name_ops`); `Unstreamable` if its graph cannot be cut.

    `photo`: float32 (1, 3, H, W) or, read band by band into float32, uint8 (H, W, 3)
    (a quarter of the bytes held through every stage); `style`: the style input of a
    style-bound network; `channels`: each norm's; `band_values`: see `bands`;
    `recompute_upsampling`: see `plan`.
    Returns the picture (1, 3, H, W), 0..255 float32, and the most bytes stored at
    once. Peak memory: the photo, the stored frontiers (freed band by band), one
    band's working set, and the picture, only once the last stage writes it.
    """
    tile_geometry.limit_heap_growth()
    if photo.ndim == 4:
        height, width = (int(s) for s in photo.shape[-2:])
    else:
        height, width = (int(s) for s in photo.shape[:2])
    # f32 stores were twice the bytes: a 4000×3000 wave on the fp32 path (AVX2)
    # peaked at 1435 MB
    store = "bf16" if computes_bf16(core, str(config.get("INFERENCE_PRECISION_HINT"))) else "f16"
    style_shape = None if style is None else tuple(style.shape)
    # sizes per pixel and halos do not depend on the height: plan on a short picture
    ref_rows = min(height, 4 * ALIGN * 16 + height % ALIGN)
    the_plan = plan(
        static_model(dynamic, (ref_rows, width), style_shape, channels),
        style is not None,
        recompute_upsampling=recompute_upsampling,
    )
    shapes = (style_shape, channels)
    run = _Run(core, config, dynamic, the_plan, (height, width), shapes, store, band_values)
    # `empty`, not `zeros`: its pages stay untouched (not resident) until the last
    # stage writes them, when the stored frontiers are mostly freed
    result = np.empty((1, 3, height, width), dtype=np.float32)
    for stage in the_plan.stages:
        run.stage(stage, photo, style, result)
        _trim_heap()
    np.clip(result, 0.0, 255.0, out=result)
    return result, run.peak_store_bytes


def _photo_rows(photo: np.ndarray, start: int, into: np.ndarray) -> None:
    """Rows start .. start + rows of the photo into a band's float32 input (1, 3, rows, W)."""
    rows = into.shape[2]
    if photo.ndim == 4:
        into[...] = photo[..., start : start + rows, :]
    else:  # uint8 (H, W, 3): converted as it is copied
        into[0] = photo[start : start + rows].transpose(2, 0, 1)


@dataclass
class _Run:
    """One picture's stages: what they share (the model, the statistics measured so far,
    the stored tensors) and the most bytes stored at once."""

    core: Any
    config: dict[str, Any]
    dynamic: Any
    the_plan: Plan
    size: tuple[int, int]
    shapes: tuple[tuple[int, ...] | None, list[int]]
    store: str
    band_values: int | None
    stats: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    stores: dict[Ref, RowStore] = field(default_factory=dict)
    peak_store_bytes: int = 0

    def stage(
        self, stage: Stage, photo: np.ndarray, style: np.ndarray | None, result: np.ndarray
    ) -> None:
        """One stage over its bands: sources read from the stores, the target's moments
        summed into the statistics, its stores filled, what it frees dropped band by
        band."""
        height, width = self.size
        the_plan, stores, store = self.the_plan, self.stores, self.store
        layout = bands(height, width, stage, self.band_values)
        span = layout[0][3] - layout[0][2]
        t0 = time.perf_counter()
        constants = {
            name: self.stats[k][i] for name, (k, i) in the_plan.stats.items() if k in self.stats
        }
        if the_plan.style is not None and style is not None:
            constants[the_plan.style] = style
        sub = cut(static_model(self.dynamic, (span, width), *self.shapes), stage, store, constants)
        compiled = self.core.compile_model(sub, "CPU", self.config)
        request = compiled.create_infer_request()
        t1 = time.perf_counter()
        names = [p.get_friendly_name() for p in sub.get_parameters()]
        acc = Moments()
        for ref in stage.stores:
            stores[ref] = RowStore()
        outputs = [stage.output, *_extra_outputs(stage)]
        infer_s = 0.0
        for b, (o0, o1, a, _) in enumerate(layout):
            for i, name in enumerate(names):
                tensor = request.get_input_tensor(i)
                if name == the_plan.image:
                    _photo_rows(photo, a, tensor.data)
                elif name.startswith("in-"):
                    _, op, index = name.rsplit("-", 2)
                    ref = (op, int(index))
                    data = tensor.data.view(np.int16) if store == "bf16" else tensor.data
                    stores[ref].read(a // the_plan.scale[ref], data)
            t2 = time.perf_counter()
            request.infer()
            infer_s += time.perf_counter() - t2
            last = b == len(layout) - 1
            for j, ref in enumerate(outputs):
                out = request.get_output_tensor(j).data
                s = the_plan.scale[ref]
                lo, hi = (o0 - a) // s, (out.shape[2] if last else (o1 - a) // s)
                if j == 0 and stage.target == 0:
                    result[..., o0:o1, :] = out[..., lo:hi, :]
                elif j == 0:
                    acc.add(out[0, :, lo:hi, :])
                if j > 0:
                    rows = out[0, :, lo:hi, :]
                    for c in range(0, rows.shape[1], CHUNK_ROWS):
                        stores[ref].add(o0 // s + c, _stored(rows[:, c : c + CHUNK_ROWS], store))
            if not last:
                nxt = layout[b + 1][2]
                for ref in stage.frees:
                    stores[ref].drop_before(nxt // the_plan.scale[ref])
            held = sum(s.nbytes() for s in stores.values())
            self.peak_store_bytes = max(self.peak_store_bytes, held)
        for ref in stage.frees:
            del stores[ref]
        log.debug(
            "stage %d: %d bands of %d rows, compile %.2f s, infer %.2f s, bands %.2f s, %.0f MB",
            stage.target,
            len(layout),
            span,
            t1 - t0,
            infer_s,
            time.perf_counter() - t1,
            self.peak_store_bytes / 2**20,
        )
        if stage.target:
            mean, var = acc.result()
            self.stats[stage.target] = (mean.reshape(1, -1, 1, 1), var.reshape(1, -1, 1, 1))
