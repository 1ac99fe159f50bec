"""Pictures in and out: decode safely, hand the engine plain sRGB RGB.

`load_image` checks the byte size, then opens the file *header only* and checks
the pixel count and what the decode would cost (`image_guard`: memory, JPEG scans
and data, run-length BMPs, TIFF tiles) before anything is decoded, so a
30000x30000 PNG bomb is refused in microseconds without allocating its 2.7 GB.
Then it decodes the first frame — a JPEG at the smallest DCT scale that still
covers `max_side`, when the caller says what size it needs — applies the EXIF
orientation, converts the colour mode (16-bit, palette, CMYK, alpha composited on
white) and converts an embedded ICC profile to sRGB.

It is the one boundary between files and the engine: whatever Pillow, libjpeg or
numpy raise in there (OverflowError from a malformed tag, MemoryError, …) leaves it
as an `ImageError` with a one-line message, so a file that can never decode is
answered once and never retried.

Truncated files are refused, except a JPEG whose missing tail is at most
`TRUNCATED_JPEG_TAIL` of its rows (a download cut just short of the end): it is
decoded with the missing rows filled, as libjpeg does.

`encode_image` writes JPEG or PNG with no metadata at all (no EXIF, no GPS, no
ICC: untagged means sRGB).
"""

from __future__ import annotations

import io
import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from totoshka.engine import image_guard
from totoshka.engine.errors import ImageError, ImageTooLargeError

MAX_BYTES = 25 * 1024 * 1024  # above Telegram's 20 MB file limit for bots
MAX_PIXELS = 50_000_000  # 50 MP: any phone photo, refused before decoding above it
# Pillow plugins tried when opening (a camera's MPO comes through the JPEG one).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
WHITE = (255, 255, 255)
ORIENTATION = 0x0112  # the EXIF tag
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
MAX_ICC_BYTES = 4 * 1024 * 1024  # real profiles are a few KB; a bigger "profile" is ignored
TRUNCATED_JPEG_TAIL = 0.02  # a JPEG missing at most 2% of its rows is kept, filled
JPEG_MAX_SIDE = 65_500  # the format's own limit (libjpeg refuses more)
HIGH_DEPTH_BAND_PIXELS = 1 << 20  # pixels per band when converting 16-bit/float pictures
DEFAULT_MAX_SIDE = 1280  # the longest side a picture is painted at unless asked otherwise

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half a photo


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def load_image(
    data: bytes | Path | str,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> Image.Image:
    """Decode `data` (bytes or a path) into an sRGB RGB image, or raise ImageError.

    `max_side`: the longest side the caller will use; a JPEG is then decoded at the
    smallest scale (1/2, 1/4, 1/8) that still covers it — the result may be larger
    than `max_side`, never smaller (callers resize).
    """
    try:
        return _load(data, max_bytes, max_pixels, max_side)
    except ImageError:
        raise
    except MemoryError:
        raise ImageTooLargeError("the image needs too much memory to decode") from None
    except Exception as exc:  # the boundary: nothing else leaves the decoder
        raise ImageError(f"the image cannot be decoded ({_first_line(exc)})") from None


def _load(
    data: bytes | Path | str, max_bytes: int, max_pixels: int, max_side: int | None
) -> Image.Image:
    raw = _read_bytes(data, max_bytes)
    img = _open_header(raw, max_pixels)
    image_guard.check_header(img, raw)
    if max_side is not None and img.format in ("JPEG", "MPO"):
        _draft(img, max_side)
    try:
        img.seek(0)  # GIF/WebP/TIFF: the first frame
        img.load()
    except Image.DecompressionBombError:
        raise ImageTooLargeError("the image has too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        if "truncated" in str(exc) or isinstance(exc, EOFError):
            if img.format in ("JPEG", "MPO"):
                img = _truncated_jpeg(raw, max_pixels, max_side)
            else:
                raise ImageError("the image file is truncated or damaged") from None
        else:
            raise ImageError(f"the image cannot be decoded ({_first_line(exc)})") from None
    icc = img.info.get("icc_profile")
    if not isinstance(icc, (bytes, bytearray)) or len(icc) > MAX_ICC_BYTES:
        icc = None  # a malformed tag (an integer, say) or an absurd size: treat as sRGB
    img = _upright(img)
    if max_side is not None:
        if img.mode in HIGH_DEPTH_MODES:
            img = _high_depth_to_l(img)  # band by band, before any whole copy
        img = _reduced(img, max_side)
    return to_srgb_rgb(img, bytes(icc) if icc else None)


def _reduced(img: Image.Image, max_side: int) -> Image.Image:
    """Shrink by a whole factor (box average) while the picture stays at least twice
    `max_side`: what a JPEG's draft does for every format, before the colour
    conversion copies it (a 50 MP 16-bit PNG otherwise became a 200 MB RGB copy)."""
    factor = max(img.size) // (2 * max_side)
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except (ValueError, NotImplementedError):  # modes reduce() cannot (P, 1)
        return img


def _draft(img: Image.Image, max_side: int) -> None:
    """Let libjpeg decode at a reduced DCT scale that still covers `max_side`."""
    scale = max_side / max(img.size)
    if scale < 1.0:
        w, h = img.size
        img.draft(None, (math.ceil(w * scale), math.ceil(h * scale)))


def _truncated_jpeg(raw: bytes, max_pixels: int, max_side: int | None) -> Image.Image:
    """A JPEG cut short: decode it with an end marker added (libjpeg fills what is
    missing with flat grey) and keep it only if the grey tail is a few rows."""
    img = _open_header(raw + b"\xff\xd9", max_pixels)
    if max_side is not None:
        _draft(img, max_side)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
        raise ImageError("the image file is truncated or damaged") from None
    missing = _grey_tail_rows(img) / img.height
    if missing > TRUNCATED_JPEG_TAIL:
        raise ImageError(f"the image file is truncated ({missing:.0%} of it is missing)")
    return img


def _grey_tail_rows(img: Image.Image) -> int:
    """How many bottom rows are libjpeg's fill for missing data (exactly mid-grey)."""
    a = np.asarray(img.convert("L") if img.mode not in ("L", "RGB") else img)
    rows = a.reshape(a.shape[0], -1)
    grey = np.all(np.abs(rows.astype(np.int16) - 128) <= 1, axis=1)
    if not grey[-1]:
        return 0
    return int(len(grey) - np.flatnonzero(~grey)[-1] - 1) if (~grey).any() else len(grey)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (a copy only when the picture must turn); a broken
    EXIF block must not cost the photo."""
    try:
        if img.getexif().get(ORIENTATION, 1) in (1, None):
            return img
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_bytes(data: bytes | Path | str, max_bytes: int) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        path = Path(data)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageTooLargeError(
                    f"the file is too large ({_mb(size)}; the limit is {_mb(max_bytes)})"
                )
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ImageError(f"{path}: is a folder, not an image") from None
        except PermissionError:
            raise ImageError(f"{path}: permission denied") from None
    if not raw:
        raise ImageError("the file is empty")
    if len(raw) > max_bytes:
        raise ImageTooLargeError(
            f"the file is too large ({_mb(len(raw))}; the limit is {_mb(max_bytes)})"
        )
    return raw


def _open_header(raw: bytes, max_pixels: int) -> Image.Image:
    """Image.open reads the header only; check format and size before decoding."""
    try:
        with warnings.catch_warnings():
            # our own `max_pixels` check below decides; Pillow's hard limit
            # (DecompressionBombError, 2x MAX_IMAGE_PIXELS) still stands behind it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw), formats=list(FORMATS))
    except Image.DecompressionBombError:
        raise ImageTooLargeError("the image has too many pixels to process") from None
    except UnidentifiedImageError:
        raise ImageError(
            "this is not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"the image header is damaged ({_first_line(exc)})") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError("the image has no pixels")
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"the image is too large ({w}x{h} = {w * h / 1e6:.0f} MP; "
            f"the limit is {max_pixels / 1e6:.0f} MP)"
        )
    return img


def to_srgb_rgb(img: Image.Image, icc: bytes | None = None) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; alpha over white; an ICC profile → sRGB."""
    mode = img.mode
    if mode in HIGH_DEPTH_MODES:
        img = _high_depth_to_l(img)
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode == "La":  # premultiplied: Pillow converts it to LA only
        img = img.convert("LA").convert("RGBA")
    elif mode in ("LA", "RGBa"):
        img = img.convert("RGBA")
    mode = img.mode
    if mode == "RGBA":
        background = Image.new("RGB", img.size, WHITE)
        background.paste(img, mask=img.getchannel("A"))
        img = background
        mode = "RGB"
    if icc and mode in ("RGB", "L", "CMYK"):
        converted = _icc_to_srgb(img, icc)
        if converted is not None:
            return converted
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except ValueError:
            raise ImageError(f"unsupported colour mode {img.mode}") from None
    return img


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit (and 32-bit int / float) greyscale → 8-bit L, scaled, not clipped.

    Band by band (crops of `HIGH_DEPTH_BAND_PIXELS`) in float32: a whole-picture
    float64 copy of a 50 MP 16-bit PNG took 1.6 GB (issue 16); a band is a few MB."""
    _lo, hi = img.getextrema()
    if img.mode == "F":
        peak = 1.0 if hi <= 1.0 else 255.0  # NaN compares False: scaled as 0..255
    elif img.mode.startswith("I;16") or hi > 255:
        peak = 65535.0
    else:
        peak = 255.0
    w, h = img.size
    out = np.empty((h, w), dtype=np.uint8)
    band = max(1, HIGH_DEPTH_BAND_PIXELS // max(1, w))
    for top in range(0, h, band):
        rows = np.asarray(img.crop((0, top, w, min(h, top + band))))
        if rows.dtype.byteorder == ">":
            rows = rows.astype(rows.dtype.newbyteorder("="))
        scaled = rows.astype(np.float32) * np.float32(255.0 / peak)
        out[top : top + band] = np.nan_to_num(scaled).clip(0, 255).round()
    return Image.fromarray(out, "L")


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=16)
def _transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(
        source, _SRGB, mode, "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL
    )


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert through the embedded profile; None when the profile is unusable."""
    try:
        out = ImageCms.applyTransform(img, _transform(bytes(icc), img.mode))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if out is None or out.mode != "RGB":
        return None
    out.info.pop("icc_profile", None)
    return out


def fit_within(image: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale (never upscale) so the longer side is at most `max_side`.

    Here, not in the Stylizer, because the torch path and the torch-free one
    (`engine.coldpath`) must hand the network the very same pixels."""
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_image(img: Image.Image, fmt: str = "jpeg", quality: int = 92) -> bytes:
    """Encode as JPEG or PNG with every piece of metadata stripped."""
    fmt = fmt.lower()
    if fmt in ("jpg", "jpeg"):
        pil_format, options = "JPEG", {"quality": int(quality), "optimize": True}
        if max(img.size) > JPEG_MAX_SIDE:
            raise ImageError(
                f"a JPEG side is at most {JPEG_MAX_SIDE} pixels ({img.width}x{img.height}): "
                "use PNG or a smaller size"
            )
    elif fmt == "png":
        pil_format, options = "PNG", {"optimize": False, "compress_level": 6}
    else:
        raise ImageError(f"unsupported output format {fmt!r} (use jpeg or png)")
    if not 1 <= int(quality) <= 100:
        raise ImageError("quality must be between 1 and 100")
    try:
        rgb = img.convert("RGB") if img.mode != "RGB" else img
        clean = Image.new("RGB", rgb.size)  # a fresh image: no info, no EXIF, no ICC
        clean.paste(rgb)
        buf = io.BytesIO()
        clean.save(buf, pil_format, **options)
    except MemoryError:
        raise ImageTooLargeError("the picture needs too much memory to encode") from None
    except Exception as exc:  # the boundary, as in load_image
        raise ImageError(
            f"the picture cannot be encoded as {pil_format} ({_first_line(exc)})"
        ) from None
    return buf.getvalue()
