"""Measure how a non-square painting should feed Magenta's 256x256 predictor.

Not a test: `python tests/own_style/measure_painting_fit.py` prints, for every
painting in ../shared/images/styles, the cosine between the vector each fit gives
and a dense reference (the mean of the vectors of 256x256 crops every 32 px
along the long side of the painting scaled to a 256 short side).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from totoshka.engine import own_style
from totoshka.engine.models import magenta

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TOTOSHKA_SHARED", REPO / ".." / "shared")).resolve()


def dense_reference(predictor: torch.nn.Module, image: Image.Image, step: int = 32) -> np.ndarray:
    a = own_style._array(own_style._scaled(own_style.check_painting(image), 256))
    h, w = a.shape[:2]
    offsets = sorted(
        {
            (t, x)
            for t in [*range(0, h - 255, step), h - 256]
            for x in [*range(0, w - 255, step), w - 256]
        }
    )
    crops = np.stack([a[t : t + 256, x : x + 256] for t, x in offsets]).transpose(0, 3, 1, 2)
    with torch.inference_mode():
        return predictor(torch.from_numpy(np.ascontiguousarray(crops))).mean(0).numpy()


def paintings() -> list[tuple[str, Image.Image]]:
    files = sorted((SHARED / "images" / "styles").glob("*.jpg"))
    items = [(p.stem[:24], Image.open(p).convert("RGB")) for p in files]
    # wide and tall cases the shared paintings lack: two paintings side by side
    # (a diptych), and a 3:1 panorama cut from one painting
    a, b = Image.open(files[-2]).convert("RGB"), Image.open(files[15]).convert("RGB")
    h = 400
    a = a.resize((round(a.width * h / a.height), h))
    b = b.resize((round(b.width * h / b.height), h))
    diptych = Image.new("RGB", (a.width + b.width, h))
    diptych.paste(a, (0, 0))
    diptych.paste(b, (a.width, 0))
    items.append(("diptych wave+starry", diptych))
    wave = Image.open(SHARED / "images" / "styles" / "wave.jpg").convert("RGB")
    items.append(("panorama 3:1 (wave)", wave.crop((0, 0, wave.width, wave.width // 3))))
    return items


def main() -> None:
    predictor = magenta.load_predictor(SHARED / "models" / "magenta" / magenta.PREDICTION_FILE)
    items = paintings()
    refs = [dense_reference(predictor, image) for _, image in items]
    # cosine hardly separates fits (all style vectors share a large common part):
    # the error is the distance to the reference over the median distance between
    # two different paintings' references
    spread = float(
        np.median([np.linalg.norm(x - y) for i, x in enumerate(refs) for y in refs[i + 1 :]])
    )
    rows: dict[str, list[tuple[float, float]]] = {fit: [] for fit in own_style.FITS}
    for (name, image), ref in zip(items, refs, strict=True):
        line = [f"{name:24s} {image.width:5d}x{image.height:<5d}"]
        for fit in own_style.FITS:
            v = np.asarray(
                own_style.predict_vector(predictor, own_style.painting_crops(image, fit))
            )
            cos = float(v @ ref / np.linalg.norm(v) / np.linalg.norm(ref))
            err = float(np.linalg.norm(v - ref)) / spread
            rows[fit].append((cos, err))
            line.append(f"{fit}={err:.3f}")
        print(" ".join(line))
    print(f"relative error = |v - dense| / {spread:.2f} (median distance between paintings)")
    for fit, values in rows.items():
        cos, err = np.array(values).T
        print(
            f"{fit:8s} error mean {err.mean():.3f} worst {err.max():.3f} | "
            f"cosine mean {cos.mean():.4f} worst {cos.min():.4f}"
        )


if __name__ == "__main__":
    main()
