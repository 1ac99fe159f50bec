"""The engine's composition root: catalog, model store and Stylizer from one settings.

Every process that paints (the bot and its workers, the CLI, the playground, the
benchmarks) calls `open_engine(settings)` and nothing else builds these: a new
setting then reaches all of them at once, and no two parts of one process can
disagree about where the weights are. The settings are read by the command that
starts the process (`EngineSettings()`, or the bot's `Settings`, which extends it)
and passed here; nothing below reads the environment.

Importing this module, opening an engine, listing its styles and models load no
torch: commands that paint nothing stay fast, and a Celery parent that forks its
workers never holds torch's thread pools. The Stylizer, which imports torch, is
built on the first `Engine.stylizer()` call.

`Engine.paint` first tries `coldpath.ColdPainter`, which serves a catalog style or a
Magenta own style (a painting, or stored vectors) from the cached OpenVINO IRs with
numpy, Pillow and OpenVINO only, and builds the Stylizer only when that path
declines (first run, MSG-Net, tiles, another backend...). `Engine.style_vector`
does the same for a painting's style vector. The CLI paints through them, and so
do the bot's jobs (`bot.job_handler`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from totoshka.engine.backends import Runner, select_runner
from totoshka.engine.catalog import Catalog, load_catalog
from totoshka.engine.settings import EngineSettings
from totoshka.engine.store import ModelStore

if TYPE_CHECKING:
    from PIL import Image

    from totoshka.engine.coldpath import ColdPainter
    from totoshka.engine.mixing import StyleMix
    from totoshka.engine.own_style import OwnStyle
    from totoshka.engine.stylizer import Stylizer

DEFAULT_MAX_SIDE = 1280  # imageio.DEFAULT_MAX_SIDE (numpy, Pillow): tests keep them equal
# what `warm_up` compiles: the bot's default output size (a 4:3 photo at 1280), as
# `diagnose.PROBE_SIZE`; (width, height)
WARM_SIZE = (1280, 960)

__all__ = ["Engine", "EngineSettings", "open_engine", "runner_for"]


def runner_for(settings: EngineSettings, backend: str | None = None) -> Runner:
    """The inference runner the settings call for (`backend` overrides theirs): the
    converted models beside the weights, the operator's memory budget, and where
    conversions run."""
    return select_runner(
        backend or settings.backend,
        compiled_dir=settings.compiled_path(),
        memory_budget_mb=settings.memory_budget_mb,
        convert_in_process=settings.convert_in_process,
    )


class Engine:
    """One engine: the settings it was opened with, the catalog (built-in styles and
    the operator's own), the model store, and one Stylizer built on first use."""

    def __init__(self, settings: EngineSettings, catalog: Catalog, store: ModelStore) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self._lock = threading.Lock()
        self._stylizer: Stylizer | None = None
        self._cold: ColdPainter | None = None
        self.last_path: str | None = None  # what painted the last `paint` picture

    def __repr__(self) -> str:
        return f"Engine(cache={self.store.cache_dir}, data={self.store.data_dir})"

    def stylizer(self) -> Stylizer:
        """The engine's one Stylizer, built on the first call from any thread.

        Callers that may never paint (a bot before its first photo) can hold this
        bound method as their stylizer factory."""
        with self._lock:
            if self._stylizer is None:
                # torch is imported here, by the first caller that paints
                from totoshka.engine.stylizer import Stylizer

                self._stylizer = Stylizer(
                    self.catalog,
                    self.store,
                    runner=runner_for(self.settings),
                    own_style_engine=self.settings.own_style_engine,
                )
                # the bot's warm-up probes this Stylizer; it warms `paint`'s path too
                self._stylizer.serving_warm_up = self.warm_up
            return self._stylizer

    def cold_painter(self) -> ColdPainter:
        """The torch-free painter of cached IRs (`engine.coldpath`), built once."""
        with self._lock:
            if self._cold is None:
                from totoshka.engine.coldpath import ColdPainter

                self._cold = ColdPainter(self.settings, self.catalog, self.store)
            return self._cold

    def paint(
        self,
        image: Image.Image,
        style: str | StyleMix | OwnStyle,
        *,
        max_side: int | None = DEFAULT_MAX_SIDE,
        strength: float = 1.0,
        preserve_colors: bool = False,
    ) -> Image.Image:
        """`Stylizer.stylize`'s picture, from the cached IR without torch when it can be.

        For processes that paint a few pictures and exit (`totoshka stylize`): a warm
        cache then costs no torch import (seconds, ≈ 215 MB). `last_path` says what
        painted: ``openvino-bf16 (no torch)`` and the like, or the Stylizer's path."""
        cold = self.cold_painter()
        painted = cold.stylize(
            image, style, max_side=max_side, strength=strength, preserve_colors=preserve_colors
        )
        if painted is not None:
            self.last_path = f"{cold.last_path} (no torch)"
            return painted
        stylizer = self.stylizer()
        painted = stylizer.stylize(
            image, style, max_side=max_side, strength=strength, preserve_colors=preserve_colors
        )
        runner = stylizer.runner
        self.last_path = getattr(runner, "last_path", None) or getattr(runner, "name", None)
        return painted

    def warm_up(
        self, style_ids: Sequence[str] = (), size: tuple[int, int] = WARM_SIZE
    ) -> str | None:
        """Compile and run once, at `size`, the cached IR that `paint` would serve the
        most of `style_ids` with (all offered styles when empty; Magenta's also serves
        every own style), so that a bot's first job costs what a warm one does. Only
        what is cached already: nothing is converted or calibrated here. Returns the
        IR's file, or None when none is ready."""
        ids = list(style_ids) or [style_id for style_id, _ in self.offered_styles()]
        return self.cold_painter().warm(ids, size)

    def style_vector(self, painting: Image.Image) -> list[float]:
        """`Stylizer.style_vector` (a painting's 100 Magenta numbers), from the cached
        predictor IR without torch when it can be (`engine.coldpath`), else through
        the Stylizer, which records that IR for the next time it paints an own style."""
        vector = self.cold_painter().style_vector(painting)
        if vector is not None:
            return vector
        return self.stylizer().style_vector(painting)

    def offered_styles(self) -> list[tuple[str, dict[str, str]]]:
        """(id, titles) of the catalog styles whose weights can be had: in the cache,
        in a local mirror folder, or (no mirror, or a URL one) fetched on first use."""
        models = {m.id: self.store.obtainable(m) for m in self.catalog.models()}
        return [(s.id, dict(s.title)) for s in self.catalog.styles() if models[s.model]]

    def previews_dir(self) -> Path:
        """Where style previews are cached: beside the model cache (`.../previews`
        next to `.../models`), or inside a cache folder that has another name."""
        base = self.settings.cache_path()
        return base.parent / "previews" if base.name == "models" else base / "previews"


def open_engine(settings: EngineSettings) -> Engine:
    """The catalog (with the operator's styles from the data dir), the model store
    (cache, mirror, data dir) and a lazy Stylizer, as every process that paints
    builds them."""
    data = settings.data_path()
    catalog = load_catalog(data)
    store = ModelStore(
        cache_dir=settings.cache_path(),
        mirror=settings.model_mirror,
        data_dir=data,
        catalog=catalog,
    )
    return Engine(settings, catalog, store)
