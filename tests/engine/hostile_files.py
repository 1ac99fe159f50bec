"""Small hostile files, generated (never committed): each one of issue 16's cases.

Every function returns the bytes of one file. They are crafted with Pillow where it
can write the structure and by hand (struct) where it cannot, so each test says
exactly what is wrong with its file.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, TiffImagePlugin


def tiff_with_integer_icc(value: int) -> bytes:
    """An 8×8 TIFF whose ICC tag (34675) is a number, not bytes: Pillow hands the int on."""
    image = Image.new("RGB", (8, 8), (100, 150, 200))
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[34675] = value
    info.tagtype[34675] = 16 if value >= 2**32 else 4  # LONG8 or LONG
    buf = io.BytesIO()
    image.save(buf, "TIFF", tiffinfo=info)
    return buf.getvalue()


def _segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """(marker, whole segment bytes incl. entropy-coded data after SOS), after SOI."""
    out, i = [], 2
    while i < len(jpeg):
        assert jpeg[i] == 0xFF
        marker = jpeg[i + 1]
        if marker == 0xD9:
            out.append((marker, jpeg[i : i + 2]))
            break
        length = struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
        end = i + 2 + length
        if marker == 0xDA:  # scan data runs to the next marker that is not RSTn or a stuffed 0
            j = end
            while not (jpeg[j] == 0xFF and jpeg[j + 1] not in (0x00, *range(0xD0, 0xD8))):
                j += 1
            end = j
        out.append((marker, jpeg[i:end]))
        i = end
    return out


def progressive_jpeg_repeated_scan(side: int = 7000, repeats: int = 1000) -> bytes:
    """A flat grey progressive JPEG with one of its scans repeated `repeats` times:
    small, and the decoder runs every scan over the whole picture."""
    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, "JPEG", progressive=True, quality=50)
    segments = _segments(buf.getvalue())
    scans = [k for k, (m, _) in enumerate(segments) if m == 0xDA]
    last = scans[-1]
    body = b"".join(s for _, s in segments[:last])
    body += segments[last][1] * repeats
    body += b"".join(s for _, s in segments[last + 1 :])
    return b"\xff\xd8" + body


def bmp_rle8(width: int = 7000, height: int = 7000) -> bytes:
    """An RLE8 BMP of a few KB whose every row is one pixel, then "end of line": Pillow's
    pure-Python decoder pads the rest of each row one byte at a time."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    pixels = b"\x01\x05\x00\x00" * height + b"\x00\x01"  # 1 pixel, end of line; end
    header_size = 14 + 40 + len(palette)
    file_header = struct.pack("<2sIHHI", b"BM", header_size + len(pixels), 0, 0, header_size)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return file_header + info + palette + pixels


def png_16bit(side: int = 7071) -> bytes:
    """A flat 16-bit greyscale PNG: about 100 KB for 50 MP."""
    buf = io.BytesIO()
    Image.new("I;16", (side, side), 30000).save(buf, "PNG")
    return buf.getvalue()


def tiff_float(side: int = 7071) -> bytes:
    """A flat 32-bit float TIFF, deflate-compressed."""
    buf = io.BytesIO()
    Image.new("F", (side, side), 0.5).save(buf, "TIFF", compression="tiff_adobe_deflate")
    return buf.getvalue()


def tiff_huge_tile(tile: int = 16384) -> bytes:
    """A 1×1 TIFF whose one tile is declared `tile`×`tile`: the decoder allocates the tile."""
    entries = [
        (256, 3, 1, 1),  # ImageWidth
        (257, 3, 1, 1),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (277, 3, 1, 1),  # SamplesPerPixel
        (322, 4, 1, tile),  # TileWidth
        (323, 4, 1, tile),  # TileLength
        (324, 4, 1, 0),  # TileOffsets: patched below
        (325, 4, 1, 1),  # TileByteCounts
    ]
    ifd_offset = 8
    ifd = struct.pack("<H", len(entries))
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    for tag, kind, count, value in entries:
        if tag == 324:
            value = data_offset
        ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + b"\x00"


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def animated_webp_huge_canvas(side: int = 7000) -> bytes:
    """An animated WebP of about a hundred bytes: a `side`² canvas, one 1×1 lossless frame."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(buf, "WEBP", lossless=True)
    frame = buf.getvalue()
    vp8l = frame[12:]  # the VP8L chunk of the 1×1 still

    def u24(n: int) -> bytes:
        return struct.pack("<I", n)[:3]

    vp8x = _chunk(b"VP8X", bytes((0x02, 0, 0, 0)) + u24(side - 1) + u24(side - 1))
    anim = _chunk(b"ANIM", struct.pack("<IH", 0, 0))
    anmf = _chunk(b"ANMF", u24(0) + u24(0) + u24(0) + u24(0) + u24(100) + b"\x00" + vp8l)
    body = b"WEBP" + vp8x + anim + anmf
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_claiming_bigger(claimed: int = 7071, real: int = 16) -> bytes:
    """A real `real`² JPEG whose frame header says `claimed`²: most of it is missing."""
    buf = io.BytesIO()
    Image.new("RGB", (real, real), (120, 60, 30)).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    i = 2
    while True:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", claimed, claimed)
            return bytes(data)
        i += 2 + length


def tiff_declares_more_than_it_holds(width: int = 8, height: int = 5_963_784) -> bytes:
    """Found by the fuzzer: a 1-bit TIFF of about 200 bytes declaring 47.7 MP, with one
    16-row raw strip; Pillow decodes the rest as zeros, and the picture cost 660 MB."""
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 1),  # BitsPerSample: 1
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 0),  # Photometric: white is zero
        (273, 4, 1, 0),  # StripOffsets: patched below
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, 16),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    data_offset = 8 + 2 + 12 * len(entries) + 4
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHII", tag, kind, count, data_offset if tag == 273 else value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(16)
