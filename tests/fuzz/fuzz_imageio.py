"""Coverage-guided fuzzing of the decode/encode boundary (atheris, libFuzzer).

Every input goes through `imageio.load_image` (with and without a `max_side`, as
the CLI and the bot call it) and, when it decodes, `encode_image`; anything but an
`EngineError` escaping is a finding, and so is an input slower than `-timeout`
seconds or a process over `-rss_limit_mb`. Pillow's Python plugins and the
project's decoding modules are instrumented, so their branches guide the fuzzer.

    # a short, bounded run (what CI does, through tests/fuzz/test_fuzz_short.py)
    .venv/bin/python tests/fuzz/fuzz_imageio.py -runs=3000 -seed=1
    # a long run, both cores, corpus kept in a folder (crashes are written to ./)
    mkdir -p /tmp/fuzz-corpus
    .venv/bin/python tests/fuzz/fuzz_imageio.py /tmp/fuzz-corpus -runs=1000000 \\
        -timeout=10 -rss_limit_mb=1536 -print_final_stats=1

Without a corpus folder the run starts from seeds made here: one small picture in
each accepted format and mode, plus the crafted cases' structures at small sizes.
"""

from __future__ import annotations

import io
import math
import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    # Pillow's Python plugins, instrumented so that their branches guide the fuzzer
    from PIL import (  # noqa: F401
        BmpImagePlugin,
        GifImagePlugin,
        Image,
        JpegImagePlugin,
        PngImagePlugin,
        TiffImagePlugin,
        WebPImagePlugin,
    )

    from totoshka.engine import image_guard, imageio  # noqa: F401
    from totoshka.engine.errors import EngineError

HERE = Path(__file__).resolve().parent
DICTIONARY = HERE / "image_formats.dict"


def seeds() -> list[bytes]:
    """Small valid files of every accepted format (and a few modes), to start from."""
    sys.path.insert(0, str(HERE.parent / "engine"))
    import hostile_files as hf

    out: list[bytes] = []
    base = Image.radial_gradient("L").resize((24, 16))
    for mode in ("RGB", "L", "P", "RGBA", "CMYK", "I;16", "LA"):
        image = base.convert(mode) if mode != "I;16" else base.convert("I").convert("I;16")
        for fmt, options in (
            ("PNG", {}),
            ("TIFF", {"compression": "tiff_deflate"}),
            ("BMP", {}),
            ("GIF", {}),
            ("WEBP", {"lossless": True}),
            ("JPEG", {"progressive": True}),
        ):
            buf = io.BytesIO()
            try:
                image.save(buf, fmt, **options)
            except (OSError, ValueError, KeyError):
                continue
            out.append(buf.getvalue())
    out += [
        hf.tiff_with_integer_icc(4294967295),
        hf.progressive_jpeg_repeated_scan(64, 3),
        hf.bmp_rle8(64, 16),
        hf.tiff_huge_tile(32),
        hf.animated_webp_huge_canvas(64),
        hf.jpeg_claiming_bigger(64, 16),
    ]
    return out


def test_one_input(data: bytes) -> None:
    # the first byte chooses how the caller decodes (the bot passes a size, a painting
    # is decoded whole); the rest is the file, byte for byte as the seeds wrote it
    max_side = (None, 64, 1280)[data[0] % 3] if data else None
    payload = data[1:]
    try:
        image = imageio.load_image(payload, max_side=max_side)
        # results are at most the output size: encode what the pipeline would encode
        scale = max(1, math.ceil(max(image.size) / 1280))
        imageio.encode_image(image.reduce(scale), "jpeg" if len(payload) % 2 else "png")
    except EngineError:
        pass


def main() -> None:
    args = list(sys.argv)
    folders = [Path(a) for a in args[1:] if not a.startswith("-")]
    if not folders:  # no corpus folder: a temporary one
        folders = [Path(tempfile.mkdtemp(prefix="totoshka-fuzz-"))]
        args.append(str(folders[0]))
    if folders[0].is_dir() and not any(folders[0].iterdir()):  # an empty corpus: seed it
        for i, seed in enumerate(seeds()):
            # the first byte is the harness's own choice of max_side
            (folders[0] / f"seed-{i:03d}").write_bytes(b"\x00" + seed)
    if DICTIONARY.exists() and not any(a.startswith("-dict=") for a in args):
        args.append(f"-dict={DICTIONARY}")
    for flag, value in (("-timeout", "10"), ("-rss_limit_mb", "1536"), ("-max_len", "65536")):
        if not any(a.startswith(flag + "=") for a in args):
            args.append(f"{flag}={value}")
    os.environ.setdefault("TOTOSHKA_FUZZ", "1")
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
