"""`auto` and `best`: the fastest path that keeps the picture, per model, with a floor.

Candidates come in the order measured for this kind of CPU (benchmarks/):
with fast bf16 (AMX / AVX512-BF16) OpenVINO bf16 first, then eager bf16; on
other x86 OpenVINO fp32; eager fp32 always last. On first use of a candidate
for a model (and for each compiled variant of it), the candidate and eager fp32
stylize a calibration picture cut from the photo being served: the candidate
serves only if its PSNR reaches the floor (35 dB for `auto`, 50 dB for `best`)
and it is not slower than fp32 there. Each is timed `TIMINGS` times, interleaved,
and the minima are compared: one timing on a busy machine says more about the
machine than about the path. A rejected candidate is logged with the reason and
the next one is tried.

Verdicts live in `<cache>/compiled/verdicts.json` (`verdicts.VerdictStore`): kept
per environment (torch, OpenVINO, Totoshka and every installed package's version),
rejections re-checked after a day. A path that could not even be built (its
package missing) is remembered in `unavailable`, so `totoshka doctor` and the
start-up line can say what to install.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from totoshka.engine.backends.eager import BUDGET, EagerRunner
from totoshka.engine.backends.hardware import supported_paths
from totoshka.engine.backends.limits import MIN_CALIBRATION_SIDE
from totoshka.engine.backends.quality import (
    DEFAULT_FLOOR_DB,
    calibration_picture,
    psnr,
    reference,
)
from totoshka.engine.backends.verdicts import SLOWER_FACTOR, VerdictStore
from totoshka.engine.backends.verdicts import reason as verdict_reason

log = logging.getLogger(__name__)

TIMINGS = 3  # timed runs of the candidate and of fp32 each, interleaved; minima compared
# MIN_CALIBRATION_SIDE, SLOWER_FACTOR and `supported_paths` live in torch-free modules
# (limits, verdicts, hardware) so the cold path decides as `auto` does; re-exported here.
__all__ = [
    "MIN_CALIBRATION_SIDE",
    "SLOWER_FACTOR",
    "TIMINGS",
    "AutoRunner",
    "PathReport",
    "fix_for",
    "supported_paths",
]


def fix_for(reason: str) -> str:
    """What an operator can do about a rejected or unavailable path, in one line."""
    missing = re.search(r"No module named '([\w.]+)'|import of ([\w.]+) halted", reason)
    if missing:
        package = (missing.group(1) or missing.group(2)).split(".")[0]
        if package == "openvino":
            return "install OpenVINO: bash scripts/setup.sh (or pip install 'totoshka[fast]')"
        return f"install {package}: pip install {package} (bash scripts/setup.sh brings it)"
    if "slower than eager" in reason:
        return "timed on a busy machine? `totoshka doctor --recalibrate` measures again"
    if "floor" in reason:
        return "this path loses too much quality on this model; nothing to fix"
    return "see the log; `totoshka doctor --recalibrate` tries again"


def _variant(runner: Any, x: Tensor) -> Hashable:
    fn: Callable[[Tensor], Hashable] | None = getattr(runner, "variant", None)
    return fn(x) if fn is not None else None


@dataclass(frozen=True)
class PathReport:
    """One candidate's standing for a model: serves, rejected (why, what to do), or unused."""

    path: str
    status: str  # "serves", "rejected", "unavailable", "not needed", "fallback"
    reason: str | None = None
    fix: str | None = None
    psnr_db: float | None = None
    s: float | None = None
    fp32_s: float | None = None


class AutoRunner:
    """Serves each model with the first candidate that passes the quality floor."""

    def __init__(
        self,
        candidates: list[Any],
        floor_db: float = DEFAULT_FLOOR_DB,
        *,
        name: str = "auto",
        verdict_file: Path | None = None,
        verdicts: VerdictStore | None = None,
        max_pixels: int | str | None = BUDGET,
        memory_budget_mb: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        unavailable: dict[str, str] | None = None,
        expected: str | None = None,
    ) -> None:
        self.name = name
        self.candidates = candidates
        self.floor_db = floor_db
        self.fallback = EagerRunner(max_pixels=max_pixels, memory_budget_mb=memory_budget_mb)
        self.verdicts = verdicts if verdicts is not None else VerdictStore(verdict_file)
        self.clock = clock
        # paths this machine supports whose runner could not be built: name -> why
        self.unavailable = dict(unavailable or {})
        # the path this machine should serve when everything is installed (doctor, warnings)
        self.expected = expected
        self._warned: set[str] = set()
        self._quiet = 0
        self._net_keys: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.last_path: str | None = None  # which path served the last call (bench, logs)
        self.last_runner: Any = None

    def _key(self, net: nn.Module, runner: Any, x: Tensor) -> str:
        from totoshka.engine.backends.openvino import weights_key

        keyed = getattr(net, "shared_network", net)  # style-bound nets share a verdict
        with self._lock:
            key = self._net_keys.get(keyed)
            if key is None:
                key = self._net_keys[keyed] = weights_key(keyed)
        return f"{key}/{runner.name}/{_variant(runner, x)}"

    def _measure(self, runner: Any, probe: nn.Module, calib: Tensor) -> dict[str, Any]:
        runner.run(probe, calib)  # warm-up: compiles, converts
        ref = reference(probe, calib)
        out: Tensor | None = None
        times: list[float] = []
        fp32_times: list[float] = []
        for _ in range(TIMINGS):  # interleaved, so a busy spell hits both alike
            t0 = self.clock()
            out = runner.run(probe, calib)
            t1 = self.clock()
            reference(probe, calib)
            t2 = self.clock()
            times.append(t1 - t0)
            fp32_times.append(t2 - t1)
        assert out is not None
        verdict: dict[str, Any] = {
            "psnr": round(psnr(out, ref), 2),
            "s": min(times),
            "fp32_s": min(fp32_times),
        }
        verdict["rejected"] = verdict["s"] > SLOWER_FACTOR * verdict["fp32_s"]
        return verdict

    def check(self, net: nn.Module, runner: Any, x: Tensor) -> dict[str, Any]:
        """Run (or recall) the calibration of `runner` on `net` for pictures like `x`."""
        key = self._key(net, runner, x)
        found = self.verdicts.get(key)
        if found is not None:
            return found
        verdict: dict[str, Any]
        try:
            res = _variant(runner, x)
            calib = calibration_picture(x, res if isinstance(res, tuple) else (0, 0))
            probe = getattr(net, "calibration_network", net)  # one picture, one style
            verdict = self._measure(runner, probe, calib)
        except Exception as exc:  # a path that cannot run this model is no path for it
            verdict = {"psnr": 0.0, "error": f"{type(exc).__name__}: {exc}"[:300], "rejected": True}
        return self.verdicts.put(key, verdict)

    def reason(self, verdict: dict[str, Any]) -> str | None:
        """Why `verdict` keeps its path from serving under this runner's floor (None: it serves)."""
        return verdict_reason(verdict, self.floor_db)

    def choose(self, net: nn.Module, x: Tensor) -> Any:
        if min(x.shape[-2:]) < MIN_CALIBRATION_SIDE:
            return self.fallback  # too small to calibrate on, and fast in fp32 anyway
        for runner in self.candidates:
            handles = getattr(runner, "handles", None)
            if handles is not None and not handles(x):
                continue
            reason = self.reason(self.check(net, runner, x))
            if reason is None:
                return runner
            self._warn_once(net, runner, x, reason)
        return self.fallback

    def explain(self, net: nn.Module, x: Tensor) -> list[PathReport]:
        """Every path this machine supports, for `net` on pictures like `x`: which one
        serves and why each one before it does not (what `totoshka doctor` shows)."""
        reports: list[PathReport] = []
        chosen = False
        for name, why in self.unavailable.items():
            reports.append(PathReport(name, "unavailable", why, fix_for(why)))
        for runner in self.candidates:
            if chosen:
                reports.append(PathReport(runner.name, "not needed"))
                continue
            handles = getattr(runner, "handles", None)
            if handles is not None and not handles(x):
                reports.append(PathReport(runner.name, "rejected", "picture size not handled"))
                continue
            verdict = self.check(net, runner, x)
            reason = self.reason(verdict)
            if reason is None:
                chosen = True
            reports.append(
                PathReport(
                    runner.name,
                    "serves" if reason is None else "rejected",
                    reason,
                    fix_for(reason) if reason else None,
                    verdict.get("psnr"),
                    verdict.get("s"),
                    verdict.get("fp32_s"),
                )
            )
        reports.append(PathReport(self.fallback.name, "not needed" if chosen else "serves"))
        return reports

    def _warn_once(self, net: nn.Module, runner: Any, x: Tensor, reason: str) -> None:
        """One warning per path and reason in a process (not per model or variant), and
        none while `quietly()`: the start-up line then gives the one warning itself."""
        key = f"{runner.name}: {reason}"
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
            quiet = self._quiet > 0
        log.log(
            logging.INFO if quiet else logging.WARNING,
            "backend %s not used for %s: %s (fix: %s)",
            runner.name,
            type(net).__name__,
            reason,
            fix_for(reason),
        )

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Rejections are logged at INFO inside (and not again after): for a caller that
        reports them itself, such as the start-up probe."""
        with self._lock:
            self._quiet += 1
        try:
            yield
        finally:
            with self._lock:
                self._quiet -= 1

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        runner = self.choose(net, x)
        self.last_path, self.last_runner = runner.name, runner
        return runner.run(net, x)

    def run_batch(self, net: nn.Module, xs: list[Tensor]) -> list[Tensor]:
        """Same-size pictures go to the chosen path together (GPU batches)."""
        if len(xs) > 1 and all(x.shape == xs[0].shape for x in xs):
            runner = self.choose(net, xs[0])
            self.last_path, self.last_runner = runner.name, runner
            batched = getattr(runner, "run_batch", None)
            if batched is not None:
                return list(batched(net, xs))
        return [self.run(net, x) for x in xs]
