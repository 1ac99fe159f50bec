"""The bot's start-up line measured on the torch-free path, when the caches serve it.

Why: the start-up probe (`diagnose.startup_probe`) builds a network and runs it
through the Stylizer's runner, so a bot that had every IR and verdict on disk
imported torch and kept it resident (≈ 1.25 GB of RSS against ≈ 0.5 GB) only to
print one line, while its jobs paint through `Engine.paint` without torch. Here
the same line (``inference: openvino-bf16 (AVX512-BF16), ml5 0.52 s at 1280x960``)
comes from `engine.coldpath`: the same style pick, the same picture and size, one
warm-up and one timed run of what a job will get.

It answers None, and the caller runs the torch probe, whenever that one has
something to do or to say: a cold cache (it converts and calibrates), a machine
that might have a GPU, or a path that is not the fastest this machine supports
(its warning explains why, from the torch runner's reports).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from totoshka.assets import sample_photo_covering
from totoshka.engine.backends import hardware
from totoshka.engine.catalog import Catalog
from totoshka.engine.errors import EngineError

if TYPE_CHECKING:
    from totoshka.engine.factory import Engine

PROBE_SIZE = (1280, 960)  # width, height: the bot's default output size
PREFERRED_STYLE = "wave"


@dataclass
class StartupProbe:
    line: str
    warning: str | None = None
    served_by: str | None = None
    seconds: float | None = None


def probe_image(size: tuple[int, int] = PROBE_SIZE) -> Image.Image:
    """The sample photo covering `size` (scaled, centre-cropped)."""
    return sample_photo_covering(size)


def pick_style(catalog: Catalog, style_ids: Sequence[str]) -> str:
    """The probe's style: a built-in network's (not Magenta's shared one), wave first."""
    builtin = [s.id for s in catalog.styles() if catalog.model(s.model).family != "magenta"]
    ordered = [s for s in style_ids if s in builtin] or builtin
    if not ordered:
        raise EngineError("no built-in style in the catalog")
    return PREFERRED_STYLE if PREFERRED_STYLE in ordered else ordered[0]


def cpu_label() -> str:
    """What makes the served CPU path fast here, in a word or two."""
    flags = hardware.cpu_info().flags
    for flag, label in (
        ("amx_bf16", "AMX"),
        ("avx512_bf16", "AVX512-BF16"),
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
    ):
        if flag in flags:
            return label
    return hardware.cpu_info().model


def cold_startup_probe(
    engine: Engine,
    style_ids: Sequence[str] = (),
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> StartupProbe | None:
    """The start-up line from the torch-free path, or None when the torch probe must
    run (see the module docstring)."""
    painter = engine.cold_painter()
    try:
        style_id = pick_style(engine.catalog, style_ids)
    except EngineError:
        return None
    plan = painter.plan(style_id, PROBE_SIZE)
    if isinstance(plan, str):
        return None
    expected = hardware.supported_paths(engine.settings.backend == "best")
    if not expected or plan.path != expected[0]:
        return None
    picture = probe_image()
    if painter.stylize(picture, style_id) is None:  # compiles; a failure: torch mends it
        return None
    t0 = clock()
    if painter.stylize(picture, style_id) is None:
        return None
    seconds = clock() - t0
    family = engine.catalog.model(engine.catalog.style(style_id).model).family
    w, h = PROBE_SIZE
    line = f"inference: {plan.path} ({cpu_label()}), {family} {seconds:.2f} s at {w}x{h}"
    return StartupProbe(line, None, plan.path, seconds)
