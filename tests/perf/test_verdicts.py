"""Calibration verdicts that can be trusted (issue 10): kept per environment, a
rejection re-checked after a while, timings compared minimum against minimum.

The first test is the README-install defect itself: OpenVINO's converter imports
`packaging`; without it every conversion fails, and the verdict that said so used
to be cached for good, so installing the package changed nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from totoshka.engine.backends.auto import AutoRunner
from totoshka.engine.backends.eager import EagerRunner
from totoshka.engine.backends.quality import DEFAULT_FLOOR_DB
from totoshka.engine.backends.verdicts import REJECTION_TTL_S, VerdictStore, fingerprint


def fake_install(site: Path, name: str, version: str) -> None:
    """What pip leaves for importlib.metadata: a .dist-info folder with METADATA."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_a_verdict_cached_while_a_dependency_was_missing_does_not_survive_installing_it(
    ml5_net: nn.Module,
    make_photo: Callable,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ticks: Callable[[], float],
) -> None:
    pytest.importorskip("openvino")
    from totoshka.engine.backends import openvino as ov_backend

    x = make_photo("amber.jpg", 96, 128)
    verdict_file = tmp_path / "verdicts.json"
    ir_cache = tmp_path / "compiled"

    def auto(env: dict, *, convert_in_process: bool = False) -> AutoRunner:
        runner = ov_backend.OpenVinoRunner(
            "bf16", cache_dir=ir_cache, convert_in_process=convert_in_process
        )
        store = VerdictStore(verdict_file, env=env)
        return AutoRunner([runner], DEFAULT_FLOOR_DB, verdicts=store, clock=ticks)

    # 1. `packaging` missing: the conversion (here, in this process) fails.
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "packaging", None)
        for name in [n for n in sys.modules if n.startswith("packaging.")]:
            m.setitem(sys.modules, name, None)
        before = fingerprint()
        first = auto(before, convert_in_process=True)
        first.run(ml5_net, x)
        assert first.last_path == "eager-fp32"
        [verdict] = first.verdicts.items().values()
        assert "packaging" in verdict["error"]

    # 2. The same environment (a restart): the rejection is recalled, not measured again.
    conversions = ov_backend.conversions
    again = auto(before)
    again.run(ml5_net, x)
    assert again.last_path == "eager-fp32"
    assert ov_backend.conversions == conversions

    # 3. A package is installed (pip writes its metadata): a new environment, measured anew.
    site = tmp_path / "site"
    fake_install(site, "packaging-fix", "1.0")
    monkeypatch.syspath_prepend(str(site))
    after = fingerprint()
    assert after != before
    fixed = auto(after)
    fixed.run(ml5_net, x)
    assert fixed.last_path == "openvino-bf16"
    assert ov_backend.conversions == conversions + 1
    saved = json.loads(verdict_file.read_text())
    assert saved["env"] == after and all("error" not in v for v in saved["verdicts"].values())


class Clock:
    """Readings from a list: the test decides what every timed run took."""

    def __init__(self, readings: list[float]) -> None:
        self.readings = iter(readings)

    def __call__(self) -> float:
        return next(self.readings)


def timings(candidate: list[float], fp32: list[float]) -> list[float]:
    """Clock readings for interleaved runs (t0, after candidate, after fp32) per round."""
    readings, now = [], 0.0
    for c, f in zip(candidate, fp32, strict=True):
        readings += [now, now + c, now + c + f]
        now += c + f
    return readings


class SameAsFp32:
    name = "same-as-fp32"

    def run(self, net: nn.Module, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return net(x)


def test_one_slow_timing_does_not_disable_a_path(ml5_net: nn.Module, make_photo: Callable) -> None:
    """A busy spell during the first timed run (10× slower) is outvoted by the others."""
    x = make_photo("amber.jpg", 64, 80)
    clock = Clock(timings([10.0, 1.0, 1.0], [1.0, 1.0, 1.0]))
    auto = AutoRunner([SameAsFp32()], DEFAULT_FLOOR_DB, clock=clock)
    auto.run(ml5_net, x)
    assert auto.last_path == "same-as-fp32"


def test_a_path_slower_every_time_is_rejected(ml5_net: nn.Module, make_photo: Callable) -> None:
    x = make_photo("amber.jpg", 64, 80)
    clock = Clock(timings([3.0, 2.5, 2.0], [1.0, 1.0, 1.0]))
    auto = AutoRunner([SameAsFp32()], DEFAULT_FLOOR_DB, clock=clock)
    auto.run(ml5_net, x)
    assert auto.last_path == "eager-fp32"
    [verdict] = auto.verdicts.items().values()
    assert verdict["rejected"] and auto.reason(verdict) == "slower than eager fp32 on this machine"


def test_a_rejection_is_checked_again_after_a_while(tmp_path: Path) -> None:
    now = [1000.0]
    env = {"torch": "x"}
    store = VerdictStore(tmp_path / "v.json", env=env, now=lambda: now[0])
    store.put("slow", {"psnr": 50.0, "s": 3.0, "fp32_s": 1.0, "rejected": True})
    store.put("good", {"psnr": 50.0, "s": 0.1, "fp32_s": 1.0, "rejected": False})
    later = VerdictStore(tmp_path / "v.json", env=env, now=lambda: now[0])
    assert later.get("slow") is not None and later.get("good") is not None
    now[0] += REJECTION_TTL_S + 1
    assert later.get("slow") is None, "a rejection must not be for ever"
    assert later.get("good") is not None


def test_verdicts_of_another_environment_or_format_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    VerdictStore(path, env={"torch": "2.12"}).put("k", {"psnr": 40.0, "rejected": False})
    assert VerdictStore(path, env={"torch": "2.12"}).get("k") is not None
    assert VerdictStore(path, env={"torch": "2.13"}).get("k") is None
    path.write_text(json.dumps({"k": {"psnr": 0.0, "error": "old layout"}}))  # before issue 10
    assert VerdictStore(path, env={"torch": "2.12"}).get("k") is None


def test_clear_forgets_everything(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    store = VerdictStore(path, env={})
    store.put("a", {"psnr": 1.0, "rejected": True})
    store.put("b", {"psnr": 1.0, "rejected": True})
    assert store.clear() == 2
    assert not path.exists() and store.items() == {}
    assert VerdictStore(path, env={}).get("a") is None


def test_eager_candidate_passes_with_a_steady_clock(
    ml5_net: nn.Module, make_photo: Callable, ticks: Callable[[], float]
) -> None:
    """The clock is the only source of timing: a path as fast as fp32 always passes."""
    x = make_photo("amber.jpg", 64, 80)
    auto = AutoRunner([EagerRunner()], DEFAULT_FLOOR_DB, clock=ticks)
    auto.run(ml5_net, x)
    assert auto.last_path == "eager-fp32" and auto.last_runner is auto.candidates[0]
