"""Style vectors of paintings, kept on disk by the painting's pixels.

Why: turning a painting into Magenta's 100-number style vector costs a cold
process ≈ 0.3–0.4 s on a 2-core machine (the predictor's compile and three
256² crops through an Inception network in f32) and ≈ 70 MB of peak memory,
about as much as painting the photo itself. A person who paints several photos
with one painting (`totoshka stylize *.jpg --style-image mine.jpg`, or one photo
after another) pays it once. The key is a digest of the decoded pixels (so a
re-saved file of the same picture hits, a different crop does not) together with
what made the vector: the predictor's IR and the way the crops are cut. A vector
is a small JSON file; the oldest go past `KEEP` files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
KEEP = 512  # vectors kept (≈ 2 KB each)


def painting_key(painting: Image.Image, made_by: str) -> str:
    """The key of `painting`'s vector as `made_by` (predictor IR, crops, precision)
    computes it."""
    rgb = painting if painting.mode == "RGB" else painting.convert("RGB")
    digest = hashlib.sha256()
    digest.update(f"{FORMAT_VERSION}|{made_by}|{rgb.width}x{rgb.height}|".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()[:40]


class VectorCache:
    """Vectors in `folder`, one JSON file per key; a torn or odd file is a miss."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = folder
        self.dim = dim

    def get(self, key: str) -> list[float] | None:
        path = self.folder / f"{key}.json"
        try:
            vector = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not (
            isinstance(vector, list)
            and len(vector) == self.dim
            and all(isinstance(v, float) and math.isfinite(v) for v in vector)
        ):
            log.warning("style vector %s unreadable; computing it again", path.name)
            return None
        return vector

    def put(self, key: str, vector: list[float]) -> None:
        """Store `vector` (written whole, then renamed: a reader never sees half of
        it); a full or read-only disk only costs the next process the prediction."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump([float(v) for v in vector], f)
            os.replace(tmp, self.folder / f"{key}.json")
            self._prune()
        except OSError as exc:
            log.warning("style vector not kept (%s)", exc)

    def _prune(self) -> None:
        entries = []
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".json"):
                try:
                    entries.append((entry.stat().st_mtime, entry.path))
                except FileNotFoundError:  # another process pruned it
                    continue
        for _, path in sorted(entries)[: max(0, len(entries) - KEEP)]:
            Path(path).unlink(missing_ok=True)
