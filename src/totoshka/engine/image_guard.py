"""What a file may cost before it is decoded: refusals by structure, from the header.

The pixel limit alone (`imageio.MAX_PIXELS`) let small hand-made files through that
cost seconds of CPU or gigabytes of memory (issue 16). Each rule here reads only
the header and a few bytes, so it costs microseconds, and each one is set far from
what any camera or editor writes:

- memory: the decoder's own buffer, pixels × bytes per pixel of Pillow's mode
  (an animated WebP also needs libwebp's canvases), at most `MAX_DECODE_BYTES`;
- JPEG: at most `MAX_JPEG_SCANS` scans (a progressive JPEG from a camera, phone or
  editor has about 10; each scan is a pass over the whole picture), and at least
  `MIN_JPEG_BITS_PER_BLOCK` of data per 8×8 block (a flat grey picture, the
  cheapest there is, takes 2 bits a block; a 16×16 JPEG whose header claims
  7071×7071 has 0.006);
- BMP: run-length compressed files (Pillow decodes them in pure Python, a byte
  at a time) up to `MAX_RLE_BMP_PIXELS`;
- TIFF: a tile no larger than `max(the picture, 1024²)` (a 1×1 TIFF declaring one
  16384² tile made the decoder allocate 800 MB);
- every format whose compression has a bounded ratio: the declared pixels must fit
  in the file at that ratio (`MAX_RATIO`: deflate cannot expand more than 1032:1,
  LZW about 2730:1, uncompressed data not at all). A 204-byte TIFF declaring
  8×5963784 pixels, which the fuzzer found, holds 0.003% of its data.

Refusing by structure rather than by a decode in a killable child keeps the
common path as fast as before and gives the user a reason; the known slow and
large decoders are each bounded by one rule here (tests/engine/test_hostile_files.py
crafts each case and bounds its time and memory).
"""

from __future__ import annotations

import math
import struct

from PIL import Image

from totoshka.engine.errors import ImageError, ImageTooLargeError

MAX_DECODE_BYTES = 512 * 1024 * 1024
MAX_JPEG_SCANS = 100
MIN_JPEG_BITS_PER_BLOCK = 0.25
MAX_RLE_BMP_PIXELS = 4_000_000
ANIMATED_WEBP_BYTES_PER_PIXEL = 16  # the frame, libwebp's two canvases, Pillow's copy

# bytes per pixel of Pillow's storage for each mode (RGB is stored as 4)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def mode_bytes(mode: str) -> int:
    return _MODE_BYTES.get(mode, 4)


# How many decoded bytes one file byte can become, at most, by compression (with
# slack for headers): zlib/deflate's own bound is 1032:1, GIF/TIFF LZW ≈ 2730:1,
# PackBits 128:2. CCITT fax (1-bit pages) and WebP are left unbounded here.
_DEFLATE, _LZW, _RAW = 1100.0, 3000.0, 1.05
MAX_RATIO = {"PNG": _DEFLATE, "GIF": _LZW}
_TIFF_RATIO = {1: _RAW, 5: _LZW, 8: _DEFLATE, 32946: _DEFLATE, 32773: 70.0}
_BITS = {"1": 1, "L": 8, "P": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "LA": 16, "RGB": 24}


def _declared_bytes(img: Image.Image) -> float:
    return img.width * img.height * _BITS.get(img.mode, 32) / 8


def _ratio_check(img: Image.Image, raw: bytes, ratio: float) -> None:
    if _declared_bytes(img) > ratio * len(raw):
        raise ImageError(
            f"the {img.format} says it is {img.width}x{img.height} but holds only "
            f"{len(raw)} bytes: most of the picture is missing"
        )


def check_header(img: Image.Image, raw: bytes) -> None:
    """Refuse what would cost too much to decode; `img` is opened, not loaded."""
    w, h = img.size
    per_pixel = mode_bytes(img.mode)
    if img.format == "WEBP" and _webp_animated(raw):
        per_pixel = ANIMATED_WEBP_BYTES_PER_PIXEL
    if w * h * per_pixel > MAX_DECODE_BYTES:
        raise ImageTooLargeError(
            f"the image would need {w * h * per_pixel / 2**20:.0f} MB to decode "
            f"({w}x{h}, {img.mode}); the limit is {MAX_DECODE_BYTES / 2**20:.0f} MB"
        )
    check = _BY_FORMAT.get(img.format or "")
    if check is not None:
        check(img, raw)
    if img.format in MAX_RATIO:
        _ratio_check(img, raw, MAX_RATIO[img.format])


def _webp_animated(raw: bytes) -> bool:
    """The VP8X animation flag: such a file goes through libwebp's animation decoder,
    canvases and all, even when it holds a single frame."""
    return raw[12:16] == b"VP8X" and len(raw) > 20 and bool(raw[20] & 0x02)


def _jpeg(img: Image.Image, raw: bytes) -> None:
    # 0xFF 0xDA cannot occur inside entropy-coded data (a data 0xFF is followed by 0x00)
    scans = raw.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise ImageError(
            f"the JPEG has {scans} scans (cameras and editors write about 10; "
            f"the limit is {MAX_JPEG_SCANS})"
        )
    blocks = math.ceil(img.width / 8) * math.ceil(img.height / 8)
    if len(raw) * 8 < blocks * MIN_JPEG_BITS_PER_BLOCK:
        raise ImageError(
            f"the JPEG says it is {img.width}x{img.height} but holds only {len(raw)} bytes: "
            "most of the picture is missing"
        )


def _bmp(img: Image.Image, raw: bytes) -> None:
    compression = struct.unpack_from("<I", raw, 30)[0] if len(raw) >= 34 else 0
    if compression in (0, 3):  # uncompressed (3: bit fields): the pixels are in the file
        _ratio_check(img, raw, _RAW)
    if compression in (1, 2) and img.width * img.height > MAX_RLE_BMP_PIXELS:
        raise ImageError(
            f"run-length compressed BMPs are read up to {MAX_RLE_BMP_PIXELS / 1e6:.0f} MP "
            f"(this one is {img.width}x{img.height}); save it as PNG or JPEG"
        )


def _tiff(img: Image.Image, raw: bytes) -> None:
    tags = getattr(img, "tag_v2", {})
    tile_w, tile_h = tags.get(322), tags.get(323)
    compression = tags.get(259, 1)
    if isinstance(compression, int) and compression in _TIFF_RATIO:
        _ratio_check(img, raw, _TIFF_RATIO[compression])
    tiles = isinstance(tile_w, int) and isinstance(tile_h, int)
    if tiles and tile_w * tile_h > max(img.width * img.height, 1024 * 1024):
        raise ImageError(
            f"the TIFF's tiles ({tile_w}x{tile_h}) are larger than the picture "
            f"({img.width}x{img.height})"
        )


_BY_FORMAT = {"JPEG": _jpeg, "MPO": _jpeg, "BMP": _bmp, "TIFF": _tiff}
