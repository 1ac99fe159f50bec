"""Own styles on the torch-free cold path (`engine.coldpath`): a painting becomes a
style vector through the style predictor's cached IR and paints through the
transfer network's, and both agree with the torch path.

The first `totoshka stylize --style-image` of a cache goes through torch: it
converts the transfer network's IR, calibrates it, converts the predictor's IR and
records both (`Stylizer._record_own`). Every later run must not import torch, and
must give the torch path's vectors (cosine ≥ 0.9999; measured: relative L2 ≈ 5e-7,
the predictor runs in OpenVINO f32 as the torch path runs it in eager fp32) and
pictures (≥ 40 dB; measured 47–49 dB, the transfer network's bf16). Nothing here
asserts on time: the figures are in benchmarks/results/cold-serving.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_coldpath import FLOOR_DB, psnr, run_cli

from totoshka.engine import own_style
from totoshka.engine.backends.ovsources import SourceIndex, predictor_key, shared_key, source_key
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import open_engine
from totoshka.engine.imageio import load_image
from totoshka.engine.models import magenta
from totoshka.engine.own_style import OwnStyle
from totoshka.engine.settings import OWN_STYLE_ENGINES, EngineSettings

VECTOR_COSINE = 0.9999
VECTOR_REL_L2 = 1e-4  # measured ≈ 5e-7 (f32 against eager fp32)


def cosine(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def rel_l2(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


# --- pieces, no network -----------------------------------------------------------------


def test_own_style_constants_are_the_networks() -> None:
    assert own_style.STYLE_DIM == magenta.STYLE_DIM
    assert own_style.PREDICTOR_SIZE == magenta.PREDICTOR_SIZE
    assert own_style.ENGINES == OWN_STYLE_ENGINES


def test_own_style_imports_no_torch() -> None:
    """The CLI reads paintings with it before anything knows whether torch is needed."""
    code = "import sys, totoshka.engine.own_style; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("size", [(300, 300), (640, 300), (200, 520)])
def test_painting_arrays_are_the_crops(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    painting = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    arrays = own_style.painting_arrays(painting)
    crops = own_style.painting_crops(painting)
    assert arrays.dtype == np.float32 and arrays.flags["C_CONTIGUOUS"]
    assert arrays.shape == (1 if size[0] == size[1] else 3, 3, 256, 256)
    assert arrays.tobytes() == crops.numpy().tobytes()


def test_keys_of_the_two_networks_differ(tmp_path: Path, shared_dir: Path) -> None:
    settings = EngineSettings(
        cache_dir=tmp_path / "c", data_dir=tmp_path / "d", model_mirror=str(shared_dir / "models")
    )
    engine = open_engine(settings)
    model = engine.catalog.model(own_style.MAGENTA_MODEL)
    shared, predictor = shared_key(engine.store, model), predictor_key(engine.store, model)
    assert shared is not None and predictor is not None and shared != predictor
    # a catalog preset and an own style share the transfer network's entry
    assert source_key(engine.store, model, engine.catalog.style("mosaic")) == shared
    assert predictor_key(engine.store, engine.catalog.model("ml5-wave")) is None


def test_declines_own_styles_it_cannot_paint(tmp_path: Path, shared_dir: Path) -> None:
    settings = EngineSettings(
        cache_dir=tmp_path / "c", data_dir=tmp_path / "d", model_mirror=str(shared_dir / "models")
    )
    cold = open_engine(settings).cold_painter()
    photo = Image.new("RGB", (64, 48), (120, 30, 200))
    vectors = OwnStyle(vectors=((tuple([0.1] * 100), 1.0),))
    assert cold.stylize(photo, vectors) is None
    assert cold.last_reason is not None and "not in the cache" in cold.last_reason
    msgnet = OwnStyle(paintings=((photo, 1.0),), engine="msgnet")
    assert cold.stylize(photo, msgnet) is None
    assert cold.last_reason == "own styles on msgnet run in torch"
    assert cold.style_vector(photo) is None
    with pytest.raises(EngineError):  # the torch path's refusal, raised alike
        cold.stylize(photo, OwnStyle(vectors=vectors.vectors, style_strength=1.5))


# --- end to end: a real CLI process, then this process --------------------------------


@pytest.fixture(scope="module")
def warm_own(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A cache warmed by one torch-path `stylize --style-image` at an odd size (sides
    ≡ 2, 3 mod 4): the transfer IR, its verdict and the predictor IR recorded."""
    tmp = tmp_path_factory.mktemp("cold-own")
    photo = tmp / "photo.jpg"
    source = Image.open(shared_dir / "images" / "content" / "amber.jpg").convert("RGB")
    source.resize((483, 362), Image.Resampling.LANCZOS).save(photo, quality=92)
    styles = shared_dir / "images" / "styles"
    paintings = {"wide": styles / "starry_night.jpg", "square": tmp / "square.jpg"}
    Image.open(styles / "the_scream.jpg").convert("RGB").resize((300, 300)).save(
        paintings["square"], quality=92
    )
    env = {
        **os.environ,
        "TOTOSHKA_MODEL_MIRROR": str(shared_dir / "models"),
        "TOTOSHKA_CACHE_DIR": str(tmp / "cache"),
        "TOTOSHKA_DATA_DIR": str(tmp / "data"),
    }
    for key in ("TOTOSHKA_BACKEND", "TOTOSHKA_MEMORY_BUDGET_MB", "TOTOSHKA_OWN_STYLE_ENGINE"):
        env.pop(key, None)
    out = tmp / "first.png"
    args = ["stylize", str(photo), "--style-image", str(paintings["wide"]), "-o", str(out)]
    first = run_cli(args, env)
    assert first["torch"], "a cold cache goes through the torch path"
    settings = EngineSettings(
        cache_dir=tmp / "cache", data_dir=tmp / "data", model_mirror=str(shared_dir / "models")
    )
    return {"tmp": tmp, "photo": photo, "env": env, "settings": settings, "paintings": paintings}


def test_the_first_run_recorded_both_networks(warm_own: dict[str, Any]) -> None:
    engine = open_engine(warm_own["settings"])
    model = engine.catalog.model(own_style.MAGENTA_MODEL)
    index = SourceIndex(warm_own["settings"].compiled_path())
    shared = index.get(shared_key(engine.store, model) or "")
    predictor = index.get(predictor_key(engine.store, model) or "")
    assert shared is not None and shared["style"] == "magenta"
    assert predictor is not None and predictor["file"] == "predictor.xml"


def test_cli_own_painting_serves_without_torch(warm_own: dict[str, Any]) -> None:
    painting = warm_own["paintings"]["wide"]
    out = warm_own["tmp"] / "cold.png"
    args = ["stylize", str(warm_own["photo"]), "--style-image", str(painting), "-o", str(out)]
    seen = run_cli(args, warm_own["env"])
    assert seen == {"code": 0, "torch": False, "openvino": True}
    engine = open_engine(warm_own["settings"])
    style = OwnStyle(paintings=((own_style.load_painting(painting), 1.0),), engine="magenta")
    reference = engine.stylizer().stylize(load_image(warm_own["photo"], max_side=1280), style)
    painted = Image.open(out)
    assert painted.size == reference.size
    assert psnr(painted, reference) >= FLOOR_DB
    assert psnr(painted, Image.open(warm_own["tmp"] / "first.png")) >= FLOOR_DB


@pytest.mark.parametrize("which", ["wide", "square"])
def test_style_vectors_match_the_torch_predictor(warm_own: dict[str, Any], which: str) -> None:
    engine = open_engine(warm_own["settings"])
    painting = own_style.load_painting(warm_own["paintings"][which])
    cold = engine.cold_painter().style_vector(painting)
    assert cold is not None, engine.cold_painter().last_reason
    reference = engine.stylizer().style_vector(painting)
    assert len(cold) == len(reference) == own_style.STYLE_DIM
    assert cosine(cold, reference) >= VECTOR_COSINE
    assert rel_l2(cold, reference) <= VECTOR_REL_L2
    assert engine.style_vector(painting) == cold  # the engine's entry point serves it


@pytest.mark.parametrize(
    "case",
    ["vectors", "strength", "mix", "options"],
)
def test_engine_paint_own_styles_like_the_torch_path(warm_own: dict[str, Any], case: str) -> None:
    """Stored vectors (the bot), style strength (the photo's own vector through the
    predictor), two paintings mixed, strength and colours: all cold, all the torch
    path's picture."""
    engine = open_engine(warm_own["settings"])
    stylizer = engine.stylizer()
    wide = own_style.load_painting(warm_own["paintings"]["wide"])
    square = own_style.load_painting(warm_own["paintings"]["square"])
    options: dict[str, Any] = {}
    if case == "vectors":
        style = OwnStyle(vectors=((tuple(stylizer.style_vector(square)), 1.0),))
    elif case == "strength":
        style = OwnStyle(paintings=((square, 1.0),), style_strength=0.4, engine="magenta")
    elif case == "mix":
        style = OwnStyle(paintings=((wide, 0.7), (square, 0.3)), engine="magenta")
    else:
        style = OwnStyle(paintings=((wide, 1.0),), engine="magenta")
        options = {"strength": 0.6, "preserve_colors": True}
    photo = load_image(warm_own["photo"], max_side=1280)
    painted = engine.paint(photo, style, **options)
    assert engine.last_path is not None and engine.last_path.endswith("(no torch)"), (
        engine.cold_painter().last_reason
    )
    reference = stylizer.stylize(photo, style, **options)
    assert painted.size == reference.size
    assert psnr(painted, reference) >= FLOOR_DB


def test_index_entry_of_the_predictor_survives_json(warm_own: dict[str, Any]) -> None:
    """The index is plain JSON another process reads: the predictor's entry too."""
    path = warm_own["settings"].compiled_path() / "openvino" / "sources.json"
    data = json.loads(path.read_text())
    files = [e.get("file") for e in data["sources"].values()]
    assert "predictor.xml" in files


def test_warm_up_compiles_what_serves_the_first_job(warm_own: dict[str, Any]) -> None:
    """`Engine.warm_up` (what the bot's start-up probe calls through the Stylizer)
    compiles and runs the cached IR for the serving size; nothing when none is ready."""
    engine = open_engine(warm_own["settings"])
    assert engine.stylizer().serving_warm_up == engine.warm_up
    cold = engine.cold_painter()
    size = Image.open(warm_own["photo"]).size
    warmed = engine.warm_up(["mosaic", "candy", "wave"], size)
    assert warmed is not None and warmed.endswith(".xml")
    assert len(cold._compiled) == 1
    painted = engine.paint(load_image(warm_own["photo"], max_side=1280), "candy")
    assert painted.size == size and len(cold._compiled) == 1  # the warmed model served it
    assert engine.warm_up(["wave"], size) is None  # wave's IR was never recorded here


def test_a_paintings_vector_is_kept_and_a_torn_one_computed_again(
    warm_own: dict[str, Any],
) -> None:
    """The second run with one painting reads its vector instead of predicting it,
    and paints the same picture; a torn vector file is computed again."""
    painting = warm_own["paintings"]["square"]
    folder = warm_own["settings"].compiled_path() / "openvino" / "vectors"
    engine = open_engine(warm_own["settings"])
    style = OwnStyle(paintings=((own_style.load_painting(painting), 1.0),), engine="magenta")
    photo = load_image(warm_own["photo"], max_side=1280)
    for earlier in folder.glob("*.json"):  # earlier tests painted with this painting
        earlier.unlink()
    first = engine.cold_painter().stylize(photo, style)
    assert first is not None, engine.cold_painter().last_reason
    kept = set(folder.glob("*.json"))
    assert len(kept) == 1
    vector = json.loads(next(iter(kept)).read_text())
    assert len(vector) == own_style.STYLE_DIM
    again = open_engine(warm_own["settings"]).cold_painter().stylize(photo, style)
    assert again is not None
    assert np.array_equal(np.asarray(first), np.asarray(again))
    next(iter(kept)).write_text("[0.5, ")  # torn
    mended = open_engine(warm_own["settings"]).cold_painter().stylize(photo, style)
    assert mended is not None
    assert psnr(mended, first) >= FLOOR_DB
    assert json.loads(next(iter(kept)).read_text()) == vector  # written whole again
    # a refusal still comes first: a flat painting has no style, cached or not
    flat = OwnStyle(paintings=((Image.new("RGB", (300, 300), "grey"), 1.0),), engine="magenta")
    with pytest.raises(EngineError, match="flat colour"):
        engine.cold_painter().stylize(photo, flat)
