"""The built-in Magenta painting presets: what each catalog entry must carry (100
numbers, a rights note, how the numbers were made), that the numbers still follow
from the paintings in ../shared (scripts/make_presets.py recomputes them), and that
a preset paints and is listed like any other style."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from totoshka.assets import sample_photo
from totoshka.cli.main import app
from totoshka.engine.catalog import Catalog, Style, load_builtin_catalog, to_json
from totoshka.engine.stylizer import OwnStyle, Stylizer

REPO = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    """scripts/make_presets.py as a module: the tests check the numbers the way CI's
    `--check` does, with the script's own list of presets and tolerance."""
    path = REPO / "scripts" / "make_presets.py"
    spec = importlib.util.spec_from_file_location("make_presets", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


make_presets = _script()


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_builtin_catalog()


def presets(catalog: Catalog) -> list[Style]:
    return [s for s in catalog.styles_of("magenta") if s.vector is not None]


def test_every_preset_has_its_numbers_rights_and_method(catalog: Catalog) -> None:
    found = presets(catalog)
    assert {s.id for s in found} == {p.id for p in make_presets.PRESETS}
    for style in found:
        assert style.vector is not None and len(style.vector) == 100, style.id
        assert all(math.isfinite(v) for v in style.vector), style.id
        assert style.license.startswith(("public domain: ", "BSD-3-Clause: ")), style.id
        assert "died" in style.license or "pytorch/examples" in style.license, style.id
        assert style.vector_method == make_presets.METHODS[make_presets.METHOD], style.id
        assert style.vector_source and style.vector_source.startswith("images/styles/")
        assert style.vector_source_sha256 and len(style.vector_source_sha256) == 64
        assert style.preview is None, style.id  # the gallery renders it; never the painting


def test_mosaic_and_candy_are_presets_and_the_pytorch_networks_moved(catalog: Catalog) -> None:
    for sid in ("mosaic", "candy"):
        assert catalog.style(sid).model == "magenta"
        moved = catalog.style(f"pt-{sid}")
        assert moved.model == "pytorch-examples"
        assert moved.member == f"saved_models/{sid}.pth"
        assert moved.title["en"].endswith(" (PyTorch)")


def test_preset_titles_do_not_repeat_another_styles(catalog: Catalog) -> None:
    """Presets of paintings that ml5 also paints say "(Magenta)": two buttons with one
    title in the picker would be a guess."""
    for lang in ("en", "ru"):
        titles = [s.title[lang] for s in catalog.styles()]
        assert len(titles) == len(set(titles)), lang


@pytest.mark.parametrize("preset_id", ["hokusai_wave", "munch_scream"])  # wide, tall
def test_vectors_recomputed_from_the_paintings_match_the_catalog(
    preset_id: str, catalog: Catalog, stylizer: Stylizer, shared_dir: Path
) -> None:
    """The engine's own path (`Stylizer.style_vector`, the fit every user painting
    gets) reproduces the shipped numbers within the script's TOLERANCE: 6 significant
    digits plus another CPU's summation order, four orders of magnitude below the
    distance between two paintings."""
    style = catalog.style(preset_id)
    assert style.vector_source is not None
    path = shared_dir / style.vector_source
    assert hashlib.sha256(path.read_bytes()).hexdigest() == style.vector_source_sha256
    again = stylizer.style_vector(Image.open(path))
    gap = float(np.max(np.abs(np.subtract(again, style.vector))))
    assert gap <= make_presets.TOLERANCE
    preset = next(p for p in make_presets.PRESETS if p.id == preset_id)
    data = [make_presets.entry(preset, again, style.vector_source_sha256)]
    assert make_presets.differences([to_json(s) for s in presets(catalog)], data) == []


def test_the_check_notices_a_changed_number(catalog: Catalog) -> None:
    style = catalog.style("vangogh_starry")
    entry = to_json(style)
    fresh = {**entry, "vector": [*entry["vector"][:-1], entry["vector"][-1] + 1e-3]}
    assert make_presets.differences([entry], [entry]) == []
    (problem,) = make_presets.differences([entry], [fresh])
    assert problem.startswith("vangogh_starry: vector differs by up to 0.001")


def test_a_preset_paints_as_its_vector_does(stylizer: Stylizer, catalog: Catalog) -> None:
    photo = sample_photo().resize((96, 96))
    painted = stylizer.stylize(photo, "vangogh_starry", max_side=None)
    vector = catalog.style("vangogh_starry").vector
    assert vector is not None
    own = stylizer.stylize(photo, OwnStyle(vectors=((vector, 1.0),)), max_side=None)
    assert painted.size == photo.size
    a, b = np.asarray(painted, np.float64), np.asarray(own, np.float64)
    assert np.abs(a - b).max() <= 1  # the same network bound to the same numbers
    assert np.abs(a - np.asarray(photo, np.float64)).mean() > 20  # repainted
    blue = a[..., 2].mean() - a[..., 0].mean()
    assert blue > np.asarray(photo, np.float64)[..., 2].mean() - np.asarray(photo)[..., 0].mean()


def test_styles_list_shows_the_presets(mirror_env: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["styles", "list", "--plain"])
    assert plain.exit_code == 0, plain.stderr
    ids = plain.stdout.split()
    assert {p.id for p in make_presets.PRESETS} <= set(ids)
    assert {"pt-mosaic", "pt-candy"} <= set(ids)
    table = runner.invoke(app, ["styles", "list"])
    assert table.exit_code == 0 and "kandinsky_vii" in table.stdout
