"""The built-in Magenta painting presets: their style vectors, recomputed from the
paintings in ../shared (never copied here: only the numbers ship, in catalog.json).

    TOTOSHKA_SHARED=../shared python scripts/make_presets.py            # evidence table
    TOTOSHKA_SHARED=../shared python scripts/make_presets.py --write    # update catalog.json
    TOTOSHKA_SHARED=../shared python scripts/make_presets.py --check    # CI: catalog == recomputed

Which paintings: public domain everywhere the bot is meant to run (EU and Russia:
life + 70 years, counted to the 1 January after; Russia protects a foreign work no
longer than its country of origin, so the French painters' term is France's, whose
wartime extensions the 70 years absorb; US: published before 1931, or unpublished
and life + 70), plus pytorch/examples' "mosaic" and "candy" style images, which that
repository ships under BSD-3-Clause. Each entry's `license` says why it is in.

How a vector is made (`METHOD`, recorded in each entry): the evidence table
(default mode) renders two public-domain photos with each candidate vector and
measures how much of the painting the picture carries; see `METHOD` for the
numbers behind the choice. `--write` rewrites only these presets' entries of
catalog.json, re-reading the file just before writing (others edit it too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from totoshka.assets import sample_photo
from totoshka.engine import own_style
from totoshka.engine.models import magenta

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "src" / "totoshka" / "engine" / "catalog.json"
STYLES_DIR = "images/styles"  # inside the shared folder
MODEL = "magenta"
SIGNIFICANT = 6  # digits kept per number: rounding moves the picture by nothing visible
DENSE_STEP = 32

PREDICTOR = (
    "Magenta style predictor (the published int8 .tflite, weights dequantized, float32, "
    "as totoshka.engine.models.magenta.load_predictor reads it)"
)
# The record of each candidate: enough words to recompute it by hand.
METHODS = {
    "crops3": (
        f"{PREDICTOR}; painting scaled to a 256 px "
        "short side (PIL bilinear, reducing_gap=3); mean of the vectors of three 256x256 "
        "crops at the start, centre and end of the long side (own_style PAINTING_FIT crops3)"
    ),
    "dense32": (
        f"{PREDICTOR}; painting scaled to a 256 px "
        "short side (PIL bilinear, reducing_gap=3); mean of the vectors of every 256x256 "
        f"crop on a {DENSE_STEP} px grid, the last row and column flush with the edges"
    ),
}
# The choice, on the evidence this script prints (10 presets x 2 photos, 2026-12):
# the two vectors differ by 0.00-0.06 of the median distance between paintings, and
# the pictures they paint by nothing visible (PSNR crops3 vs dense32 median 46.9 dB,
# lowest 39.0 dB); how much of the painting the picture carries is the same (style
# distance of the output's vector to the painting's dense one, over that median:
# 0.326 vs 0.328 mean, 0.448 both worst, the unpainted photo ~1.1; Lab palette
# distance 7.5 both mean, 13.9 vs 13.8 worst). With no difference to buy, the
# presets use the engine's own fit, so `totoshka styles add --painting FILE` and
# `Stylizer.style_vector` reproduce a preset's vector exactly.
METHOD = "crops3"


@dataclass(frozen=True)
class Preset:
    id: str
    file: str  # in <shared>/images/styles
    title_en: str
    title_ru: str
    credit: str
    rights: str


PRESETS: tuple[Preset, ...] = (
    Preset(
        "mosaic",
        "mosaic.jpg",
        "Mosaic",
        "Мозаика",
        "a stained-glass mosaic of a woman with flowers: the mosaic.jpg style image of "
        "pytorch/examples (fast_neural_style/images/style-images)",
        "BSD-3-Clause: shipped by pytorch/examples (Copyright (c) 2017 Pytorch contributors); "
        "only its style vector is kept here",
    ),
    Preset(
        "candy",
        "candy.jpg",
        "Candy",
        "Конфетти",
        "a colourful painting of swirls and flowers: the candy.jpg style image of "
        "pytorch/examples (fast_neural_style/images/style-images)",
        "BSD-3-Clause: shipped by pytorch/examples (Copyright (c) 2017 Pytorch contributors); "
        "only its style vector is kept here",
    ),
    Preset(
        "hokusai_wave",
        "wave.jpg",
        "The Great Wave (Magenta)",
        "Большая волна (Magenta)",
        "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
        "public domain: Hokusai died 1849; the print was published c. 1831",
    ),
    Preset(
        "vangogh_starry",
        "starry_night.jpg",
        "The Starry Night",
        "Звёздная ночь",
        "Vincent van Gogh, The Starry Night (1889)",
        "public domain: van Gogh died 1890; painted 1889",
    ),
    Preset(
        "munch_scream",
        "the_scream.jpg",
        "The Scream (Magenta)",
        "Крик (Magenta)",
        "Edvard Munch, The Scream (1893)",
        "public domain: Munch died 1944 (EU/Russia since 2015); painted and exhibited 1893",
    ),
    Preset(
        "turner_wreck",
        "shipwreck.jpg",
        "The Shipwreck (Magenta)",
        "Кораблекрушение (Magenta)",
        "J. M. W. Turner, The Wreck of a Transport Ship (The Shipwreck of the Minotaur), c. 1810",
        "public domain: Turner died 1851; painted c. 1810",
    ),
    Preset(
        "kandinsky_vii",
        "composition_vii.jpg",
        "Composition VII",
        "Композиция VII",
        "Wassily Kandinsky, Composition VII (1913)",
        "public domain: Kandinsky died 1944 (EU/Russia since 2015); painted and published "
        "1913 (US: before 1931)",
    ),
    Preset(
        "picabia_udnie",
        "udnie.jpg",
        "Udnie (Magenta)",
        "Удни (Magenta)",
        "Francis Picabia, Udnie (Young American Girl, The Dance), 1913",
        "public domain: Picabia died 1953 (EU/Russia since 2024; France's wartime extensions "
        "are absorbed by the 70 years); shown at the Salon d'Automne 1913 (US: before 1931)",
    ),
    Preset(
        "matisse_hat",
        "woman-with-hat-matisse.jpg",
        "Woman with a Hat",
        "Женщина в шляпе",
        "Henri Matisse, Woman with a Hat (1905)",
        "public domain: Matisse died 1954 (EU/Russia since 2025; France's wartime extensions "
        "are absorbed by the 70 years); shown at the Salon d'Automne 1905 (US: before 1931)",
    ),
    Preset(
        "delaunay_portrait",
        "Robert_Delaunay__1906__Portrait.jpg",
        "Portrait of Metzinger",
        "Портрет Метценже",
        "Robert Delaunay, Portrait of Jean Metzinger (Man with a Tulip), 1906",
        "public domain: Delaunay died 1941 (EU/Russia since 2012); painted 1906",
    ),
)
# Looked at and left out (still in copyright, or the author is unknown):
# la_muse, seated-nude, picasso_selfport1907 (Picasso, d. 1973), escher_sphere
# (Escher, d. 1972), rain_princess, rain-princess-cropped (Afremov, d. 2019),
# frida_kahlo (d. 1954; Mexico life + 100), strip (a drip painting, Pollock-like,
# unidentified; Pollock d. 1956 would be protected until 2027), feathers, pencil
# (modern illustrations, author unknown), stars2 (an astronomical photograph, source
# unknown), mosaic_ducks_massimo (a photograph of an ancient mosaic by an unknown
# photographer).


def shared_dir() -> Path:
    return Path(os.environ.get("TOTOSHKA_SHARED", REPO / ".." / "shared")).resolve()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_predictor(shared: Path) -> magenta.StylePredictor:
    return magenta.load_predictor(str(shared / "models" / "magenta" / magenta.PREDICTION_FILE))


def load_transfer(shared: Path) -> magenta.TransferNetwork:
    return magenta.load_transfer(str(shared / "models" / "magenta" / magenta.TRANSFER_FILE))


def dense_crops(image: Image.Image, step: int = DENSE_STEP) -> torch.Tensor:
    """(N,3,256,256): every crop on a `step` px grid of the painting at a 256 px short
    side, scaled exactly as the engine scales it (own_style's own helpers)."""
    side = magenta.PREDICTOR_SIZE
    a = own_style._array(own_style._scaled(own_style.check_painting(image), side))
    h, w = a.shape[:2]
    rows = sorted({*range(0, h - side + 1, step), h - side})
    cols = sorted({*range(0, w - side + 1, step), w - side})
    crops = np.stack([a[t : t + side, x : x + side] for t in rows for x in cols])
    return torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2)))


CROPS: dict[str, Callable[[Image.Image], torch.Tensor]] = {
    "crops3": lambda image: own_style.painting_crops(image, "crops3"),
    "dense32": dense_crops,
}


def vector_of(predictor: torch.nn.Module, image: Image.Image, method: str) -> list[float]:
    return own_style.predict_vector(predictor, CROPS[method](image))


def rounded(vector: Sequence[float], digits: int = SIGNIFICANT) -> list[float]:
    return [float(f"{x:.{digits}g}") for x in vector]


def load_painting(shared: Path, preset: Preset) -> Image.Image:
    return own_style.load_painting(shared / STYLES_DIR / preset.file)


def entry(preset: Preset, vector: Sequence[float], source_sha256: str) -> dict[str, Any]:
    """The preset's catalog.json entry (the schema of `catalog.Style`)."""
    return {
        "id": preset.id,
        "model": MODEL,
        "title": {"en": preset.title_en, "ru": preset.title_ru},
        "credit": f"{preset.credit}; network: Magenta arbitrary style transfer "
        "(Ghiasi et al. 2017)",
        "license": preset.rights,
        "vector": rounded(vector),
        "vector_method": METHODS[METHOD],
        "vector_source": f"{STYLES_DIR}/{preset.file}",
        "vector_source_sha256": source_sha256,
    }


def recompute(shared: Path, presets: Sequence[Preset] = PRESETS) -> list[dict[str, Any]]:
    predictor = load_predictor(shared)
    out = []
    for preset in presets:
        path = shared / STYLES_DIR / preset.file
        vector = vector_of(predictor, own_style.load_painting(path), METHOD)
        out.append(entry(preset, vector, sha256_of(path)))
    return out


# --- --check -------------------------------------------------------------------------

# How far a recomputed vector may be from the catalog's: the catalog keeps 6
# significant digits (|error| <= 5e-7 * |x|, well under 1e-5 for these numbers, all
# below 10 in magnitude), and another CPU's float kernels may sum in another order
# (~1e-6 relative on the predictor's output). 1e-4 is both with a wide margin and
# still 10^4 times below the distance between two different paintings (~4).
TOLERANCE = 1e-4


def differences(
    catalog_styles: Sequence[dict[str, Any]], fresh: Sequence[dict[str, Any]]
) -> list[str]:
    """What differs between the catalog's preset entries and freshly computed ones."""
    by_id = {s["id"]: s for s in catalog_styles}
    problems = []
    for new in fresh:
        old = by_id.get(new["id"])
        if old is None:
            problems.append(f"{new['id']}: not in the catalog")
            continue
        for key in ("model", "vector_method", "vector_source", "vector_source_sha256"):
            if old.get(key) != new[key]:
                problems.append(f"{new['id']}: {key} is {old.get(key)!r}, expected {new[key]!r}")
        if len(old.get("vector") or ()) != len(new["vector"]):
            problems.append(f"{new['id']}: vector has {len(old.get('vector') or ())} numbers")
            continue
        gap = float(np.max(np.abs(np.subtract(old["vector"], new["vector"]))))
        if not gap <= TOLERANCE:
            problems.append(f"{new['id']}: vector differs by up to {gap:.2g} (> {TOLERANCE})")
    return problems


# --- --write: read-modify-write of catalog.json ---------------------------------------


def write_catalog(fresh: Sequence[dict[str, Any]], path: Path = CATALOG) -> None:
    """Replace (or append) only these presets' entries, in a copy read just now."""
    data = json.loads(path.read_text("utf-8"))
    ids = {e["id"] for e in fresh}
    styles = data["styles"]
    for e in fresh:
        clash = [s for s in styles if s["id"] == e["id"] and s.get("model") != MODEL]
        if clash:
            raise SystemExit(f"{e['id']}: the id is taken by a style of {clash[0]['model']!r}")
    index = {s["id"]: i for i, s in enumerate(styles)}
    for e in fresh:
        if e["id"] in index:
            styles[index[e["id"]]] = e
        else:
            styles.append(e)
    assert {s["id"] for s in styles} >= ids
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


# --- the evidence ---------------------------------------------------------------------


def photos() -> dict[str, Image.Image]:
    """Two public-domain photos: the gallery's astronaut (NASA) and scikit-image's
    chelsea (Stefan van der Walt, CC0)."""
    from skimage import data as skdata

    return {"astronaut": sample_photo(), "chelsea": Image.fromarray(skdata.chelsea())}


def paint(
    transfer: magenta.TransferNetwork, photo: Image.Image, vector: Sequence[float]
) -> np.ndarray:
    net = magenta.BoundTransfer(transfer, list(vector))
    x = torch.from_numpy(np.asarray(photo, np.float32).transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        y = net(x)[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(y)


def lab_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb).reshape(-1, 3)
    return lab.mean(0), np.cov(lab.T)


def palette_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet distance between two Gaussians of Lab colours (mean and covariance):
    0 for the same palette, in Lab units (about one just-noticeable difference)."""
    from scipy.linalg import sqrtm

    (m1, c1), (m2, c2) = a, b
    root = sqrtm(c1 @ c2).real
    return math.sqrt(max(0.0, float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * root))))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def evidence(shared: Path) -> None:
    predictor, transfer = load_predictor(shared), load_transfer(shared)
    pictures = photos()
    paintings = {p.id: load_painting(shared, p) for p in PRESETS}
    refs = {pid: np.asarray(vector_of(predictor, im, "dense32")) for pid, im in paintings.items()}
    spread = float(
        np.median([np.linalg.norm(refs[a] - refs[b]) for a in refs for b in refs if a < b])
    )
    print(
        "style: |v(output) - v_dense(painting)| / median distance between paintings "
        f"({spread:.2f}); palette: Fréchet distance of Lab colours, output vs painting"
    )
    print(
        "|dv|: crops3 vs dense32 vectors / spread; psnr(round): output with the vector "
        "rounded to 6 digits vs unrounded; psnr(c3-d32): crops3 output vs dense32 output"
    )
    print(f"{'preset':18s} {'photo':9s} {'method':8s} {'|dv|':>6s} {'style':>6s} "
          f"{'palette':>7s} {'psnr(round)':>11s} {'psnr(c3-d32)':>12s}")  # fmt: skip
    totals: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
    between: list[float] = []
    for preset in PRESETS:
        painting = paintings[preset.id]
        ref, colours = refs[preset.id], lab_stats(np.asarray(painting))
        vectors = {m: vector_of(predictor, painting, m) for m in METHODS}
        gap = np.linalg.norm(np.subtract(vectors["crops3"], vectors["dense32"])) / spread
        for name, photo in pictures.items():
            photo_style = np.linalg.norm(np.asarray(vector_of(predictor, photo, "dense32")) - ref)
            photo_palette = palette_distance(lab_stats(np.asarray(photo)), colours)
            outs = {m: paint(transfer, photo, v) for m, v in vectors.items()}
            between.append(psnr(outs["crops3"], outs["dense32"]))
            print(f"{preset.id:18s} {name:9s} {'(photo)':8s} {gap:6.3f} "
                  f"{photo_style / spread:6.3f} {photo_palette:7.1f} {'':11s} "
                  f"{between[-1]:12.1f}")  # fmt: skip
            for method, vector in vectors.items():
                out = outs[method]
                v_out = np.asarray(vector_of(predictor, Image.fromarray(out), "dense32"))
                style = float(np.linalg.norm(v_out - ref)) / spread
                palette = palette_distance(lab_stats(out), colours)
                same = psnr(out, paint(transfer, photo, rounded(vector)))
                totals[method].append((style, palette))
                print(f"{'':18s} {'':9s} {method:8s} {'':6s} {style:6.3f} {palette:7.1f} "
                      f"{same:11.1f}")  # fmt: skip
    for method, rows in totals.items():
        style, palette = np.asarray(rows).T
        print(f"{method:8s} style mean {style.mean():.3f} worst {style.max():.3f} | "
              f"palette mean {palette.mean():.1f} worst {palette.max():.1f}")  # fmt: skip
    print(f"crops3 vs dense32 outputs: PSNR median {np.median(between):.1f} dB, "
          f"lowest {min(between):.1f} dB")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update catalog.json's presets")
    mode.add_argument("--check", action="store_true", help="compare catalog.json with them")
    args = parser.parse_args(argv)
    shared = shared_dir()
    if args.write:
        write_catalog(recompute(shared))
        print(f"wrote {len(PRESETS)} presets into {CATALOG}")
        return 0
    if args.check:
        problems = differences(json.loads(CATALOG.read_text("utf-8"))["styles"], recompute(shared))
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{len(PRESETS) - len({p.split(':')[0] for p in problems})}/{len(PRESETS)} ok")
        return 1 if problems else 0
    evidence(shared)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
