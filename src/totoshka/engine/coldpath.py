"""Paint a catalog style from a cached OpenVINO IR without importing torch.

A cold `totoshka stylize photo.jpg --style wave` spent most of its time and memory
on torch (issue 13): importing it (≈ 1.5 s, ≈ 215 MB on a 2-core EPYC) to load a
checkpoint whose IR was already on disk, only because the IR cache was keyed by a
hash of the loaded weights. Once the torch path has served a style through
OpenVINO, everything it decided is on disk: the IR per residue class, the
calibration verdict of each path, and (`backends.ovsources`) which IR and verdict
the catalog's files map to. This module reads them back with numpy, Pillow and
OpenVINO only, and paints the picture the way `Stylizer.stylize` does: the same
resize, the same path `auto` would choose, the same clamp, colour and strength
arithmetic (`color.py`'s, in numpy), the same rounding.

One difference, on purpose: the IR is compiled for the picture's exact shape
(`Model.reshape`) instead of the residue class's dynamic one. A one-picture
process gains memory and time by it (wave at 1280×960: 434 MB against 656 MB of
peak RSS, 1.1 s against 1.2–1.5 s per pass), and the picture differs from the
dynamic compile's by rounding only (≥ 50 dB; tests/engine/test_coldpath.py checks
≥ 40 dB against the torch path, colours and strength included).

Own styles (a painting, or vectors the bot stored) go the same way with Magenta's
two networks: the style predictor's IR (`openvino.remember_predictor`, made once per
cache by the torch path, run here in f32 as the torch path runs it in eager fp32)
turns the painting's crops (`own_style.painting_arrays`, the torch path's own code)
into its vector; vectors are mixed, and the photo's own vector mixed in for a style
strength under 1, by `own_style`'s functions; the transfer network's IR, the one the
catalog's presets share, paints with it. A painting's vector is kept on disk by its
pixels (`vector_cache`): the next photo with the same painting skips the predictor.

Pictures over the memory budget (a 12-MP photo) go through the bands of `ovbands`,
the torch path's own band painter, from the stream IR it made: 1.1 GB of peak RSS
for a 4000×3000 wave through `totoshka stylize` with torch loaded, ≈ 230 MB of it
torch's. A graph the bands cannot cut goes back to the torch path's tiles.

It declines, and `Engine.paint` falls back to the Stylizer, whenever it cannot be
sure to do what the torch path would: a backend other than auto, best or
openvino-*; a machine where `auto` might pick a GPU; MSG-Net own styles; an own
style whose predictor IR is not recorded yet; a model whose
files have no known sha256 or whose IR the torch path has not recorded; a picture
`auto` would not calibrate (min side < 32); a picture over the memory budget
whose band IR (`ovbands`) the torch path has not made yet; a residue class not
converted yet; a path without a verdict yet, or a verdict that sends the picture
to a torch path (torch bf16, eager fp32). `last_reason` says which.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from totoshka.engine import own_style, vector_cache
from totoshka.engine.backends import hardware, limits, ovbands, ovint8, verdicts
from totoshka.engine.backends.ovsources import (
    FORMAT_VERSION,
    SourceIndex,
    ir_root,
    predictor_key,
    shared_key,
    source_key,
)
from totoshka.engine.catalog import Catalog, Model, Style
from totoshka.engine.errors import EngineError
from totoshka.engine.imageio import DEFAULT_MAX_SIDE, fit_within
from totoshka.engine.mixing import StyleMix, mixed_style
from totoshka.engine.own_style import OwnStyle
from totoshka.engine.store import ModelStore

if TYPE_CHECKING:
    from totoshka.engine.settings import EngineSettings

log = logging.getLogger(__name__)

# the OpenVINO paths and the precision hint their runner compiles with ("int8": the
# plan's convolutions in int8, the rest in `ovint8.float_precision`)
PRECISIONS = {"openvino-bf16": "bf16", "openvino-fp32": "f32", "openvino-int8": "int8"}
# Compiled (IR, shape) pairs kept. A model compiled for a static shape keeps the
# memory of its pass (≈ 200 MB for Magenta at 1280×960, measured: 360, 588, 736,
# 925 MB of RSS after four sizes), so pictures keep 2 (a CLI run repaints a size or
# two; a bot meets the same few sizes) and the predictor's small ones (256² crops,
# batches of 1 and 3: the painting's, the photo's) keep 2 of their own.
KEEP_COMPILED = 2
KEEP_PREDICTOR = 2
# OpenVINO's model cache (CACHE_DIR) for the static compiles: loading the packed
# blob of a (model, shape) takes 0.10-0.13 s against 0.21-0.26 s compiling it again
# (Magenta and ml5 at 1280×960, this 2-core EPYC). One blob per model, shape and
# precision (3-8 MB each); pictures come in a few shapes once fitted to 1280 px, and
# the oldest blobs go past this many bytes.
BLOB_CACHE_BYTES = 256 * 2**20
# the predictor's precision: the torch path runs it in eager fp32, and OpenVINO f32
# gives its vectors to ≈ 5e-7 (relative L2) where bf16 is ≈ 4 % off (cosine 0.9992),
# for ≈ 0.02–0.09 s a painting
PREDICTOR_PRECISION = "f32"
# style vectors' lengths (models.magenta.STYLE_DIM, models.dumoulin.STYLE_COUNT: torch
# modules); a rule that drifted from its loader is never recorded (`remember_source`)
MAGENTA_STYLE_DIM = own_style.STYLE_DIM
DUMOULIN_STYLE_COUNT = 26
_RGB_TO_Y = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # color.py's BT.601 weights


def style_input(family: str | None, vector: Any) -> np.ndarray | None:
    """The style input a style-bound network's IR takes, made from a catalog vector as
    the family's loader binds it (None: not a vector this family takes).

    Magenta binds the 100 numbers as float32 (`magenta.BoundTransfer`); Dumoulin
    binds the 26 weights normalised to sum 1 in float64, then float32
    (`dumoulin.mixture`)."""
    if vector is None:
        return None
    if family == "magenta":
        v = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if v.shape[1] != MAGENTA_STYLE_DIM or not np.isfinite(v).all():
            return None
        return v
    if family == "dumoulin":
        w = np.asarray(vector, dtype=np.float64).reshape(-1)
        if w.size != DUMOULIN_STYLE_COUNT or not np.isfinite(w).all():
            return None
        if (w < 0).any() or w.sum() <= 0:
            return None
        return (w / w.sum()).astype(np.float32).reshape(1, -1)
    return None


@dataclass(frozen=True)
class ColdPlan:
    """What would paint a picture: the path `auto` chooses, its IR and style input."""

    path: str
    precision: str
    xml: Path
    style: np.ndarray | None
    bands: bool = False  # over the memory budget: `xml` is the stream IR, painted in bands
    int8: Path | None = None  # `ovint8.Int8Plan` file: its convolutions run in int8


def _photo(picture: Image.Image) -> np.ndarray:
    """float32 NCHW 0..255, as `stylizer.to_tensor` makes it (one strided copy)."""
    array = np.asarray(picture)
    x = np.empty((1, 3, array.shape[0], array.shape[1]), dtype=np.float32)
    x[0] = array.transpose(2, 0, 1)
    return x


def _finish(
    picture: Image.Image, painting: np.ndarray, strength: float, preserve_colors: bool
) -> Image.Image:
    """`Stylizer.stylize` after the network, in numpy on NCHW float32 as there:
    preserve colours (`color.preserve_colors`), strength (`color.blend`), then
    `to_image`'s rounding. The photo is read again only when an option needs it, so
    it does not sit in memory beside OpenVINO's buffers."""
    if preserve_colors or strength != 1.0:
        photo = _photo(picture)
        if preserve_colors:
            w = _RGB_TO_Y.reshape(1, 3, 1, 1)
            y_paint = (painting * w).sum(axis=1, keepdims=True, dtype=np.float32)
            y_photo = (photo * w).sum(axis=1, keepdims=True, dtype=np.float32)
            painting = np.clip(photo + (y_paint - y_photo), 0.0, 255.0)
        if strength != 1.0:
            painting = painting * np.float32(strength) + photo * np.float32(1.0 - strength)
        del photo
    np.clip(painting, 0.0, 255.0, out=painting)
    painting += np.float32(0.5)
    rounded = painting[0].astype(np.uint8)  # float -> uint8 truncates: round half up
    return Image.fromarray(np.ascontiguousarray(rounded.transpose(1, 2, 0)), "RGB")


class ColdPainter:
    """Serves catalog styles from cached IRs, or says why not (`stylize` returns None).

    Built by `Engine.paint`; holds the OpenVINO core and the last few compiled models,
    and imports OpenVINO only when a plan needs it."""

    def __init__(self, settings: EngineSettings, catalog: Catalog, store: ModelStore) -> None:
        self.backend = settings.backend
        self.own_style_engine = settings.own_style_engine
        self.memory_budget_mb = settings.memory_budget_mb
        self.compiled_dir = settings.compiled_path()
        self.catalog = catalog
        self.store = store
        self.last_path: str | None = None  # the path that painted the last picture here
        self.last_reason: str | None = None  # why the last picture was not painted here
        self._lock = threading.Lock()
        self._core: Any = None
        self._compiled: OrderedDict[tuple[Path, tuple[int, ...], str], Any] = OrderedDict()
        self._predictors: OrderedDict[tuple[Path, tuple[int, ...], str], Any] = OrderedDict()
        self.vectors = vector_cache.VectorCache(
            self.compiled_dir / "openvino" / "vectors", MAGENTA_STYLE_DIM
        )

    # -- deciding ---------------------------------------------------------------------
    def _style(self, style: str | StyleMix) -> Style:
        if isinstance(style, StyleMix):
            return mixed_style(self.catalog, style)
        return self.catalog.style(style)

    def _names(self) -> list[str] | str:
        """The paths `auto` (or the one path asked for) would try, or why torch decides."""
        if self.backend in ("auto", "best"):
            if hardware.cuda_possible():
                return "a GPU may be there: the torch path decides"
            return hardware.supported_paths(self.backend == "best")
        if self.backend in PRECISIONS:
            return [self.backend]
        return f"backend {self.backend} runs in torch"

    def plan(self, style: str | StyleMix, size: tuple[int, int]) -> ColdPlan | str:
        """The plan for painting a picture of `size` (width, height), or why there is none."""
        names = self._names()
        if isinstance(names, str):
            return names
        record = self._style(style)  # an unknown style or a refused mix: the same error
        model = self.catalog.model(record.model)
        if not self.store.is_present(model):
            return f"model {model.id} is not in the cache"
        key = source_key(self.store, model, record)
        if key is None:
            return f"model {model.id}: no file hashes to key its IR by"
        return self._plan(names, model, key, size, record.vector, record.id)

    def own_plan(
        self, style: OwnStyle, size: tuple[int, int]
    ) -> tuple[ColdPlan, Path | None] | str:
        """The plan for an own style (its style input still to be computed) and the
        predictor's IR when the style needs one (paintings, or a strength under 1), or
        why there is none. Refusals the torch path would raise are raised here."""
        engine = own_style.engine_of(style, self.own_style_engine)
        own_style.check_strength(style.style_strength)
        if engine != "magenta":
            return f"own styles on {engine} run in torch"
        names = self._names()
        if isinstance(names, str):
            return names
        model = self.catalog.model(own_style.MAGENTA_MODEL)
        if not self.store.is_present(model):
            return f"model {model.id} is not in the cache"
        key = shared_key(self.store, model)
        if key is None:
            return f"model {model.id}: no file hashes to key its IR by"
        placeholder = [0.0] * own_style.STYLE_DIM  # the real vector comes after the checks
        plan = self._plan(names, model, key, size, placeholder, "own")
        if isinstance(plan, str):
            return plan
        if plan.style is None:
            return "the transfer network's IR takes no style input"
        if not style.paintings and style.style_strength >= 1.0:
            return plan, None
        predictor = self._predictor_xml(model)
        if predictor is None:
            return "Magenta's style predictor has no IR recorded yet"
        return plan, predictor

    def _predictor_xml(self, model: Model) -> Path | None:
        key = predictor_key(self.store, model)
        entry = SourceIndex(self.compiled_dir).get(key) if key is not None else None
        if entry is None or not str(entry.get("ir", "")).startswith(f"v{FORMAT_VERSION}-"):
            return None
        xml = ir_root(self.compiled_dir) / str(entry["ir"]) / str(entry.get("file", ""))
        if not (xml.suffix == ".xml" and xml.is_file() and xml.with_suffix(".bin").is_file()):
            return None
        return xml

    def _plan(
        self,
        names: list[str],
        model: Model,
        key: str,
        size: tuple[int, int],
        vector: Sequence[float] | None,
        label: str,
    ) -> ColdPlan | str:
        """The plan for the network recorded under `key`, fed `vector` if it takes one."""
        entry = SourceIndex(self.compiled_dir).get(key)
        if entry is None or not str(entry.get("ir", "")).startswith(f"v{FORMAT_VERSION}-"):
            return f"model {model.id}: no IR recorded yet"
        w, h = size
        if min(h, w) < limits.MIN_SIDE or max(h, w) > limits.MAX_SIDE:
            return "picture size not exported"
        if self.backend in ("auto", "best") and min(h, w) < limits.MIN_CALIBRATION_SIDE:
            return "too small to calibrate: eager fp32 serves"
        budget = limits.pixel_limit(limits.OPENVINO_BYTES_PER_PIXEL, self.memory_budget_mb)
        bands = h * w > budget
        res = (h % limits.ALIGN, w % limits.ALIGN)
        name = ovbands.stream_file(res) if bands else f"r{res[0]}{res[1]}.xml"
        xml = ir_root(self.compiled_dir) / str(entry["ir"]) / name
        if not (xml.exists() and xml.with_suffix(".bin").exists()):
            if bands:
                return f"over the memory budget: no band IR for sides ≡ {res} yet"
            return f"no IR for sides ≡ {res} (mod {limits.ALIGN}) yet"
        style_in = None
        if entry.get("style"):
            style_in = style_input(str(entry["style"]), vector)
            if style_in is None:
                return f"style {label}: no style input"
        chosen = names[0] if self.backend in PRECISIONS else self._choose(names, entry, res)
        if chosen not in PRECISIONS:
            return chosen
        precision = PRECISIONS[chosen]
        int8_plan = None
        if precision == "int8":
            precision = ovint8.float_precision(hardware.cpu_info())
            if not bands:  # bands paint in float, as the torch path's runner does
                int8_plan = xml.parent / ovint8.plan_file(ovint8.half_weights(hardware.cpu_info()))
                if not int8_plan.is_file():
                    return f"model {model.id}: no int8 plan calibrated yet"
        return ColdPlan(chosen, precision, xml, style_in, bands, int8_plan)

    def _choose(self, names: list[str], entry: dict[str, Any], res: tuple[int, int]) -> str:
        """`AutoRunner.choose` over stored verdicts: the first path that passes, or why
        the answer needs torch (a torch path, or a verdict not measured yet)."""
        floor = verdicts.BEST_FLOOR_DB if self.backend == "best" else verdicts.DEFAULT_FLOOR_DB
        store = verdicts.VerdictStore(self.compiled_dir / "verdicts.json")
        for name in names:
            if name not in PRECISIONS:
                return f"{name} would be tried next: it runs in torch"
            if not hardware.openvino_available():
                continue  # `auto` lists it unavailable and goes on
            verdict = store.get(f"{entry['verdict']}/{name}/{res}")
            if verdict is None:
                return f"{name} not calibrated for this model and residue yet"
            if verdicts.reason(verdict, floor) is None:
                return name
        return "eager fp32 serves"

    # -- painting ---------------------------------------------------------------------
    def _ov_core(self) -> Any:
        import openvino as ov

        with self._lock:
            if self._core is None:
                self._core = ov.Core()
            return self._core

    def _failed(self, exc: Exception, what: str) -> None:
        """A torn IR, an OpenVINO failure: said, and the torch path mends it."""
        self.last_reason = f"OpenVINO failed: {type(exc).__name__}: {exc}"[:300]
        log.warning("cached %s not served (%s); painting through torch", what, self.last_reason)

    def _compiled_model(
        self,
        xml: Path,
        precision: str,
        shape: tuple[int, ...],
        *,
        predictor: bool = False,
        int8: Path | None = None,
    ) -> Any:
        """The IR compiled for exactly `shape`: a static plan of OpenVINO's memory,
        kept in the pictures' LRU or (`predictor`) the predictor's; with `int8` (a
        plan file), quantized by that plan first (`ovint8`: int8 needs static sides)."""
        import openvino as ov

        key = (xml, shape, precision if int8 is None else f"int8+{precision}")
        kept, keep = (
            (self._predictors, KEEP_PREDICTOR) if predictor else (self._compiled, KEEP_COMPILED)
        )
        with self._lock:
            found = kept.get(key)
            if found is not None:
                kept.move_to_end(key)
                return found
        core = self._ov_core()
        model = core.read_model(str(xml))
        model.reshape({model.inputs[0]: ov.PartialShape(list(shape))})
        if int8 is not None:
            plan = ovint8.Int8Plan.load(int8)
            if plan is None:
                raise RuntimeError(f"int8 plan {int8.name} unreadable")
            ovint8.quantize(model, plan)
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        blobs = self.compiled_dir / "openvino" / "blobs"
        try:
            compiled = core.compile_model(model, "CPU", {**config, "CACHE_DIR": str(blobs)})
        except RuntimeError as exc:  # a torn blob: compile afresh, without the cache
            log.warning("compiling %s from its blob failed (%s); compiling afresh", xml, exc)
            compiled = core.compile_model(model, "CPU", config)
        prune_blobs(blobs, BLOB_CACHE_BYTES)
        with self._lock:
            kept[key] = compiled
            while len(kept) > keep:
                kept.popitem(last=False)
        return compiled

    def stylize(
        self,
        image: Image.Image,
        style: object,
        *,
        max_side: int | None = DEFAULT_MAX_SIDE,
        strength: float = 1.0,
        preserve_colors: bool = False,
    ) -> Image.Image | None:
        """`Stylizer.stylize`'s picture, or None (and `last_reason`) when this path
        cannot be sure to paint it as the torch path would."""
        if not 0.0 <= strength <= 1.0:
            raise EngineError("strength must be between 0 and 1")
        self.last_path = None
        if not isinstance(style, str | StyleMix | OwnStyle):
            self.last_reason = "not a style this path knows"
            return None
        picture = fit_within(image, max_side).convert("RGB")
        if isinstance(style, OwnStyle):
            plan = self._own(style, picture)
        else:
            plan = self.plan(style, picture.size)
        if isinstance(plan, str):
            self.last_reason = plan
            log.debug("torch path for %s: %s", style, plan)
            return None
        if plan.bands:
            return self._stylize_bands(plan, picture, strength, preserve_colors)
        try:
            x = _photo(picture)
            inputs = [x] if plan.style is None else [x, plan.style]
            compiled = self._compiled_model(plan.xml, plan.precision, x.shape, int8=plan.int8)
            request = compiled.create_infer_request()
            # the input is read in place (no second 15 MB copy); the output is copied
            out = request.infer(inputs, share_inputs=True)[0]
            painting = np.array(out, dtype=np.float32, copy=True)
            del request, inputs, x, out  # OpenVINO's buffers go back before the arithmetic
        except Exception as exc:
            self._failed(exc, "IR")
            return None
        self.last_reason = None
        self.last_path = plan.path
        np.clip(painting, 0.0, 255.0, out=painting)  # the runner's clamp
        return _finish(picture, painting, strength, preserve_colors)

    def _stylize_bands(
        self, plan: ColdPlan, picture: Image.Image, strength: float, preserve_colors: bool
    ) -> Image.Image | None:
        """A picture over the memory budget, in bands (`ovbands`), as the torch path's
        OpenVINO runner paints it; None where the torch path must (its tiles)."""
        core = self._ov_core()
        config = {"INFERENCE_PRECISION_HINT": plan.precision, "PERFORMANCE_HINT": "LATENCY"}
        photo = np.asarray(picture)  # uint8, read band by band: 1/4 of a float32 copy
        res = (picture.height % limits.ALIGN, picture.width % limits.ALIGN)
        try:
            model = core.read_model(str(plan.xml))
            ovbands.name_ops(model)
            style_shape = None if plan.style is None else tuple(plan.style.shape)
            channels = ovbands.norm_channels(model, res, style_shape)
            painting, _ = ovbands.painted(
                core,
                config,
                model,
                photo,
                plan.style,
                channels,
                ovbands.TORCH_FREE_BAND_VALUES,
                recompute_upsampling=False,
            )
            del model, photo
        except ovbands.Unstreamable as exc:
            self.last_reason = f"bands cannot cut this network: {exc}"
            log.info("torch path for a big picture: %s", self.last_reason)
            return None
        except Exception as exc:
            self._failed(exc, "band IR")
            return None
        self.last_reason = None
        self.last_path = plan.path
        return _finish(picture, painting, strength, preserve_colors)

    def warm(self, style_ids: Sequence[str], size: tuple[int, int]) -> str | None:
        """Compile the IR that serves the most of `style_ids` at `size` (width, height)
        and run it once on a flat picture: a static compile's first pass costs about
        as much again as a warm one (first touch of its memory). Returns the IR's
        file name, or None when no style is ready here."""
        plans: dict[Path, tuple[int, ColdPlan]] = {}
        for style_id in style_ids:
            try:
                plan = self.plan(style_id, size)
            except EngineError:
                continue
            if isinstance(plan, ColdPlan) and not plan.bands:
                count = plans.get(plan.xml, (0, plan))[0]
                plans[plan.xml] = (count + 1, plan)
        if not plans:
            return None
        _, plan = max(plans.values(), key=lambda found: found[0])
        w, h = size
        x = np.full((1, 3, h, w), 128.0, dtype=np.float32)
        inputs = [x] if plan.style is None else [x, plan.style]
        compiled = self._compiled_model(plan.xml, plan.precision, x.shape, int8=plan.int8)
        request = compiled.create_infer_request()
        request.infer(inputs, share_inputs=True)
        del request
        return f"{plan.xml.parent.name}/{plan.xml.name}"

    # -- own styles -------------------------------------------------------------------
    def _own(self, style: OwnStyle, picture: Image.Image) -> ColdPlan | str:
        """An own style's plan with its style input: `own_style.build_network`'s vector
        (paintings through the predictor's IR, vectors mixed, the photo's own vector
        mixed in under strength 1), or why the torch path paints it."""
        found = self.own_plan(style, picture.size)
        if isinstance(found, str):
            return found
        plan, predictor = found
        shape = (1, 3, picture.height, picture.width)
        # The transfer network compiles for the photo's shape (≈ 0.2–0.3 s, one core)
        # while the predictor compiles and runs: on 2 cores that hides most of it.
        early = None
        if predictor is not None and not plan.bands:  # bands compile stage by stage
            early = threading.Thread(target=self._compile_quietly, args=(plan, shape))
            early.start()
        try:
            pairs: list[tuple[Sequence[float], float]] = [(v, w) for v, w in style.vectors]
            for painting, weight in style.paintings:
                pairs.append((self._painting_vector(predictor, painting), weight))
            vector = own_style.mix_vectors(pairs)
            if style.style_strength < 1.0:
                own = self._predict(predictor, own_style.painting_arrays(picture))
                vector = own_style.with_photo(vector, own, style.style_strength)
        finally:
            if early is not None:
                early.join()
        style_in = style_input("magenta", vector)
        if style_in is None:
            return "own style: no style input"
        return replace(plan, style=style_in)

    def _compile_quietly(self, plan: ColdPlan, shape: tuple[int, ...]) -> None:
        """`_compiled_model` ahead of time; a failure is met again, and reported, when
        `stylize` compiles it for real."""
        try:
            self._compiled_model(plan.xml, plan.precision, shape, int8=plan.int8)
        except Exception:
            log.debug("early compile of %s failed", plan.xml, exc_info=True)

    def _painting_vector(self, xml: Path | None, painting: Image.Image) -> list[float]:
        """A painting's vector: from the vector cache, else through the predictor's IR
        (and kept). The painting's refusals come first either way, as torch's."""
        own_style.check_painting(painting)
        if xml is None:  # `own_plan` returns one whenever the style needs it
            raise EngineError("Magenta's style predictor has no IR")
        made_by = f"{xml.parent.name}/{xml.name}|{PREDICTOR_PRECISION}|{own_style.PAINTING_FIT}"
        key = vector_cache.painting_key(painting, made_by)
        found = self.vectors.get(key)
        if found is not None:
            return found
        vector = self._predict(xml, own_style.painting_arrays(painting))
        self.vectors.put(key, vector)
        return vector

    def _predict(self, xml: Path | None, crops: np.ndarray) -> list[float]:
        """`own_style.predict_vector` through the predictor's IR: the crops' mean vector."""
        if xml is None:  # `own_plan` returns one whenever the style needs it
            raise EngineError("Magenta's style predictor has no IR")
        compiled = self._compiled_model(xml, PREDICTOR_PRECISION, crops.shape, predictor=True)
        # A request of our own, dropped after: `compiled(...)` would keep one, and with
        # it the predictor's activations, resident while the picture is painted.
        request = compiled.create_infer_request()
        vectors = np.array(request.infer([crops])[0], dtype=np.float32, copy=True)
        del request
        return [float(v) for v in vectors.mean(axis=0, dtype=np.float32)]

    def style_vector(self, painting: Image.Image) -> list[float] | None:
        """`Stylizer.style_vector`'s 100 numbers from the predictor's IR, or None (and
        `last_reason`) when it is not recorded yet, or the backend is not one this
        path serves (the torch path then computes it, as before)."""
        names = self._names()
        if isinstance(names, str):
            self.last_reason = names
            return None
        model = self.catalog.model(own_style.MAGENTA_MODEL)
        xml = self._predictor_xml(model) if self.store.is_present(model) else None
        if xml is None:
            self.last_reason = "Magenta's style predictor has no IR recorded yet"
            return None
        crops = own_style.painting_arrays(painting)
        try:
            vector = self._predict(xml, crops)
        except Exception as exc:  # a torn IR, an OpenVINO failure: the torch path mends it
            self.last_reason = f"OpenVINO failed: {type(exc).__name__}: {exc}"[:300]
            log.warning("cached predictor not served (%s); computing in torch", self.last_reason)
            return None
        self.last_reason = None
        return vector


def prune_blobs(folder: Path, limit: int) -> None:
    """Remove the oldest blobs of OpenVINO's model cache past `limit` bytes in all.

    OpenVINO never evicts, and a static compile writes one blob per picture shape.
    Another process may be removing the same files: a file already gone is skipped."""
    try:
        entries = [(e.stat().st_mtime, e.stat().st_size, Path(e.path)) for e in os.scandir(folder)]
    except FileNotFoundError:
        return
    blobs = sorted(e for e in entries if e[2].suffix == ".blob")
    total = sum(size for _, size, _ in blobs)
    for _, size, path in blobs:
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
