"""The start-up probe (`diagnose.startup_probe`, what `totoshka run`/`worker`/`playground`
print): the line names the path that serves, and a slower path than the machine
supports gives exactly one warning naming the reason and the fix."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from totoshka.engine.backends import expected_path
from totoshka.engine.diagnose import startup_probe
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings
from totoshka.engine.stylizer import Stylizer

LINE = r"inference: (?P<path>[\w-]+) \(.+\), ml5 \d+\.\d\d s at 1280x960"


def stylizer(mirror: Path, cache: Path, **settings: object) -> Stylizer:
    """The Stylizer the factory builds for an operator with this mirror and cache."""
    engine = open_engine(EngineSettings(cache_dir=cache, model_mirror=str(mirror), **settings))
    return engine.stylizer()


def test_the_probe_names_the_serving_path(shared_dir: Path, compiled_cache: Path) -> None:
    s = stylizer(shared_dir / "models", compiled_cache)
    probe = startup_probe(s, ["udnie", "wave"])
    match = re.fullmatch(LINE, probe.line)
    assert match, probe.line
    assert match["path"] == expected_path() == probe.served_by
    assert probe.warning is None
    assert startup_probe(s) is probe  # measured once per Stylizer


def test_a_fallback_gives_one_warning_with_the_fix(
    shared_dir: Path,
    compiled_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    s = stylizer(shared_dir / "models", compiled_cache)
    with caplog.at_level(logging.WARNING):
        probe = startup_probe(s, ["wave"])
        s.stylize(Image.new("RGB", (96, 64), (90, 120, 30)), "wave")  # a job after start-up
    assert not caplog.records, "the probe's warning is the only one"
    match = re.fullmatch(LINE, probe.line)
    assert match, probe.line
    assert not match["path"].startswith("openvino")
    assert probe.warning is not None
    assert probe.warning.startswith(f"inference falls back to {match['path']}")
    assert f"slower than {expected_path()}" in probe.warning
    assert "install OpenVINO" in probe.warning


def test_a_probe_that_cannot_run_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "no-mirror"
    empty.mkdir()
    s = stylizer(empty, tmp_path / "cache")
    probe = startup_probe(s, ["wave"])
    assert probe.line.startswith("inference: not measured (")
    assert probe.served_by is None


def test_a_broken_fast_path_is_one_warning_not_one_per_job(
    shared_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The README-install defect itself: OpenVINO's converter cannot import `packaging`.
    The probe reports it once; later jobs (other sizes, other variants) stay quiet."""
    pytest.importorskip("openvino")
    monkeypatch.setitem(sys.modules, "packaging", None)
    for name in [n for n in sys.modules if n.startswith("packaging.")]:
        monkeypatch.setitem(sys.modules, name, None)
    # converted models and verdicts live under the cache: a fresh one, so nothing made
    # by an earlier test (with `packaging` importable) is read from disk; converted in
    # this process (TOTOSHKA_CONVERT_IN_PROCESS=1), where `packaging` is missing
    s = stylizer(shared_dir / "models", tmp_path / "cache", convert_in_process=True)
    with caplog.at_level(logging.WARNING):
        probe = startup_probe(s, ["wave"])
        for size in ((97, 65), (130, 98)):  # other residues mod 4: other compiled variants
            s.stylize(Image.new("RGB", size, (90, 120, 30)), "wave")
    assert probe.warning is not None and "packaging" in probe.warning
    assert "fix: install packaging" in probe.warning
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_the_torch_free_probe_says_the_same_once_the_cache_serves(
    shared_dir: Path, compiled_cache: Path
) -> None:
    """After the torch probe converted and calibrated, the cold path gives the same
    line (same path, style and size); on a cold cache it leaves the work to torch."""
    from totoshka.engine.cold_probe import cold_startup_probe

    mirror = str(shared_dir / "models")
    startup_probe(stylizer(shared_dir / "models", compiled_cache), ["wave"])  # warms the cache
    engine = open_engine(EngineSettings(cache_dir=compiled_cache, model_mirror=mirror))
    probe = cold_startup_probe(engine, ["udnie", "wave"])
    assert probe is not None, engine.cold_painter().last_reason
    match = re.fullmatch(LINE, probe.line)
    assert match, probe.line
    assert match["path"] == expected_path() == probe.served_by
    fresh = open_engine(EngineSettings(cache_dir=compiled_cache / "fresh", model_mirror=mirror))
    assert cold_startup_probe(fresh, ["wave"]) is None


def test_a_bot_on_a_warm_cache_starts_without_torch(
    shared_dir: Path, compiled_cache: Path, tmp_path: Path
) -> None:
    """`BotApp`'s warm-up (what `totoshka run` does before its workers start) prints
    its line and warms the serving IR, a gallery preview missing from disk is painted
    (what /styles does), and torch is never imported."""
    mirror = str(shared_dir / "models")
    startup_probe(stylizer(shared_dir / "models", compiled_cache), ["wave"])  # warms the cache
    script = f"""
import asyncio, sys
from totoshka.bot.app import BotApp
from totoshka.config import Settings
lines = []
settings = Settings(
    _env_file=None, bot_token="123456:{"A" * 35}", api_url="http://127.0.0.1:9",
    queue_path={str(tmp_path / "jobs.sqlite3")!r}, cache_dir={str(compiled_cache)!r},
    model_mirror={mirror!r}, data_dir={str(tmp_path / "data")!r}, preview_size=256,
)
app = BotApp(settings, announce=lines.append)
app._warm_up()
app.gallery.path("wave").unlink(missing_ok=True)
print(asyncio.run(app.gallery.ensure(["wave"])), app.gallery.path("wave").stat().st_size > 0)
print(lines)
print("torch" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    previews, lines, torch_loaded = done.stdout.strip().splitlines()[-3:]
    assert previews == "['wave'] True", done.stderr
    assert re.fullmatch(LINE, eval(lines)[0]), lines
    assert torch_loaded == "False", done.stderr
