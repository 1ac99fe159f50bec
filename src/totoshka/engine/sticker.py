"""Static stickers: painted, and handed back as a sticker Telegram accepts.

A sticker is a WebP with transparency, one side exactly 512 px and the other at
most 512 (Telegram's rule for static stickers, which also caps the file at
512 KB). The networks paint RGB, so the picture is decoded through the same
guarded decoder as photos (alpha over white), painted, and the sticker's own
alpha channel is put back: the outline stays the outline, only the inside is
repainted.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

from totoshka.engine import imageio
from totoshka.engine.errors import ImageError

if TYPE_CHECKING:
    from totoshka.engine.own_style import OwnStyle
    from totoshka.engine.stylizer import Stylizer

SIDE = 512
MAX_BYTES = 512 * 1024


def _alpha(data: bytes) -> Image.Image | None:
    """The picture's transparency, or None when it has none (fully opaque)."""
    with Image.open(io.BytesIO(data)) as img:
        if "A" not in img.getbands() and "transparency" not in img.info:
            return None
        return img.convert("RGBA").getchannel("A")


def sticker_size(size: tuple[int, int]) -> tuple[int, int]:
    """The longer side at 512 px, the other in proportion (at least 1)."""
    w, h = size
    scale = SIDE / max(w, h)
    return (max(1, min(SIDE, round(w * scale))), max(1, min(SIDE, round(h * scale))))


def encode_sticker(painted: Image.Image, alpha: Image.Image | None) -> bytes:
    """WebP at 512 px with the alpha put back, smaller quality until it fits 512 KB."""
    size = sticker_size(painted.size)
    picture = painted.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    if alpha is not None:
        picture.putalpha(alpha.resize(size, Image.Resampling.LANCZOS))
    for quality in (90, 80, 70, 60, 50):
        buffer = io.BytesIO()
        picture.save(buffer, "WEBP", quality=quality, method=4, exact=alpha is not None)
        if buffer.tell() <= MAX_BYTES:
            return buffer.getvalue()
    raise ImageError("the painted sticker does not fit Telegram's 512 KB")


def paint_sticker(
    stylizer: Stylizer,
    data: bytes,
    style: str | OwnStyle,
    *,
    strength: float = 1.0,
    preserve_colors: bool = False,
) -> bytes:
    """The sticker ``data`` (any still image Pillow reads) painted, as sticker bytes."""
    rgb = imageio.load_image(data)  # the guarded decode: bombs and broken files stop here
    alpha = _alpha(data)
    painted = stylizer.stylize(
        rgb, style, max_side=SIDE, strength=strength, preserve_colors=preserve_colors
    )
    return encode_sticker(painted, alpha)
