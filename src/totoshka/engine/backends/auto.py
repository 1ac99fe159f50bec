"""`auto` and `best`: the fastest path that keeps the picture, per model, with a floor.

Candidates come in the order measured for this kind of CPU (benchmarks/):
with fast bf16 (AMX / AVX512-BF16) OpenVINO bf16 first, then eager bf16; on
other x86 OpenVINO fp32; eager fp32 always last. On first use of a candidate
for a model (and for each compiled variant of it), the candidate and eager fp32
stylize a calibration picture cut from the photo being served: the candidate
serves only if its PSNR reaches the floor (35 dB for `auto`, 50 dB for `best`)
and it is not slower than fp32 there. A rejected candidate is logged with the
reason and the next one is tried. Verdicts are kept per weights hash in
`<cache>/compiled/verdicts.json`, so a restart does not check again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from totoshka.engine.backends.eager import BUDGET, EagerRunner
from totoshka.engine.backends.hardware import cpu_info, openvino_available
from totoshka.engine.backends.quality import (
    DEFAULT_FLOOR_DB,
    calibration_picture,
    psnr,
    reference,
)

log = logging.getLogger(__name__)

MIN_CALIBRATION_SIDE = 32


def candidate_names(best: bool = False) -> list[str]:
    """The measured preference order for this CPU (see benchmarks/results)."""
    names: list[str] = []
    fast_bf16 = cpu_info().fast_bf16
    if openvino_available():
        names.append("openvino-bf16" if fast_bf16 else "openvino-fp32")
        if best and fast_bf16:
            names.append("openvino-fp32")
    if fast_bf16:
        names.append("torch-bf16")
    return names


def _variant(runner: Any, x: Tensor) -> Hashable:
    fn: Callable[[Tensor], Hashable] | None = getattr(runner, "variant", None)
    return fn(x) if fn is not None else None


class AutoRunner:
    """Serves each model with the first candidate that passes the quality floor."""

    def __init__(
        self,
        candidates: list[Any],
        floor_db: float = DEFAULT_FLOOR_DB,
        *,
        name: str = "auto",
        verdict_file: Path | None = None,
        max_pixels: int | str | None = BUDGET,
    ) -> None:
        self.name = name
        self.candidates = candidates
        self.floor_db = floor_db
        self.fallback = EagerRunner(max_pixels=max_pixels)
        self.verdict_file = verdict_file
        self._verdicts: dict[str, dict[str, Any]] = {}
        self._warned: set[str] = set()
        self._net_keys: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.last_path: str | None = None  # which path served the last call (bench, logs)
        self.last_runner: Any = None
        if verdict_file is not None:
            try:
                self._verdicts = json.loads(verdict_file.read_text())
            except (OSError, ValueError):
                self._verdicts = {}

    def _key(self, net: nn.Module, runner: Any, x: Tensor) -> str:
        from totoshka.engine.backends.openvino import weights_key

        keyed = getattr(net, "shared_network", net)  # style-bound nets share a verdict
        with self._lock:
            key = self._net_keys.get(keyed)
            if key is None:
                key = self._net_keys[keyed] = weights_key(keyed)
        return f"{key}/{runner.name}/{_variant(runner, x)}"

    def _save(self) -> None:
        if self.verdict_file is None:
            return
        try:
            self.verdict_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.verdict_file.with_name(f".{self.verdict_file.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self._verdicts, indent=1, sort_keys=True))
            os.replace(tmp, self.verdict_file)
        except OSError as exc:
            log.warning("cannot save backend verdicts: %s", exc)

    def check(self, net: nn.Module, runner: Any, x: Tensor) -> dict[str, Any]:
        """Run (or recall) the calibration of `runner` on `net` for pictures like `x`."""
        key = self._key(net, runner, x)
        with self._lock:
            found = self._verdicts.get(key)
        if found is not None:
            return found
        verdict: dict[str, Any]
        try:
            res = _variant(runner, x)
            calib = calibration_picture(x, res if isinstance(res, tuple) else (0, 0))
            probe = getattr(net, "calibration_network", net)  # one picture, one style
            runner.run(probe, calib)  # warm-up: compiles, converts
            t0 = time.perf_counter()
            out = runner.run(probe, calib)
            t1 = time.perf_counter()
            ref = reference(probe, calib)
            t2 = time.perf_counter()
            verdict = {"psnr": round(psnr(out, ref), 2), "s": t1 - t0, "fp32_s": t2 - t1}
        except Exception as exc:  # a path that cannot run this model is no path for it
            verdict = {"psnr": 0.0, "error": f"{type(exc).__name__}: {exc}"[:300]}
        with self._lock:
            self._verdicts[key] = verdict
            self._save()
        return verdict

    def choose(self, net: nn.Module, x: Tensor) -> Any:
        if min(x.shape[-2:]) < MIN_CALIBRATION_SIDE:
            return self.fallback  # too small to calibrate on, and fast in fp32 anyway
        for runner in self.candidates:
            handles = getattr(runner, "handles", None)
            if handles is not None and not handles(x):
                continue
            verdict = self.check(net, runner, x)
            if "error" in verdict:
                reason = verdict["error"]
            elif verdict["psnr"] < self.floor_db:
                reason = f"{verdict['psnr']:.1f} dB is under the {self.floor_db:.0f} dB floor"
            elif verdict.get("s", 0.0) > 1.5 * verdict.get("fp32_s", float("inf")):
                reason = "slower than eager fp32 on this machine"
            else:
                return runner
            self._warn_once(net, runner, x, reason)
        return self.fallback

    def _warn_once(self, net: nn.Module, runner: Any, x: Tensor, reason: str) -> None:
        key = self._key(net, runner, x)
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("backend %s not used for %s: %s", runner.name, type(net).__name__, reason)

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
