"""Pictures in and out: decode safely, hand the engine plain sRGB RGB.

`load_image` checks the byte size, then opens the file *header only* and checks
the pixel count before anything is decoded, so a 30000x30000 PNG bomb is refused
in microseconds without allocating its 2.7 GB. Then it decodes the first frame,
applies the EXIF orientation, converts the colour mode (16-bit, palette, CMYK,
alpha composited on white) and converts an embedded ICC profile to sRGB.

`encode_image` writes JPEG or PNG with no metadata at all (no EXIF, no GPS, no
ICC: untagged means sRGB).
"""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from totoshka.engine.errors import ImageError, ImageTooLargeError

MAX_BYTES = 25 * 1024 * 1024  # above Telegram's 20 MB file limit for bots
MAX_PIXELS = 50_000_000  # 50 MP: any phone photo, refused before decoding above it
# Pillow plugins tried when opening (a camera's MPO comes through the JPEG one).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
WHITE = (255, 255, 255)

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half a photo


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def load_image(
    data: bytes | Path | str,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode `data` (bytes or a path) into an sRGB RGB image, or raise ImageError."""
    raw = _read_bytes(data, max_bytes)
    img = _open_header(raw, max_pixels)
    try:
        img.seek(0)  # GIF/WebP/TIFF: the first frame
        img.load()
    except Image.DecompressionBombError:
        raise ImageTooLargeError("the image has too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        if "truncated" in str(exc) or isinstance(exc, EOFError):
            raise ImageError("the image file is truncated or damaged") from None
        raise ImageError(f"the image cannot be decoded ({_first_line(exc)})") from None
    icc = img.info.get("icc_profile")
    return to_srgb_rgb(_upright(img), icc)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block must not cost the photo."""
    try:
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
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = _high_depth_to_l(img)
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("LA", "La", "RGBa"):
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
    """16-bit (and 32-bit int / float) greyscale → 8-bit L, scaled, not clipped."""
    a = np.asarray(img)
    if a.dtype.byteorder == ">" or img.mode == "I;16B":
        a = a.astype(a.dtype.newbyteorder("="))
    a = a.astype(np.float64)
    if img.mode == "F":
        peak = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
    elif img.mode.startswith("I;16") or (a.size and a.max() > 255):
        peak = 65535.0
    else:
        peak = 255.0
    a = np.nan_to_num(a * (255.0 / peak)).clip(0, 255).round().astype(np.uint8)
    return Image.fromarray(a, "L")


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


def encode_image(img: Image.Image, fmt: str = "jpeg", quality: int = 92) -> bytes:
    """Encode as JPEG or PNG with every piece of metadata stripped."""
    fmt = fmt.lower()
    if fmt in ("jpg", "jpeg"):
        pil_format, options = "JPEG", {"quality": int(quality), "optimize": True}
    elif fmt == "png":
        pil_format, options = "PNG", {"optimize": False, "compress_level": 6}
    else:
        raise ImageError(f"unsupported output format {fmt!r} (use jpeg or png)")
    if not 1 <= int(quality) <= 100:
        raise ImageError("quality must be between 1 and 100")
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    clean = Image.new("RGB", rgb.size)  # a fresh image: no info, no EXIF, no ICC
    clean.paste(rgb)
    buf = io.BytesIO()
    clean.save(buf, pil_format, **options)
    return buf.getvalue()
