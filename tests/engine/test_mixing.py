"""Mixing two built-in styles of one network: Magenta presets by their style vectors,
Dumoulin styles by their style weights. The ends of a mix are the single styles,
pixel for pixel; the middle is neither; styles of different networks are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from totoshka.cli.main import app
from totoshka.engine.catalog import Catalog, load_builtin_catalog
from totoshka.engine.imageio import load_image
from totoshka.engine.mixing import MixError, StyleMix, mix_partners, mixed_style, partners
from totoshka.engine.store import ModelStore
from totoshka.engine.stylizer import Stylizer

CATALOG = load_builtin_catalog()
FAMILIES = ("magenta", "dumoulin")


def two_of(family: str, catalog: Catalog = CATALOG) -> tuple[str, str]:
    ids = [s.id for s in catalog.styles() if catalog.model(s.model).family == family]
    assert len(ids) >= 2, f"the catalog needs two built-in {family} styles to mix"
    return ids[0], ids[1]


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def stylizer(model_mirrors: str, tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    tmp = tmp_path_factory.mktemp("mixing")
    store = ModelStore(tmp / "cache", mirror=model_mirrors, data_dir=tmp / "data")
    return Stylizer(CATALOG, store, backend="eager")


@pytest.fixture(scope="module")
def photo(shared_dir: Path) -> Image.Image:
    return load_image(shared_dir / "images" / "content" / "venice-boat.jpg").resize((161, 120))


# --- the arithmetic, torch-free -------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_the_mixed_vector_is_the_weighted_mean(family: str) -> None:
    a, b = two_of(family)
    va, vb = (np.asarray(CATALOG.style(s).vector) for s in (a, b))
    mixed = mixed_style(CATALOG, StyleMix(a, b, 0.3))
    assert mixed.model == CATALOG.style(a).model
    assert np.allclose(mixed.vector, 0.7 * va + 0.3 * vb, rtol=0, atol=1e-12)
    assert mixed_style(CATALOG, StyleMix(a, b, 0.0)).vector == CATALOG.style(a).vector
    assert mixed_style(CATALOG, StyleMix(a, b, 1.0)).vector == CATALOG.style(b).vector


def test_styles_of_different_networks_are_refused() -> None:
    (magenta, _), (dumoulin, _) = two_of("magenta"), two_of("dumoulin")
    with pytest.raises(MixError, match="different networks"):
        mixed_style(CATALOG, StyleMix(magenta, dumoulin))
    with pytest.raises(MixError, match="only Magenta painting presets and Dumoulin"):
        mixed_style(CATALOG, StyleMix("wave", "udnie"))  # ml5: a network per style
    for share in (-0.1, 1.5, float("nan")):
        with pytest.raises(MixError, match="between 0 and 1"):
            mixed_style(CATALOG, StyleMix(*two_of("magenta"), share))


def test_partners_are_the_same_network_only() -> None:
    a, b = two_of("dumoulin")
    found = partners(CATALOG, a)
    assert b in found and a not in found
    assert all(CATALOG.style(s).model == CATALOG.style(a).model for s in found)
    assert partners(CATALOG, "wave") == []
    offered = [a, b, "wave"]
    assert mix_partners(CATALOG, offered) == {a: [b], b: [a]}


# --- painted ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_a_mix_at_0_and_1_is_the_single_style_and_at_half_neither(
    stylizer: Stylizer, photo: Image.Image, family: str
) -> None:
    a, b = two_of(family)
    single_a = stylizer.stylize(photo, a, max_side=None)
    single_b = stylizer.stylize(photo, b, max_side=None)
    at_0 = stylizer.stylize(photo, StyleMix(a, b, 0.0), max_side=None)
    at_1 = stylizer.stylize(photo, StyleMix(a, b, 1.0), max_side=None)
    half = stylizer.stylize(photo, StyleMix(a, b, 0.5), max_side=None)
    assert np.array_equal(np.asarray(at_0), np.asarray(single_a))
    assert np.array_equal(np.asarray(at_1), np.asarray(single_b))
    apart = psnr(single_a, single_b)
    to_a, to_b = psnr(half, single_a), psnr(half, single_b)
    # neither end: far from both (below 30 dB) ...
    assert to_a < 30 and to_b < 30, (to_a, to_b, apart)
    # ... and in between: nearer to each than the two styles are to each other
    assert to_a > apart and to_b > apart, (to_a, to_b, apart)


def test_the_cli_mixes_two_styles(mirror_env: Path, shared_dir: Path, tmp_path: Path) -> None:
    a, b = two_of("magenta")
    photo = tmp_path / "boat.jpg"
    load_image(shared_dir / "images" / "content" / "venice-boat.jpg").resize((160, 120)).save(photo)
    runner = CliRunner()
    args = ["stylize", str(photo), "--style", a, "--style", b, "--mix", "0.3"]
    result = runner.invoke(app, [*args, "--max-side", "160"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = tmp_path / f"boat.{a}+{b}-30.jpg"
    assert result.stdout.strip() == str(out) and Image.open(out).size == (160, 120)

    refused = runner.invoke(app, ["stylize", str(photo), "--style", "wave", "--style", "udnie"])
    assert refused.exit_code == 1 and "cannot be mixed" in refused.stderr
    assert "Traceback" not in refused.stderr
    alone = runner.invoke(app, ["stylize", str(photo), "--style", a, "--mix", "0.3"])
    assert alone.exit_code != 0 and "--mix needs two --style" in alone.stderr
