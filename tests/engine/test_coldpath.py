"""The torch-free cold path (`engine.coldpath`): a warm cache paints without torch,
and paints what the torch path paints.

The end-to-end tests run the real `totoshka stylize` in a child process through a
small wrapper that, once the command has finished, reports whether torch (and
OpenVINO) were imported. The first run of each style goes through the torch path
(it converts the IR, calibrates, records the IR's source); every later run must not
import torch and must match the torch path's picture to ≥ 40 dB (PSNR on PNGs, so
the comparison measures the painting, not JPEG's quantisation). Nothing here
asserts on time: the figures are in benchmarks/results/cold-serving.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from totoshka.engine import coldpath, color
from totoshka.engine.backends import verdicts
from totoshka.engine.backends.ovsources import SourceIndex, source_key
from totoshka.engine.factory import DEFAULT_MAX_SIDE, open_engine
from totoshka.engine.imageio import DEFAULT_MAX_SIDE as IMAGEIO_MAX_SIDE
from totoshka.engine.imageio import load_image
from totoshka.engine.mixing import StyleMix
from totoshka.engine.models.dumoulin import mixture
from totoshka.engine.settings import EngineSettings
from totoshka.engine.stylizer import to_image

FLOOR_DB = 40.0
# Runs `totoshka` as its console script does, then says what the process imported.
WRAPPER = (
    "import json, sys\n"
    "from totoshka.cli.main import app\n"
    "sys.argv = ['totoshka', *sys.argv[1:]]\n"
    "try:\n"
    "    app()\n"
    "    code = 0\n"
    "except SystemExit as exc:\n"
    "    code = exc.code or 0\n"
    "seen = {m: m in sys.modules for m in ('torch', 'openvino')}\n"
    "print('IMPORTS ' + json.dumps({'code': code, **seen}), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert x.shape == y.shape
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def run_cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=600,
        check=False,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    return dict(json.loads(lines[-1].removeprefix("IMPORTS ")))


# --- pieces, no network -----------------------------------------------------------------


def test_max_side_defaults_agree() -> None:
    assert DEFAULT_MAX_SIDE == IMAGEIO_MAX_SIDE


def test_style_inputs_are_the_loaders_bits() -> None:
    rng = np.random.default_rng(0)
    vector = rng.normal(size=100).tolist()
    made = coldpath.style_input("magenta", vector)
    assert made is not None
    bound = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(1, -1)  # BoundTransfer
    assert made.tobytes() == bound.numpy().tobytes()
    weights = rng.uniform(0, 3, size=26).tolist()
    made = coldpath.style_input("dumoulin", weights)
    assert made is not None and made.tobytes() == mixture(weights).numpy().tobytes()
    assert coldpath.style_input("magenta", [1.0] * 99) is None
    assert coldpath.style_input("dumoulin", [0.0] * 26) is None
    assert coldpath.style_input("ml5", vector) is None


@pytest.mark.parametrize(("strength", "preserve"), [(1.0, False), (0.35, False), (1.0, True)])
def test_finishing_matches_the_stylizer(strength: float, preserve: bool) -> None:
    """Colours, strength and rounding in numpy give the torch path's bytes (±1 level)."""
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), "RGB")
    painting = rng.uniform(-20, 275, (1, 3, 37, 53)).astype(np.float32).clip(0, 255)
    photo = torch.from_numpy(np.asarray(picture).transpose(2, 0, 1)[None].astype(np.float32))
    ref = torch.from_numpy(painting.copy())
    if preserve:
        ref = color.preserve_colors(photo, ref)
    expected = np.asarray(to_image(color.blend(photo, ref, strength)), np.int16)
    got = np.asarray(coldpath._finish(picture, painting.copy(), strength, preserve), np.int16)
    assert np.abs(got - expected).max() <= 1
    assert (got != expected).mean() < 0.001


def test_fast_distribution_digest_is_the_parsers() -> None:
    """The header read that replaced the e-mail parser gives the same fingerprint, so
    verdicts measured before stay valid."""
    names = sorted(
        {
            f"{(d.metadata['Name'] or '').lower()}=={d.version}"
            for d in metadata.distributions()
            if d.metadata is not None
        }
    )
    import hashlib

    old = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    assert verdicts.distributions_digest() == old


def test_source_index_round_trip_and_environment(tmp_path: Path) -> None:
    index = SourceIndex(tmp_path, env={"a": "1"})
    assert index.get("k") is None
    index.put("k", {"ir": "v1-x", "verdict": "y", "style": None})
    index.put("j", {"ir": "v1-z", "verdict": "w", "style": "magenta"})
    assert SourceIndex(tmp_path, env={"a": "1"}).get("k") == {
        "ir": "v1-x",
        "verdict": "y",
        "style": None,
    }
    assert SourceIndex(tmp_path, env={"a": "1"}).get("j") is not None
    assert SourceIndex(tmp_path, env={"a": "2"}).get("k") is None  # another environment


def test_declines_what_it_cannot_do(tmp_path: Path, shared_dir: Path) -> None:
    settings = EngineSettings(
        cache_dir=tmp_path / "c", data_dir=tmp_path / "d", model_mirror=str(shared_dir / "models")
    )
    engine = open_engine(settings)
    cold = engine.cold_painter()
    photo = Image.new("RGB", (64, 48), (120, 30, 200))
    assert cold.stylize(photo, "wave") is None
    assert cold.last_reason is not None and "not in the cache" in cold.last_reason
    engine.store.ensure(engine.catalog.model("ml5-wave"))
    assert cold.stylize(photo, "wave") is None
    assert cold.last_reason is not None and "no IR recorded" in cold.last_reason
    assert cold.stylize(photo, object()) is None  # (own styles: test_coldpath_own.py)
    assert cold.last_reason == "not a style this path knows"
    eager = open_engine(settings.model_copy(update={"backend": "eager-fp32"})).cold_painter()
    assert eager.stylize(photo, "wave") is None
    assert eager.last_reason == "backend eager-fp32 runs in torch"
    # without the catalog's sha256 (a TOFU file not recorded yet) there is no key
    model = engine.catalog.model("pytorch-examples")
    assert source_key(engine.store, model, engine.catalog.style("pt-mosaic")) is None


# --- end to end: real CLI processes ----------------------------------------------------


@pytest.fixture(scope="module")
def warm(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A cache warmed by the torch path: wave (ml5) and mosaic (Magenta, style input)
    painted once each, at an odd size (sides ≡ 2, 3 mod 4)."""
    tmp = tmp_path_factory.mktemp("cold")
    photo = tmp / "photo.jpg"
    source = Image.open(shared_dir / "images" / "content" / "amber.jpg").convert("RGB")
    source.resize((483, 362), Image.Resampling.LANCZOS).save(photo, quality=92)
    env = {
        **os.environ,
        "TOTOSHKA_MODEL_MIRROR": str(shared_dir / "models"),
        "TOTOSHKA_CACHE_DIR": str(tmp / "cache"),
        "TOTOSHKA_DATA_DIR": str(tmp / "data"),
    }
    for key in ("TOTOSHKA_BACKEND", "TOTOSHKA_MEMORY_BUDGET_MB"):
        env.pop(key, None)
    first = {}
    for style in ("wave", "mosaic"):
        out = tmp / f"first-{style}.png"
        first[style] = run_cli(["stylize", str(photo), "--style", style, "-o", str(out)], env)
        assert first[style]["torch"], "a cold cache goes through the torch path"
    settings = EngineSettings(
        cache_dir=tmp / "cache", data_dir=tmp / "data", model_mirror=str(shared_dir / "models")
    )
    return {"tmp": tmp, "photo": photo, "env": env, "settings": settings}


def torch_path(warm: dict[str, Any], style: str | StyleMix, **options: Any) -> Image.Image:
    """Today's picture: the Stylizer itself, in this process, on the same cache."""
    engine = open_engine(warm["settings"])
    photo = load_image(warm["photo"], max_side=1280)
    return engine.stylizer().stylize(photo, style, **options)


@pytest.mark.parametrize(
    ("args", "style", "options"),
    [
        (["--style", "wave"], "wave", {}),
        (
            ["--style", "wave", "--strength", "0.6", "--preserve-colors"],
            "wave",
            {"strength": 0.6, "preserve_colors": True},
        ),
        (["--style", "mosaic", "--strength", "0.8"], "mosaic", {"strength": 0.8}),
        # a mix of two presets shares mosaic's IR and verdict: cold on its first run
        (
            ["--style", "mosaic", "--style", "candy", "--mix", "0.3"],
            StyleMix("mosaic", "candy", 0.3),
            {},
        ),
    ],
)
def test_warm_cache_serves_without_torch(
    warm: dict[str, Any], args: list[str], style: str | StyleMix, options: dict[str, Any]
) -> None:
    out = warm["tmp"] / f"cold-{abs(hash(tuple(args)))}.png"
    seen = run_cli(["stylize", str(warm["photo"]), *args, "-o", str(out)], warm["env"])
    assert seen == {"code": 0, "torch": False, "openvino": True}
    painted = Image.open(out)
    reference = torch_path(warm, style, **options)
    assert painted.size == reference.size
    assert psnr(painted, reference) >= FLOOR_DB


def test_cold_picture_matches_the_first_runs(warm: dict[str, Any]) -> None:
    """Against the file the torch path wrote in its own process, too."""
    out = warm["tmp"] / "cold-wave-again.png"
    seen = run_cli(["stylize", str(warm["photo"]), "--style", "wave", "-o", str(out)], warm["env"])
    assert not seen["torch"]
    assert psnr(Image.open(out), Image.open(warm["tmp"] / "first-wave.png")) >= FLOOR_DB


def test_another_backend_or_tiles_still_take_torch(warm: dict[str, Any]) -> None:
    out = warm["tmp"] / "eager.png"
    env = {**warm["env"], "TOTOSHKA_BACKEND": "eager-fp32"}
    seen = run_cli(["stylize", str(warm["photo"]), "--style", "wave", "-o", str(out)], env)
    assert seen["torch"]


# a budget too small for the 483×362 photo untiled: it is painted in bands
SMALL_BUDGET_MB = 335.0


@pytest.mark.parametrize("style", ["wave", "mosaic"])
def test_big_pictures_paint_in_bands_without_torch_once_the_band_ir_is_made(
    warm: dict[str, Any], style: str
) -> None:
    """Over the memory budget, the first picture of a residue class goes through the
    torch path, which makes the band IR; the next is painted in bands by `ovbands`
    without torch, and matches the torch path's bands (mosaic: a style input)."""
    small = warm["settings"].model_copy(update={"memory_budget_mb": SMALL_BUDGET_MB})
    cold = open_engine(small).cold_painter()
    before = cold.plan(style, (483, 362))
    assert isinstance(before, str) and "no band IR" in before
    env = {**warm["env"], "TOTOSHKA_MEMORY_BUDGET_MB": str(SMALL_BUDGET_MB)}
    args = ["stylize", str(warm["photo"]), "--style", style]
    first = run_cli([*args, "-o", str(warm["tmp"] / f"bands-{style}-1.png")], env)
    assert first["torch"]
    after = cold.plan(style, (483, 362))
    assert isinstance(after, coldpath.ColdPlan) and after.bands
    again = run_cli([*args, "-o", str(warm["tmp"] / f"bands-{style}-2.png")], env)
    assert again == {"code": 0, "torch": False, "openvino": True}
    painted = Image.open(warm["tmp"] / f"bands-{style}-2.png")
    assert painted.size == (483, 362)
    assert psnr(painted, Image.open(warm["tmp"] / f"bands-{style}-1.png")) >= FLOOR_DB
    # and the untiled picture, as the bands' exact statistics promise
    assert psnr(painted, torch_path(warm, style)) >= FLOOR_DB


def test_cold_bands_cross_band_borders_and_keep_the_options(
    warm: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small bands (several per stage) on the uint8 photo, strength and colours too:
    the untiled torch picture, to ≥ 40 dB."""
    from totoshka.engine.backends import ovbands

    small = warm["settings"].model_copy(update={"memory_budget_mb": SMALL_BUDGET_MB})
    engine = open_engine(small)
    photo = load_image(warm["photo"], max_side=1280)
    engine.stylizer().stylize(photo, "wave")  # the torch path's bands: the band IR, once
    monkeypatch.setattr(ovbands, "TORCH_FREE_BAND_VALUES", 200_000)  # several bands a stage
    cold = engine.cold_painter()
    options = {"strength": 0.7, "preserve_colors": True}
    painted = cold.stylize(photo, "wave", **options)
    assert painted is not None, cold.last_reason
    assert cold.last_path is not None
    assert psnr(painted, torch_path(warm, "wave", **options)) >= FLOOR_DB


def test_a_new_residue_takes_torch_once(warm: dict[str, Any]) -> None:
    """300×225 (sides ≡ 1, 0 mod 4) has no IR yet: torch converts it, then it is cold."""
    args = ["stylize", str(warm["photo"]), "--style", "mosaic", "--max-side", "300"]
    first = run_cli([*args, "-o", str(warm["tmp"] / "r10-first.png")], warm["env"])
    again = run_cli([*args, "-o", str(warm["tmp"] / "r10-again.png")], warm["env"])
    assert first["torch"] and not again["torch"]
    painted = Image.open(warm["tmp"] / "r10-again.png")
    assert painted.size == (300, 225)
    assert psnr(painted, torch_path(warm, "mosaic", max_side=300)) >= FLOOR_DB


def test_engine_paint_says_what_painted(warm: dict[str, Any]) -> None:
    engine = open_engine(warm["settings"])
    photo = load_image(warm["photo"], max_side=1280)
    engine.paint(photo, "wave")
    assert engine.last_path == "openvino-bf16 (no torch)" or engine.last_path == (
        "openvino-fp32 (no torch)"
    )
    engine.paint(photo, "wave", max_side=20)  # too small to calibrate: eager fp32
    assert engine.last_path == "eager-fp32"


def test_static_compiles_load_their_blob_and_a_torn_blob_is_compiled_afresh(
    warm: dict[str, Any],
) -> None:
    """OpenVINO's model cache keeps one blob per (model, shape, precision): a second
    cold run of the same picture adds none; a torn blob still paints."""
    blobs = warm["settings"].compiled_path() / "openvino" / "blobs"
    args = ["stylize", str(warm["photo"]), "--style", "wave", "--max-side", "400"]
    run_cli([*args, "-o", str(warm["tmp"] / "blob-1.png")], warm["env"])
    seen = run_cli([*args, "-o", str(warm["tmp"] / "blob-2.png")], warm["env"])
    assert seen == {"code": 0, "torch": False, "openvino": True}
    before = sorted(p.name for p in blobs.glob("*.blob"))
    assert before
    run_cli([*args, "-o", str(warm["tmp"] / "blob-3.png")], warm["env"])
    assert sorted(p.name for p in blobs.glob("*.blob")) == before
    for blob in blobs.glob("*.blob"):
        blob.chmod(0o600)
        blob.write_bytes(b"torn")
    seen = run_cli([*args, "-o", str(warm["tmp"] / "blob-4.png")], warm["env"])
    assert seen["code"] == 0 and not seen["torch"]
    reference = Image.open(warm["tmp"] / "blob-2.png")
    assert psnr(Image.open(warm["tmp"] / "blob-4.png"), reference) >= FLOOR_DB


def test_the_oldest_blobs_go_past_the_limit(tmp_path: Path) -> None:
    for i, name in enumerate(("old", "mid", "new")):
        blob = tmp_path / f"{name}.blob"
        blob.write_bytes(b"x" * 100)
        os.utime(blob, (1000 + i, 1000 + i))
    (tmp_path / "notes.txt").write_bytes(b"y" * 1000)  # not a blob: never removed
    coldpath.prune_blobs(tmp_path, 250)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.blob", "new.blob", "notes.txt"]
    coldpath.prune_blobs(tmp_path / "absent", 0)  # no cache yet: nothing to do
