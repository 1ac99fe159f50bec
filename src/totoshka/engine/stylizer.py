"""The one entry point that turns a photo into a painting.

The CLI, the bot's workers and the benchmark all go through `Stylizer`, so a
style behaves the same everywhere. Build it through the engine's factory
(`totoshka.engine.factory.open_engine(settings).stylizer()`), which gives it the
catalog, the store and the runner the operator's settings call for.

Networks are loaded on first use and kept in a small LRU cache, the engine's only
cache of networks (loading is far slower than a warm inference, and a bot serves
the same few styles all day). It holds the catalog styles' networks by style id
and the own styles' shared ones (Magenta's predictor and transfer network, MSG-Net)
by `own_style` keys such as ``magenta:predictor``. The cache is guarded by a lock
so worker threads can share one Stylizer.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from totoshka.engine import color, own_style, paths
from totoshka.engine.backends import Runner, select_runner
from totoshka.engine.backends.ovsources import predictor_key, shared_key, source_key
from totoshka.engine.catalog import Catalog, Style
from totoshka.engine.errors import EngineError
from totoshka.engine.frames import FramePainter
from totoshka.engine.imageio import DEFAULT_MAX_SIDE, fit_within
from totoshka.engine.mixing import StyleMix, mixed_style
from totoshka.engine.models.registry import load_network
from totoshka.engine.own_style import OwnStyle, OwnStyleNetworks
from totoshka.engine.store import ModelStore

__all__ = [
    "DEFAULT_MAX_SIDE",
    "OwnStyle",
    "StyleMix",
    "Stylizer",
    "fit_within",
    "to_image",
    "to_tensor",
]

log = logging.getLogger(__name__)

# Catalog styles a bot keeps warm, plus the two Magenta networks every own style
# needs (predictor and transfer network); MSG-Net's takes a style's place when used.
DEFAULT_CACHE_SIZE = 6
OWN_KEY = "own:magenta"  # `_recorded`'s entry for the own styles' two networks


def to_tensor(image: Image.Image) -> Tensor:
    """float32 NCHW 0..255; one strided copy from the image's bytes (a GPU host
    converts dozens of photos a second on its CPU, in parallel threads)."""
    array = np.array(image.convert("RGB"))  # writable (np.asarray's view is not)
    x = torch.empty((1, 3, array.shape[0], array.shape[1]), dtype=torch.float32)
    x[0].copy_(torch.from_numpy(array).permute(2, 0, 1))
    return x


def to_image(x: Tensor) -> Image.Image:
    """Round to 8 bits and lay out as HWC in one strided copy."""
    rounded = x[0].detach().cpu().clamp(0, 255).add_(0.5)
    array = torch.empty((x.shape[2], x.shape[3], 3), dtype=torch.uint8)
    array.copy_(rounded.permute(1, 2, 0))  # float -> uint8 truncates: round half up
    return Image.fromarray(array.numpy(), "RGB")


class Stylizer:
    """Paints photos with catalog styles and own styles through one runner.

    `runner`: the inference path (the factory builds it from the settings); without
    one, `select_runner(backend)` with the converted models beside the store's
    weights. `own_style_engine`: the operator's engine for own styles given as
    paintings (`EngineSettings.own_style_engine`).
    """

    def __init__(
        self,
        catalog: Catalog,
        store: ModelStore,
        *,
        backend: str = "auto",
        runner: Runner | None = None,
        own_style_engine: str = own_style.DEFAULT_ENGINE,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.runner: Runner = (
            runner
            if runner is not None
            else select_runner(backend, compiled_dir=paths.compiled_dir(store.cache_dir))
        )
        self._cache: OrderedDict[str, nn.Module] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._recorded: set[str] = set()  # styles whose IR `record_ir` has seen to
        # what `diagnose.startup_probe` also warms: the engine's serving path (set by
        # `Engine.stylizer` to `Engine.warm_up`; None for a Stylizer built alone)
        self.serving_warm_up: Callable[[Sequence[str]], object] | None = None
        self.own_styles = OwnStyleNetworks(
            catalog,
            store,
            cache=self.cached,
            default_engine=own_style.check_engine(own_style_engine),
        )

    def cached(self, key: str, load: Callable[[], nn.Module]) -> nn.Module:
        """The network kept under `key`, or `load()`'s, kept from now on (LRU).

        Two threads missing the same key may both load it; the first one kept wins,
        so every caller gets the same network object (the runners key their compiled
        models and verdicts by it)."""
        with self._lock:
            net = self._cache.get(key)
            if net is not None:
                self._cache.move_to_end(key)
                return net
        net = load()
        with self._lock:
            kept = self._cache.setdefault(key, net)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return kept

    def network(self, style_id: str | StyleMix) -> nn.Module:
        """The style's network (a mix's: the shared network bound to the mixed
        vector), loaded once and kept while it is in use."""

        def load() -> nn.Module:
            style: Style = (
                mixed_style(self.catalog, style_id)
                if isinstance(style_id, StyleMix)
                else self.catalog.style(style_id)
            )
            model = self.catalog.model(style.model)
            return load_network(self.store.ensure(model), model, style)

        return self.cached(style_id.key if isinstance(style_id, StyleMix) else style_id, load)

    def stylize(
        self,
        image: Image.Image,
        style: str | StyleMix | OwnStyle,
        *,
        max_side: int | None = DEFAULT_MAX_SIDE,
        strength: float = 1.0,
        preserve_colors: bool = False,
    ) -> Image.Image:
        if not 0.0 <= strength <= 1.0:
            raise EngineError("strength must be between 0 and 1")
        photo = to_tensor(fit_within(image, max_side))
        if isinstance(style, OwnStyle):
            net = self.own_style_network(style, photo)
        else:
            net = self.network(style)
        painting = self.runner.run(net, photo)
        if isinstance(style, OwnStyle):
            self._record_own(net)
        else:
            self.record_ir(style, net)
        if preserve_colors:
            painting = color.preserve_colors(photo, painting)
        return to_image(color.blend(photo, painting, strength))

    def record_ir(self, style: str | StyleMix, net: nn.Module) -> None:
        """Once OpenVINO has served a catalog style, record which IR and verdicts its
        files map to (`backends.ovsources`), so that the next process paints it
        without importing torch (`engine.coldpath`). Once per style and process;
        a failure here costs the next process its speed, never this picture."""
        key = style.key if isinstance(style, StyleMix) else style
        served = getattr(self.runner, "last_path", None) or getattr(self.runner, "name", "")
        if key in self._recorded or not str(served).startswith("openvino"):
            return
        self._recorded.add(key)
        ov_runner = getattr(self.runner, "last_runner", None) or self.runner
        try:
            from totoshka.engine.backends.openvino import remember_source

            record = (
                mixed_style(self.catalog, style)
                if isinstance(style, StyleMix)
                else self.catalog.style(style)
            )
            model = self.catalog.model(record.model)
            source = source_key(self.store, model, record)
            if source is None:
                return
            root = getattr(ov_runner, "cache_dir", None) or paths.compiled_dir()
            remember_source(root, source, model.family, net, record.vector)
        except Exception as exc:
            log.warning("could not record the IR of style %s: %s", key, exc)

    def _record_own(self, net: nn.Module) -> None:
        """Once OpenVINO has served an own Magenta style, record both of its networks
        for `engine.coldpath`: the transfer network (shared with the catalog's
        presets; the vector is an input) and the style predictor, converted to an IR
        here once per cache (seconds, in a child process), so that the next process
        turns a painting into a picture without torch. Once per process; a failure
        costs the next process its speed, never this picture."""
        served = getattr(self.runner, "last_path", None) or getattr(self.runner, "name", "")
        style = getattr(net, "style", None)
        if OWN_KEY in self._recorded or not str(served).startswith("openvino"):
            return
        if not isinstance(style, Tensor) or getattr(net, "family", None) != "magenta":
            return  # MSG-Net: its target is a Gram matrix, the cold path does not serve it
        self._recorded.add(OWN_KEY)
        ov_runner = getattr(self.runner, "last_runner", None) or self.runner
        try:
            from totoshka.engine.backends.openvino import remember_predictor, remember_source

            model = self.catalog.model(own_style.MAGENTA_MODEL)
            root = getattr(ov_runner, "cache_dir", None) or paths.compiled_dir()
            shared = shared_key(self.store, model)
            if shared is not None:
                vector = style.detach().cpu().contiguous().numpy()
                remember_source(root, shared, model.family, net, vector)
            predictor = predictor_key(self.store, model)
            if predictor is not None:
                remember_predictor(
                    root,
                    predictor,
                    self.own_styles.predictor,
                    side=own_style.PREDICTOR_SIZE,
                    convert_in_process=bool(getattr(ov_runner, "convert_in_process", False)),
                )
        except Exception as exc:
            log.warning("could not record the IRs of own styles: %s", exc)

    def frame_painter(
        self,
        style: str | StyleMix | OwnStyle,
        *,
        strength: float = 1.0,
        preserve_colors: bool = False,
        stats_frames: Sequence[np.ndarray] | None = None,
    ) -> FramePainter:
        """Paint a clip's frames (HWC uint8 RGB) as photos are, one network per clip;
        with `stats_frames`, with their pooled norm statistics (see `engine.frames`)."""
        return FramePainter(
            self,
            style,
            strength=strength,
            preserve_colors=preserve_colors,
            stats_frames=stats_frames,
        )

    def own_style_network(self, style: OwnStyle, photo: Tensor) -> nn.Module:
        """The own-style network bound to `style` (and to `photo` for strength < 1)."""
        return own_style.build_network(self.own_styles, style, photo)

    def style_vector(self, painting: Image.Image) -> list[float]:
        """The painting's 100-number Magenta style vector (what the bot stores)."""
        return own_style.style_vector(self.own_styles, painting)
