"""The start-up probe (`Stylizer.startup_probe`, what `totoshka run`/`worker`/`playground`
print): the line names the path that serves, and a slower path than the machine
supports gives exactly one warning naming the reason and the fix."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from totoshka.engine.backends import expected_path
from totoshka.engine.catalog import load_catalog
from totoshka.engine.store import ModelStore
from totoshka.engine.stylizer import Stylizer

LINE = r"inference: (?P<path>[\w-]+) \(.+\), ml5 \d+\.\d\d s at 1280×960"


def stylizer(shared_dir: Path, cache: Path) -> Stylizer:
    catalog = load_catalog()
    return Stylizer(catalog, ModelStore(cache, shared_dir / "models", catalog=catalog))


def test_the_probe_names_the_serving_path(shared_dir: Path, tmp_path: Path) -> None:
    s = stylizer(shared_dir, tmp_path / "cache")
    probe = s.startup_probe(["udnie", "wave"])
    match = re.fullmatch(LINE, probe.line)
    assert match, probe.line
    assert match["path"] == expected_path() == probe.served_by
    assert probe.warning is None
    assert s.startup_probe() is probe  # measured once per Stylizer


def test_a_fallback_gives_one_warning_with_the_fix(
    shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    probe = stylizer(shared_dir, tmp_path / "cache").startup_probe(["wave"])
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
    catalog = load_catalog()
    s = Stylizer(catalog, ModelStore(tmp_path / "cache", empty, catalog=catalog))
    probe = s.startup_probe(["wave"])
    assert probe.line.startswith("inference: not measured (")
    assert probe.served_by is None
