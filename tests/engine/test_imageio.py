"""imageio: every format and quirk, with files the tests generate themselves."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from totoshka.engine.errors import ImageError, ImageTooLargeError
from totoshka.engine.imageio import encode_image, load_image


def save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def gradient(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR + IEND: claims a size, holds no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def swapped_primaries_profile() -> bytes:
    """sRGB's profile with the red and blue primaries swapped: clearly not sRGB."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    offsets = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, b = offsets[b"rXYZ"], offsets[b"bXYZ"]
    data[r + 4 : r + 12], data[b + 4 : b + 12] = data[b + 4 : b + 12], data[r + 4 : r + 12]
    return bytes(data)


# --- plain formats ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats_decode_to_rgb(fmt: str) -> None:
    src = gradient()
    img = load_image(save(src, fmt))
    assert img.mode == "RGB"
    assert img.size == src.size
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless: exactly the pixels
        assert np.array_equal(np.asarray(img), np.asarray(src))
    elif fmt in ("JPEG", "WEBP"):
        diff = np.abs(np.asarray(img, np.int16) - np.asarray(src, np.int16))
        assert diff.mean() < 6


def test_path_input(tmp_path) -> None:
    path = tmp_path / "photo.png"
    gradient().save(path)
    assert load_image(path).size == (64, 48)
    assert load_image(str(path)).size == (64, 48)


def test_one_pixel() -> None:
    img = load_image(save(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"))
    assert img.size == (1, 1)
    assert img.getpixel((0, 0)) == (10, 200, 30)


def test_panorama_10000x100() -> None:
    img = load_image(save(Image.new("RGB", (10000, 100), (1, 2, 3)), "PNG"))
    assert img.size == (10000, 100)


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    r, g, b = load_image(data).getpixel((8, 8))
    assert r > 200 and g < 50 and b < 50


# --- colour modes -----------------------------------------------------------------


def test_grayscale_jpeg() -> None:
    img = load_image(save(Image.new("L", (8, 8), 100), "JPEG"))
    assert img.mode == "RGB"
    assert all(abs(c - 100) <= 2 for c in img.getpixel((4, 4)))


def test_cmyk_jpeg() -> None:
    data = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    r, g, b = load_image(data).getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60  # pure magenta+yellow ink = red


def test_16bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    data = save(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    img = load_image(data)
    assert img.mode == "RGB"
    assert [img.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_palette_png_with_transparency_goes_on_white() -> None:
    img = Image.new("P", (4, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 0, 1, 1])
    data = save(img, "PNG", transparency=0)
    out = load_image(data)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent red -> white
    assert out.getpixel((3, 0)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_composited_on_white(mode: str) -> None:
    colour = (255, 0, 0, 128) if mode == "RGBA" else (0, 128)
    out = load_image(save(Image.new(mode, (4, 4), colour), "PNG"))
    r, g, b = out.getpixel((1, 1))
    if mode == "RGBA":
        assert r == 255 and 120 <= g <= 135 and 120 <= b <= 135
    else:
        assert 120 <= r <= 135 and r == g == b


def test_exif_orientation_applied() -> None:
    src = Image.new("RGB", (40, 20), (0, 0, 255))
    src.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    data = save(src, "JPEG", exif=exif.tobytes(), quality=95)
    img = load_image(data)
    assert img.size == (20, 40)
    r, _, b = img.getpixel((10, 5))  # the red half is now on top
    assert r > 200 and b < 60


def test_embedded_icc_profile_converted_to_srgb() -> None:
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    tagged = load_image(save(red, "JPEG", icc_profile=swapped_primaries_profile(), quality=95))
    r, _, b = tagged.getpixel((4, 4))
    assert b > 200 and r < 50  # "red" in a red/blue-swapped space is sRGB blue
    untagged = load_image(save(red, "JPEG", quality=95))
    assert untagged.getpixel((4, 4))[0] > 200


def test_broken_icc_profile_is_ignored() -> None:
    img = load_image(save(gradient(), "PNG", icc_profile=b"not a profile at all"))
    assert img.size == (64, 48)


# --- refusals -----------------------------------------------------------------------


def test_empty_file(tmp_path) -> None:
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")


def test_text_named_jpg(tmp_path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("dear diary, today I took a photo\n")
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_unsupported_format() -> None:
    with pytest.raises(ImageError, match="supported format"):
        load_image(save(gradient(), "PCX"))


def test_truncated_jpeg() -> None:
    data = save(gradient(256, 256), "JPEG", quality=95)
    with pytest.raises(ImageError, match="truncated") as info:
        load_image(data[: len(data) // 2])
    assert not isinstance(info.value, ImageTooLargeError)


def test_truncated_png() -> None:
    data = save(gradient(256, 256), "PNG")
    with pytest.raises(ImageError):
        load_image(data[: len(data) // 2])


def test_huge_png_refused_from_the_header() -> None:
    # No pixel data in the file: decoding it would fail as "truncated", so the
    # ImageTooLargeError proves the size was refused before any decoding.
    data = png_header_only(30000, 30000)
    assert len(data) < 100
    with pytest.raises(ImageTooLargeError, match="too"):
        load_image(data)


def test_pixel_limit_below_pillows_own() -> None:
    data = png_header_only(4000, 3000)
    with pytest.raises(ImageTooLargeError, match="12 MP"):
        load_image(data, max_pixels=10_000_000)
    # under the limit the same header is decoded, and found to hold no pixels
    with pytest.raises(ImageError) as info:
        load_image(data, max_pixels=20_000_000)
    assert not isinstance(info.value, ImageTooLargeError)


def test_cheap_1bit_bomb_png() -> None:
    data = save(Image.new("1", (6000, 6000)), "PNG")
    assert len(data) < 200_000
    with pytest.raises(ImageTooLargeError):
        load_image(data, max_pixels=20_000_000)


def test_byte_limit(tmp_path) -> None:
    data = save(gradient(), "PNG")
    with pytest.raises(ImageTooLargeError, match="too large"):
        load_image(data, max_bytes=len(data) - 1)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_bytes=100)


# --- encoding -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_encode_strips_metadata(fmt: str) -> None:
    src = gradient()
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (55.0, 45.0, 0.0)}  # GPS
    src.info["exif"] = exif.tobytes()
    src.info["icc_profile"] = swapped_primaries_profile()
    data = encode_image(src, fmt)
    out = Image.open(io.BytesIO(data))
    assert out.format == ("JPEG" if fmt == "jpeg" else "PNG")
    assert "exif" not in out.info and "icc_profile" not in out.info
    assert len(out.getexif()) == 0
    assert b"SpyCam" not in data


def test_encode_png_is_lossless_and_jpeg_quality_matters() -> None:
    src = gradient()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_image(src, "png")))), src)
    assert len(encode_image(src, "jpeg", quality=30)) < len(encode_image(src, "jpeg", 95))


def test_encode_refuses_unknown_format() -> None:
    with pytest.raises(ImageError):
        encode_image(gradient(), "gif")
