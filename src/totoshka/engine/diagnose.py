"""What serves on this machine, measured: `totoshka doctor` and the start-up line.

An operator who follows the README must be able to see, without reading logs,
whether the fast path serves. Before this module existed a missing package
(`packaging`, imported by OpenVINO's PyTorch front end) quietly turned every
OpenVINO conversion off and `auto` served eager fp32 at a fifth of the speed.

Both reports stylize the package's own sample photo (`totoshka.assets`) scaled to
1280×960 — the bot's default output size — through the Stylizer's real runner,
so what they say is what a job gets:

- `startup_probe`: one built-in style, one warm-up and one timed run; a line
  such as ``inference: openvino-bf16 (AMX), ml5 0.52 s at 1280x960`` and, when the
  runner serves a slower path than the machine supports, one warning naming the
  reason and the fix. Running it also warms the path (conversion, compilation)
  before the first job. Measured once per Stylizer: later calls (another bot part
  asking) get the first probe. The probe is kept here, not on the Stylizer, so the
  Stylizer does not depend on its own diagnosis.
- `family_reports`: per family (ml5, pytorch, magenta) the runner that serves, its
  steady time (the best of two runs), its PSNR against eager fp32 at that size,
  and every candidate path with why it was rejected and how to fix it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from totoshka.assets import sample_photo
from totoshka.engine.backends.auto import PathReport, fix_for
from totoshka.engine.backends.hardware import cuda_available
from totoshka.engine.backends.quality import psnr, reference
from totoshka.engine.catalog import Model
from totoshka.engine.cold_probe import (
    PREFERRED_STYLE,
    PROBE_SIZE,
    StartupProbe,
    cpu_label,
    pick_style,
    probe_image,
)
from totoshka.engine.factory import open_engine
from totoshka.engine.own_style import style_vector
from totoshka.engine.settings import EngineSettings
from totoshka.engine.stylizer import Stylizer

FAMILY_ORDER = ("ml5", "pytorch", "magenta")


def probe_picture(size: tuple[int, int] = PROBE_SIZE) -> Tensor:
    """The sample photo covering `size` (scaled, centre-cropped), float32 NCHW 0..255."""
    array = np.asarray(probe_image(size), dtype=np.float32)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


def hardware_label() -> str:
    """What makes the served path fast here, in a word or two (for the start-up line)."""
    if cuda_available():
        return torch.cuda.get_device_name(0)
    return cpu_label()


def _served(runner: Any) -> str:
    return str(getattr(runner, "last_path", None) or getattr(runner, "name", "?"))


def _paths(runner: Any, net: nn.Module, x: Tensor) -> list[PathReport]:
    explain = getattr(runner, "explain", None)
    return list(explain(net, x)) if explain is not None else []


def fallback_warning(served: str, expected: str | None, paths: Sequence[PathReport]) -> str | None:
    """One warning when a slower path serves than this machine supports (else None)."""
    if expected is None or served == expected:
        return None
    why = next((p for p in paths if p.path == expected), None)
    reason = why.reason if why is not None and why.reason else "not among the candidates"
    fix = why.fix if why is not None and why.fix else fix_for(reason)
    return (
        f"inference falls back to {served}, slower than {expected} which this machine "
        f"supports: {expected}: {reason}; fix: {fix}"
    )


@dataclass
class FamilyReport:
    family: str
    network: str
    served_by: str | None = None
    ms: float | None = None
    psnr_db: float | None = None
    eager_ms: float | None = None
    paths: list[PathReport] = field(default_factory=list)
    warning: str | None = None
    error: str | None = None


def _timed(run: Callable[[], Tensor], clock: Callable[[], float]) -> tuple[Tensor, float]:
    t0 = clock()
    out = run()
    return out, clock() - t0


log = logging.getLogger(__name__)

# the first probe of each Stylizer (a bot's parts may each ask for it)
_probes: weakref.WeakKeyDictionary[Stylizer, StartupProbe] = weakref.WeakKeyDictionary()
_probes_lock = threading.Lock()


def startup_probe(
    stylizer: Stylizer,
    style_ids: Sequence[str] = (),
    *,
    clock: Callable[[], float] = time.perf_counter,
    serving: bool = True,
) -> StartupProbe:
    """Warm and measure the runner on one built-in style (`style_ids` first, ml5 wave
    preferred), once per Stylizer: a later call returns the first probe. Never
    raises: a probe that cannot run says why in its line.

    `serving`: also warm what will serve the first job, where the Stylizer's engine
    gave it a `serving_warm_up` (`Engine.warm_up`: the torch-free path's model for the
    bot's default size, compiled and run once). A bot's first job otherwise paid that
    compile and first pass itself (issue 13: 1.4–2.6× a warm job). A process that
    only measures (the worker host's child in `main`) passes False."""
    with _probes_lock:  # held while measuring: a second caller waits for the first probe
        probe = _probes.get(stylizer)
        if probe is None:
            probe = _probes[stylizer] = measure_startup(stylizer, style_ids, clock=clock)
            warm = getattr(stylizer, "serving_warm_up", None)
            if serving and warm is not None:
                try:
                    warm(style_ids)
                except Exception as exc:  # the first job then pays it, as before
                    log.warning("serving path not warmed: %s: %s", type(exc).__name__, exc)
        return probe


def measure_startup(
    stylizer: Stylizer,
    style_ids: Sequence[str] = (),
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> StartupProbe:
    """`startup_probe` without the memory: measure now."""
    runner = stylizer.runner
    try:
        style_id = _pick_style(stylizer, style_ids)
        net = stylizer.network(style_id)
        family = stylizer.catalog.model(stylizer.catalog.style(style_id).model).family
        x = probe_picture()
        quietly = getattr(runner, "quietly", None)  # the probe's warning is the one warning
        with torch.inference_mode(), quietly() if quietly else contextlib.nullcontext():
            runner.run(net, x)  # converts and compiles on a cold cache
            # and says which IR serves the style, so the next start measures, and
            # its jobs paint, without torch (`engine.cold_probe`, `engine.coldpath`)
            stylizer.record_ir(style_id, net)
            _, seconds = _timed(lambda: runner.run(net, x), clock)
            served = _served(runner)
            paths = _paths(runner, net, x)
    except Exception as exc:
        return StartupProbe(f"inference: not measured ({type(exc).__name__}: {exc})"[:300])
    w, h = PROBE_SIZE
    line = f"inference: {served} ({hardware_label()}), {family} {seconds:.2f} s at {w}x{h}"
    warning = fallback_warning(served, getattr(runner, "expected", None), paths)
    return StartupProbe(line, warning, served, seconds)


def _pick_style(stylizer: Stylizer, style_ids: Sequence[str]) -> str:
    return pick_style(stylizer.catalog, style_ids)


def family_reports(
    stylizer: Stylizer,
    *,
    quality: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> list[FamilyReport]:
    """One report per model family whose weights are present (nothing is downloaded)."""
    catalog, store = stylizer.catalog, stylizer.store
    reports: list[FamilyReport] = []
    x = probe_picture()
    for family in FAMILY_ORDER:
        models = [m for m in catalog.models() if m.family == family and store.is_present(m)]
        if not models:
            continue
        try:
            net, name = _family_network(stylizer, family, models)
        except Exception as exc:
            reports.append(FamilyReport(family, "?", error=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        reports.append(_report(stylizer.runner, family, name, net, x, quality, clock))
    return reports


def _family_network(stylizer: Stylizer, family: str, models: list[Model]) -> tuple[nn.Module, str]:
    catalog = stylizer.catalog
    if family == "magenta":
        # an own style, through the Stylizer's own networks (and its cache)
        vector = style_vector(stylizer.own_styles, sample_photo())
        return stylizer.own_styles.bound(vector), "own style (a painting's vector)"
    ids = [s.id for m in models for s in catalog.styles_of(m.id)]
    style_id = PREFERRED_STYLE if PREFERRED_STYLE in ids else ids[0]
    return stylizer.network(style_id), style_id


def _report(
    runner: Any,
    family: str,
    name: str,
    net: nn.Module,
    x: Tensor,
    quality: bool,
    clock: Callable[[], float],
) -> FamilyReport:
    report = FamilyReport(family, name)
    try:
        with torch.inference_mode():
            runner.run(net, x)  # warm-up
            out, first = _timed(lambda: runner.run(net, x), clock)
            _, second = _timed(lambda: runner.run(net, x), clock)
            report.served_by = _served(runner)
            report.ms = round(1000 * min(first, second), 1)
            if quality:
                ref, eager_s = _timed(lambda: reference(net, x), clock)
                report.psnr_db = round(min(psnr(out, ref), 999.0), 1)
                report.eager_ms = round(1000 * eager_s, 1)
        report.paths = _paths(runner, net, x)
        report.warning = fallback_warning(
            report.served_by, getattr(runner, "expected", None), report.paths
        )
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"[:300]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m totoshka.engine.diagnose``: the start-up line of a process that must
    not hold torch or OpenVINO itself (a Celery worker's parent forks its children:
    threads of a compiled model do not survive a fork). Warms the disk caches the
    children then read (IRs, calibration verdicts).

    This is the child's composition root: its settings are the operator's
    (environment, .env) with the parent's paths given as options on top."""
    parser = argparse.ArgumentParser(prog="python -m totoshka.engine.diagnose")
    parser.add_argument("--cache-dir")
    parser.add_argument("--mirror")
    parser.add_argument("--data-dir")
    parser.add_argument("--style", action="append", default=[])
    args = parser.parse_args(argv)
    given = {"cache_dir": args.cache_dir, "model_mirror": args.mirror, "data_dir": args.data_dir}
    settings = EngineSettings(**{k: v for k, v in given.items() if v})
    probe = startup_probe(open_engine(settings).stylizer(), args.style, serving=False)
    print(probe.line, file=sys.stderr, flush=True)
    if probe.warning:
        print(f"warning: {probe.warning}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
