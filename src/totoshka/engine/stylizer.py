"""The one entry point that turns a photo into a painting.

The CLI, the bot's workers and the benchmark all go through `Stylizer`, so a
style behaves the same everywhere. Networks are loaded on first use and kept in
a small LRU cache (loading is far slower than a warm inference, and a bot serves
the same few styles all day); the cache is guarded by a lock so worker threads
can share one Stylizer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from totoshka.engine import color
from totoshka.engine.backends import Runner, select_runner
from totoshka.engine.catalog import Catalog, Style, load_catalog
from totoshka.engine.errors import EngineError
from totoshka.engine.models.registry import load_network
from totoshka.engine.store import ModelStore

DEFAULT_MAX_SIDE = 1280


@dataclass(frozen=True)
class OwnStyle:
    """A style from the user's own painting(s), as Magenta style vectors.

    `vectors` pairs each painting's vector with its weight (mixing two paintings);
    `style_strength` < 1 mixes in the photo's own vector (Magenta's recipe).
    `paintings` pairs painting images with weights instead: MSG-Net needs them
    (its target is the painting's Gram matrix, not a vector); with Magenta their
    vectors are computed and mixed with `vectors`.
    `engine`: "magenta" or "msgnet" (operators who pulled 21styles.model); None:
    the operator's setting `TOTOSHKA_OWN_STYLE_ENGINE` (default magenta) when
    paintings are given, Magenta when there are only vectors (they are Magenta's).
    See `totoshka.engine.own_style`.
    """

    vectors: tuple[tuple[tuple[float, ...], float], ...] = ()
    style_strength: float = 1.0
    paintings: tuple[tuple[Image.Image, float], ...] = ()
    engine: str | None = None


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


def fit_within(image: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale (never upscale) so the longer side is at most `max_side`."""
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


class Stylizer:
    def __init__(
        self,
        catalog: Catalog | None = None,
        store: ModelStore | None = None,
        *,
        backend: str = "auto",
        cache_size: int = 4,
    ) -> None:
        self.catalog = catalog or load_catalog()
        self.store = store or ModelStore()
        self.runner: Runner = select_runner(backend)
        self._cache: OrderedDict[str, nn.Module] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._probe: Any = None

    def network(self, style_id: str) -> nn.Module:
        """The style's network, loaded once and kept while it is in use."""
        with self._lock:
            net = self._cache.get(style_id)
            if net is not None:
                self._cache.move_to_end(style_id)
                return net
        style: Style = self.catalog.style(style_id)
        model = self.catalog.model(style.model)
        folder = self.store.ensure(model)
        net = load_network(folder, model, style)
        with self._lock:
            self._cache[style_id] = net
            self._cache.move_to_end(style_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return net

    def startup_probe(self, style_ids: Sequence[str] = ()) -> Any:
        """Warm the runner and measure it once per Stylizer (`diagnose.startup_probe`):
        the line a bot or worker prints at start, and a warning if it falls back."""
        with self._probe_lock:
            if self._probe is None:
                from totoshka.engine.diagnose import startup_probe

                self._probe = startup_probe(self, style_ids)
            return self._probe

    def stylize(
        self,
        image: Image.Image,
        style: str | OwnStyle,
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
        if preserve_colors:
            painting = color.preserve_colors(photo, painting)
        return to_image(color.blend(photo, painting, strength))

    def own_style_network(self, style: OwnStyle, photo: Tensor) -> nn.Module:
        """The own-style network bound to `style` (and to `photo` for strength < 1)."""
        from totoshka.engine import own_style

        return own_style.build_network(self, style, photo)

    def style_vector(self, painting: Image.Image) -> list[float]:
        """The painting's 100-number Magenta style vector (what the bot stores)."""
        from totoshka.engine import own_style

        return own_style.style_vector(self, painting)


def build_stylizer(
    *,
    cache_dir: Path | str | None = None,
    mirror: str | None = None,
    data_dir: Path | str | None = None,
    backend: str = "auto",
) -> Stylizer:
    """The catalog (with the operator's own styles in `data_dir`), the model store and
    the Stylizer over them, as every process that paints builds them."""
    catalog = load_catalog(Path(data_dir)) if data_dir else load_catalog()
    store = ModelStore(cache_dir=cache_dir, mirror=mirror, data_dir=data_dir, catalog=catalog)
    return Stylizer(catalog, store, backend=backend)
