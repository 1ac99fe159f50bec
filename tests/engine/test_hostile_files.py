"""Hostile files (issue 16): every crafted case ends in a picture or one `ImageError`,
never another exception; refused files say why; the decode stays in bounds.

The files are made here (`hostile_files`), never committed. Time is not asserted
(benchmarks/hostile_files.py measures it); memory of the decode is, through the
guard's own estimate and a peak-RSS check in a child process.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import hostile_files as hf
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from totoshka.cli.main import app
from totoshka.engine import image_guard
from totoshka.engine.errors import EngineError, ImageError, ImageTooLargeError
from totoshka.engine.imageio import (
    JPEG_MAX_SIDE,
    TRUNCATED_JPEG_TAIL,
    encode_image,
    load_image,
    to_srgb_rgb,
)

HERE = Path(__file__).resolve().parent

# name -> (maker, what load_image must do: an image size, or the error and a phrase)
CASES: dict[str, tuple[Callable[[], bytes], object]] = {
    "tiff-icc-2^64-1": (lambda: hf.tiff_with_integer_icc(2**64 - 1), (8, 8)),
    "tiff-icc-2^62": (lambda: hf.tiff_with_integer_icc(2**62), (8, 8)),
    "tiff-icc-4294967295": (lambda: hf.tiff_with_integer_icc(4294967295), (8, 8)),
    "jpeg-1000-scans": (hf.progressive_jpeg_repeated_scan, (ImageError, "scans")),
    "bmp-rle8": (hf.bmp_rle8, (ImageError, "run-length")),
    "png-16bit-50mp": (hf.png_16bit, (7071, 7071)),
    "tiff-float-50mp": (hf.tiff_float, (7071, 7071)),
    "tiff-16384-tile": (hf.tiff_huge_tile, (ImageError, "tiles")),
    "webp-animated-canvas": (hf.animated_webp_huge_canvas, (ImageTooLargeError, "MB to decode")),
    "jpeg-claims-7071": (hf.jpeg_claiming_bigger, (ImageError, "most of the picture is missing")),
    # found by tests/fuzz (a short run hit libFuzzer's 1.5 GB limit on it)
    "tiff-raw-47mp-in-200-bytes": (
        hf.tiff_declares_more_than_it_holds,
        (ImageError, "most of the picture is missing"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crafted_case_ends_in_a_picture_or_an_image_error(name: str) -> None:
    make, expected = CASES[name]
    data = make()
    if isinstance(expected, tuple) and isinstance(expected[0], type):
        error, phrase = expected
        with pytest.raises(error) as info:
            load_image(data)
        assert phrase in info.value.message
        assert "\n" not in info.value.message
    else:
        image = load_image(data)
        assert image.mode == "RGB" and image.size == expected


def test_sixteen_bit_and_float_keep_their_levels() -> None:
    """Converted band by band in float32: the same levels as the old float64 path."""
    ramp = (np.arange(300 * 40, dtype=np.uint32).reshape(40, 300) * 5).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")  # uint16: mode I;16
    grey = np.asarray(load_image(buf.getvalue()))[..., 0]
    expected = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.abs(grey.astype(int) - expected).max() <= 1
    floats = Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))
    out = np.asarray(to_srgb_rgb(floats))[..., 0]
    assert out[0, 0] == 0 and out[-1, -1] == 255


def test_premultiplied_grey_alpha_is_converted() -> None:
    image = Image.new("LA", (4, 4), (200, 255)).convert("La")
    assert to_srgb_rgb(image).getpixel((0, 0)) == (200, 200, 200)


def test_jpeg_side_over_the_format_limit_is_an_image_error() -> None:
    wide = Image.new("RGB", (JPEG_MAX_SIDE + 1, 1))
    with pytest.raises(ImageError, match="at most 65500"):
        encode_image(wide, "jpeg")
    assert encode_image(wide, "png")[:4] == b"\x89PNG"


def photo_jpeg(shared_dir: Path, size: tuple[int, int], quality: int = 90) -> bytes:
    image = Image.open(shared_dir / "images" / "content" / "amber.jpg").convert("RGB")
    buf = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_a_jpeg_missing_a_small_tail_is_kept(shared_dir: Path) -> None:
    data = photo_jpeg(shared_dir, (800, 600))
    cut = data[: int(len(data) * 0.995)]  # the last 0.5% of the bytes
    image = load_image(cut)
    assert image.size == (800, 600)
    full = np.asarray(load_image(data), dtype=np.float64)
    top = np.asarray(image, dtype=np.float64)[: int(600 * (1 - TRUNCATED_JPEG_TAIL))]
    assert np.abs(top - full[: len(top)]).max() == 0  # what was there is the photo


def test_a_jpeg_missing_half_is_refused(shared_dir: Path) -> None:
    data = photo_jpeg(shared_dir, (800, 600))
    with pytest.raises(ImageError, match=r"truncated \(\d+% of it is missing\)"):
        load_image(data[: len(data) // 2])


def test_a_truncated_png_is_refused(shared_dir: Path) -> None:
    buf = io.BytesIO()
    Image.open(shared_dir / "images" / "content" / "amber.jpg").save(buf, "PNG")
    with pytest.raises(ImageError, match="truncated"):
        load_image(buf.getvalue()[: len(buf.getvalue()) * 9 // 10])


def test_a_big_camera_jpeg_decodes_at_the_scale_it_needs(shared_dir: Path) -> None:
    """7000×5000 asked for at 1280 px: libjpeg's 1/4 scale, then the same resize."""
    from totoshka.engine.stylizer import fit_within

    data = photo_jpeg(shared_dir, (7000, 5000), quality=92)
    small = load_image(data, max_side=1280)
    assert small.size == (1750, 1250)  # the 1/4 DCT scale, still covering 1280×914
    full = load_image(data)
    assert full.size == (7000, 5000)
    a = np.asarray(fit_within(small, 1280), dtype=np.float64)
    b = np.asarray(fit_within(full, 1280), dtype=np.float64)
    assert a.shape == b.shape == (914, 1280, 3)
    mse = ((a - b) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) >= 40.0


def test_the_guard_estimate_bounds_every_accepted_case() -> None:
    """What the decode may allocate, by the guard's own rule, for each accepted case."""
    for name, (make, expected) in CASES.items():
        if isinstance(expected, tuple) and isinstance(expected[0], type):
            continue
        img = Image.open(io.BytesIO(make()))
        need = img.width * img.height * image_guard.mode_bytes(img.mode)
        assert need <= image_guard.MAX_DECODE_BYTES, name


@pytest.mark.parametrize("maker", ["png_16bit", "tiff_float"])
def test_high_depth_decode_peak_memory(maker: str) -> None:
    """A child decodes the case and reports its peak RSS: no whole-picture float copy."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import hostile_files
        from totoshka.engine.imageio import load_image
        def status(key):  # this process's own memory (kB); getrusage's peak would
            for line in open("/proc/self/status"):  # include the forking parent's
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        data = hostile_files.{maker}()
        base = status("VmRSS")
        load_image(data)
        print((status("VmHWM") - base) // 1024)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    grown_mb = int(proc.stdout.split()[-1])
    # the picture itself (7071² at 4 bytes) is 191 MB; the old float64 path added 1.2-1.4 GB
    assert grown_mb < 700, f"{maker}: decode grew RSS by {grown_mb} MB"


@pytest.mark.parametrize(
    "name", [n for n, (_, e) in CASES.items() if isinstance(e, tuple) and isinstance(e[0], type)]
)
def test_cli_refuses_in_one_line(name: str, tmp_path: Path, mirror_env: Path) -> None:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(CASES[name][0]())
    result = CliRunner().invoke(app, ["stylize", str(path), "--style", "wave"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("totoshka: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_errors_stay_in_the_family() -> None:
    assert issubclass(ImageError, EngineError) and issubclass(ImageTooLargeError, ImageError)


@pytest.mark.parametrize("value", [2**64 - 1, 2**62, 4294967295])
def test_cli_paints_a_tiff_with_a_numeric_icc_tag(
    value: int, tmp_path: Path, mirror_env: Path
) -> None:
    path = tmp_path / "odd.tif"
    path.write_bytes(hf.tiff_with_integer_icc(value))
    out = tmp_path / "odd.wave.png"
    result = CliRunner().invoke(app, ["stylize", str(path), "--style", "wave", "-o", str(out)])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert Image.open(out).size == (8, 8)


def test_a_big_png_is_reduced_before_conversion_and_looks_the_same(shared_dir: Path) -> None:
    """Any format, not only JPEG, is shrunk by a whole factor when far bigger than needed."""
    from totoshka.engine.stylizer import fit_within

    photo = Image.open(shared_dir / "images" / "content" / "amber.jpg").convert("RGB")
    buf = io.BytesIO()
    photo.resize((5400, 5400), Image.Resampling.LANCZOS).save(buf, "PNG", compress_level=1)
    small = load_image(buf.getvalue(), max_side=1280)
    assert small.size == (2700, 2700)  # a factor of 2: still twice the output size
    a = np.asarray(fit_within(small, 1280), dtype=np.float64)
    b = np.asarray(fit_within(load_image(buf.getvalue()), 1280), dtype=np.float64)
    assert 10 * np.log10(255**2 / ((a - b) ** 2).mean()) >= 40.0
