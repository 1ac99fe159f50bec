"""Image handling that Telegram's servers do to every photo: validate, then derive sizes.

Telegram never hands a photo back as uploaded: it checks the image (decodable,
width + height ≤ 10000, aspect ratio ≤ 20), then stores a list of JPEG
``PhotoSize`` variants scaled to fit growing boxes (90, 320, 800, 1280, 2560 px).
A bot that picks ``message.photo[-1]`` gets the largest one; so does one here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from totoshka.emulator.errors import IMAGE_PROCESS_FAILED, PHOTO_INVALID_DIMENSIONS, bad_request
from totoshka.emulator.limits import Limits

JPEG_QUALITY = 87


@dataclass(frozen=True, slots=True)
class Variant:
    """One encoded size of a photo."""

    data: bytes
    width: int
    height: int


def _open(data: bytes, limits: Limits, largest_box: int) -> Image.Image:
    """The picture, judged by its header before anything is decoded: a file whose
    sides break Telegram's rule is refused at once (a 7000×7000 progressive JPEG
    with a thousand repeated scans took 51 s to decode first, past a client's
    timeout), and a JPEG is decoded no bigger than the largest size kept (libjpeg's
    DCT scaling: `draft` keeps at least that many pixels)."""
    try:
        image = Image.open(io.BytesIO(data))
        check_dimensions(image.width, image.height, limits)
        image.draft(image.mode, (largest_box, largest_box))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise bad_request(IMAGE_PROCESS_FAILED) from e
    return ImageOps.exif_transpose(image)


def check_dimensions(width: int, height: int, limits: Limits) -> None:
    """Telegram's photo rule: sum of sides bounded, and not too thin a strip."""
    if width < 1 or height < 1:
        raise bad_request(PHOTO_INVALID_DIMENSIONS)
    if width + height > limits.photo_max_width_plus_height:
        raise bad_request(PHOTO_INVALID_DIMENSIONS)
    if max(width, height) / min(width, height) > limits.photo_max_aspect_ratio:
        raise bad_request(PHOTO_INVALID_DIMENSIONS)


def photo_variants(data: bytes, boxes: tuple[int, ...], limits: Limits) -> list[Variant]:
    """Decode ``data`` and return the JPEG sizes Telegram would store, smallest first.

    Raises ``IMAGE_PROCESS_FAILED`` / ``PHOTO_INVALID_DIMENSIONS`` like Telegram.
    CPU-bound: call it through ``asyncio.to_thread``.
    """
    image = _open(data, limits, max(boxes))
    if image.mode not in ("RGB", "L"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    variants: list[Variant] = []
    longest = max(image.width, image.height)
    for box in boxes:
        scaled = image
        if longest > box:
            scaled = image.copy()
            scaled.thumbnail((box, box), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        scaled.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
        variants.append(Variant(buffer.getvalue(), scaled.width, scaled.height))
        if longest <= box:
            break
    return variants
