"""Render docs/gallery/own/: public-domain photos from scikit-image repainted in the
style of paintings from ../shared/images/styles (read in place; only the outputs
are committed). `python tests/own_style/make_own_gallery.py [out_dir]`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from own_style_helpers import make_stylizer
from PIL import Image, ImageDraw

from totoshka.engine.stylizer import OwnStyle

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
PHOTOS = ("astronaut", "coffee", "chelsea")
PAINTINGS = ("the_scream", "starry_night", "wave", "composition_vii")
SIDE = 512


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "gallery" / "own"
    out.mkdir(parents=True, exist_ok=True)
    stylizer = make_stylizer(Path(tempfile.mkdtemp()), SHARED / "models")
    vectors = {
        p: tuple(stylizer.style_vector(Image.open(SHARED / "images" / "styles" / f"{p}.jpg")))
        for p in PAINTINGS
    }
    cells: list[tuple[str, Image.Image]] = []
    for name in PHOTOS:
        image = photo(name)
        for p in PAINTINGS:
            result = stylizer.stylize(image, OwnStyle(vectors=((vectors[p], 1.0),)), max_side=SIDE)
            result.save(out / f"{name}.{p}.jpg", quality=85, optimize=True)
            cells.append((f"{name} / {p}", result))
    coffee = photo("coffee")
    mix = OwnStyle(vectors=((vectors["the_scream"], 0.5), (vectors["wave"], 0.5)))
    stylizer.stylize(coffee, mix, max_side=SIDE).save(
        out / "coffee.the_scream+wave.jpg", quality=85, optimize=True
    )
    for s in (0.3, 0.6):
        weak = OwnStyle(vectors=((vectors["starry_night"], 1.0),), style_strength=s)
        stylizer.stylize(coffee, weak, max_side=SIDE).save(
            out / f"coffee.starry_night.strength{s}.jpg", quality=85, optimize=True
        )
    # contact sheet: rows = photos, columns = paintings
    w, h = 256, 192
    sheet = Image.new("RGB", (w * len(PAINTINGS), h * len(PHOTOS)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(cells):
        r, c = divmod(i, len(PAINTINGS))
        thumb = img.copy()
        thumb.thumbnail((w, h))
        sheet.paste(thumb, (c * w + (w - thumb.width) // 2, r * h + (h - thumb.height) // 2))
        box = draw.textbbox((c * w + 4, r * h + 4), label)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill="black")
        draw.text((c * w + 4, r * h + 4), label, fill="white")
    sheet.save(out / "contact_sheet.jpg", quality=85, optimize=True)
    print(f"wrote {len(list(out.glob('*.jpg')))} pictures to {out}")


if __name__ == "__main__":
    main()
