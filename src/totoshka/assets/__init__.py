"""Pictures shipped in the package, shared by every layer (no torch, no Telegram).

`astronaut.jpg`: NASA's public-domain portrait of Eileen Collins, 384 px, from
scikit-image's samples. The bot renders its style gallery from it and the engine's
self-test (`totoshka doctor`, the start-up line) measures on it, so neither needs
third-party art or an extra dependency.
"""

from __future__ import annotations

from importlib import resources

from PIL import Image


def sample_photo() -> Image.Image:
    """The astronaut portrait as an RGB image."""
    with resources.files(__name__).joinpath("astronaut.jpg").open("rb") as fh:
        return Image.open(fh).convert("RGB")


def sample_photo_covering(size: tuple[int, int]) -> Image.Image:
    """The portrait scaled to cover `size` (width, height) and centre-cropped to it:
    what the start-up probe and the workers' warm-up paint, at a job's size."""
    image = sample_photo()
    w, h = size
    scale = max(w / image.width, h / image.height)
    scaled = image.resize(
        (max(w, round(image.width * scale)), max(h, round(image.height * scale))),
        Image.Resampling.BICUBIC,
    )
    left, top = (scaled.width - w) // 2, (scaled.height - h) // 2
    return scaled.crop((left, top, left + w, top + h))
