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
