"""Render the gallery in docs/gallery/: public-domain sample photos shipped with
scikit-image, repainted by built-in styles, plus a contact sheet; and with
--every-style, one preview of every built-in style on the astronaut photo
(docs/gallery/styles/, the README's gallery).

    TOTOSHKA_MODEL_MIRROR=../shared/models python scripts/make_gallery.py [--every-style]

The photos (skimage.data): astronaut (NASA, public domain), coffee (Rachel
Michetti, CC0), chelsea (Stefan van der Walt, CC0). The pictures written here are
the project's own output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw
from skimage import data as skdata

from totoshka.engine.factory import open_engine
from totoshka.engine.imageio import encode_image
from totoshka.engine.settings import EngineSettings

PHOTOS = {
    "astronaut": skdata.astronaut,
    "coffee": skdata.coffee,
    "chelsea": skdata.chelsea,
}
STYLES = ["wave", "scream", "udnie", "la_muse", "rain_princess", "wreck"]
OUT = Path(__file__).resolve().parents[1] / "docs" / "gallery"


def contact_sheet(rows: list[list[tuple[str, Image.Image]]], cell: int = 200) -> Image.Image:
    label_h = 18
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (cols * cell, len(rows) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, row in enumerate(rows):
        for x, (label, img) in enumerate(row):
            thumb = img.copy()
            thumb.thumbnail((cell - 4, cell - 4), Image.Resampling.LANCZOS)
            left = x * cell + (cell - thumb.width) // 2
            top = y * (cell + label_h) + label_h + (cell - thumb.height) // 2
            sheet.paste(thumb, (left, top))
            draw.text((x * cell + 4, y * (cell + label_h) + 3), label, fill="black")
    return sheet


def every_style(engine, stylizer, out: Path, side: int, quality: int) -> None:
    """A preview of each style the bot offers, as the bot's gallery renders it: the
    astronaut photo (NASA, public domain), never the painting itself."""
    folder = out / "styles"
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(skdata.astronaut()).convert("RGB")
    photo.thumbnail((side, side), Image.Resampling.LANCZOS)
    cells = []
    for style_id, _ in engine.offered_styles():
        painting = stylizer.stylize(photo, style_id, max_side=side)
        path = folder / f"{style_id}.jpg"
        path.write_bytes(encode_image(painting, "jpeg", quality))
        cells.append((style_id, painting))
        print(path)
    per_row = 6
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    sheet = folder / "contact_sheet.jpg"
    sheet.write_bytes(encode_image(contact_sheet(rows, cell=180), "jpeg", 84))
    print(sheet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, default=384)
    parser.add_argument("--quality", type=int, default=82)
    parser.add_argument("--mirror", help="model mirror (default: $TOTOSHKA_MODEL_MIRROR)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--every-style", action="store_true", help="only the previews of every style"
    )
    args = parser.parse_args()

    settings = EngineSettings(**({"model_mirror": args.mirror} if args.mirror else {}))
    engine = open_engine(settings)
    catalog, stylizer = engine.catalog, engine.stylizer()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.every_style:
        every_style(engine, stylizer, args.out, 256, args.quality)
        return
    rows = []
    for name, loader in PHOTOS.items():
        photo = Image.fromarray(loader()).convert("RGB")
        photo.thumbnail((args.max_side, args.max_side), Image.Resampling.LANCZOS)
        row = [(name, photo)]
        for style_id in STYLES:
            painting = stylizer.stylize(photo, style_id, max_side=args.max_side)
            path = args.out / f"{name}.{style_id}.jpg"
            path.write_bytes(encode_image(painting, "jpeg", args.quality))
            row.append((catalog.style(style_id).title["en"], painting))
            print(path)
        rows.append(row)
    sheet = args.out / "contact_sheet.jpg"
    sheet.write_bytes(encode_image(contact_sheet(rows), "jpeg", 85))
    print(sheet)
    total = sum(p.stat().st_size for p in args.out.glob("*.jpg"))
    print(f"{total / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
