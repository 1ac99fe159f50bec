"""What Telegram learns from a clip or sticker file: its format, size, length, a thumbnail.

Telegram's clients and servers look inside every animation, video, video note and
sticker: a bot receives the real ``width``/``height``/``duration`` and a JPEG
thumbnail, and a GIF never reaches a bot as a GIF – it is re-encoded as a silent
H.264 MP4 "animation". A bot that trusts those numbers (to refuse a long clip before
downloading it, to send a video note back at the same ``length``) must see them
here too, so the emulator reads them from the bytes.

Pillow reads GIF and WebP at no extra cost. MP4 and WebM need FFmpeg, which PyAV
brings; it is imported only when a clip arrives, and without it the emulator still
works – it then keeps what the caller declared and stores GIFs as they came.
Everything here is CPU-bound: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import Image, ImageSequence, UnidentifiedImageError

GIF = "image/gif"
WEBP = "image/webp"
MP4 = "video/mp4"
WEBM = "video/webm"
TGS = "application/x-tgsticker"
THUMBNAIL_SIDE = 320  # the box of Telegram's previews
_GIF_DEFAULT_FRAME_MS = 100  # what browsers and Telegram play a 0-delay GIF frame at


@dataclass(frozen=True, slots=True)
class ClipFacts:
    """What could be read from a file; ``None`` where nothing could."""

    mime_type: str | None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    thumbnail: bytes | None = None  # the first frame as a PNG within THUMBNAIL_SIDE

    @property
    def duration(self) -> int | None:
        """Whole seconds, as the Bot API gives them (a short clip is 1 s, not 0)."""
        if self.seconds is None:
            return None
        return max(1, round(self.seconds)) if self.seconds > 0 else 0


def sniff(data: bytes) -> str | None:
    """The MIME type the bytes themselves declare, whatever the file was called."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return WEBM if b"webm" in data[:64] else "video/x-matroska"
    if data[4:8] == b"ftyp":
        return "video/quicktime" if data[8:10] == b"qt" else MP4
    if data[:2] == b"\x1f\x8b" and _is_lottie(data):
        return TGS
    return None


def _is_lottie(data: bytes) -> bool:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            head = unzipped.read(256)
    except (OSError, EOFError):
        return False
    return head.lstrip().startswith(b"{")


def _av() -> Any:
    """PyAV when it is installed, else None (the emulator must not require it)."""
    try:
        import av
    except ImportError:
        return None
    return av


def _thumbnail(image: Image.Image) -> bytes:
    """Shrunk here, so that a 4K frame reaches the photo path as a small picture."""
    thumb = image.convert("RGB")
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    thumb.save(buffer, "PNG")
    return buffer.getvalue()


def _pillow_facts(data: bytes, mime: str) -> ClipFacts:
    try:
        with Image.open(io.BytesIO(data)) as image:
            total_ms = 0
            first: bytes | None = None
            for frame in ImageSequence.Iterator(image):
                if first is None:
                    first = _thumbnail(frame)
                total_ms += frame.info.get("duration") or _GIF_DEFAULT_FRAME_MS
            seconds = total_ms / 1000 if getattr(image, "is_animated", False) else None
            return ClipFacts(mime, image.width, image.height, seconds, first)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return ClipFacts(mime)


def _av_facts(data: bytes, mime: str) -> ClipFacts:
    av = _av()
    if av is None:
        return ClipFacts(mime)
    try:
        with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
            if not container.streams.video:
                return ClipFacts(mime)
            stream = container.streams.video[0]
            seconds = None
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            width, height = stream.codec_context.width, stream.codec_context.height
            thumbnail = None
            for frame in container.decode(stream):
                thumbnail = _thumbnail(frame.to_image())
                break
            return ClipFacts(mime, width or None, height or None, seconds, thumbnail)
    except (av.FFmpegError, ValueError, UnicodeDecodeError, IndexError):
        return ClipFacts(mime)


def facts(data: bytes, declared_mime: str | None = None) -> ClipFacts:
    """Format, size, length and first frame of a GIF, WebP (or other image), MP4/MOV,
    WebM or .tgs file."""
    mime = sniff(data) or declared_mime
    if mime is not None and mime.startswith("image/"):
        return _pillow_facts(data, mime)
    if mime == TGS:
        return ClipFacts(mime, 512, 512)  # Lottie stickers are always drawn at 512 px
    if mime is not None and mime.startswith("video/"):
        return _av_facts(data, mime)
    return ClipFacts(mime)


def gif_to_mp4(data: bytes) -> bytes | None:
    """The silent H.264 MP4 Telegram makes of a GIF animation, or None without PyAV.

    Frame delays become timestamps, so the clip keeps the GIF's timing; sides are made
    even because yuv420p needs them so.
    """
    av = _av()
    if av is None:
        return None
    try:
        source = Image.open(io.BytesIO(data))
        width = max(2, source.width - source.width % 2)
        height = max(2, source.height - source.height % 2)
        out_buffer = io.BytesIO()
        # (no +faststart: FFmpeg rewrites the file by name for it, and this one has none)
        with av.open(out_buffer, "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(1000, _GIF_DEFAULT_FRAME_MS))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.options = {"preset": "veryfast", "crf": "23"}
            pts = 0
            for frame in ImageSequence.Iterator(source):
                rgb = frame.convert("RGB")
                if rgb.size != (width, height):
                    rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
                picture = av.VideoFrame.from_image(rgb)
                picture.pts, picture.time_base = pts, Fraction(1, 1000)
                out.mux(stream.encode(picture))
                pts += frame.info.get("duration") or _GIF_DEFAULT_FRAME_MS
            out.mux(stream.encode(None))
        return out_buffer.getvalue()
    except (av.FFmpegError, OSError, ValueError, Image.DecompressionBombError):
        return None  # the GIF is then kept as it came
