"""Telegram's documented limits, as one value a server is configured with.

The numbers come from the Bot API reference (core.telegram.org/bots/api) and the
open-source Bot API server; "MB" there is binary (``10 * (1 << 20)`` in TDLib).
A test may build an :class:`EmulatorServer` with smaller limits to exercise a
bot's handling of "file is too big" without shipping 20 MB fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1 << 20
# Fixed by the Bot API server and TDLib, not by a deployment: widths, heights and
# lengths are clamped to VIDEO_MAX_SIDE, and a round video note must be narrower
# than VIDEO_NOTE_MAX_LENGTH (TDLib: ``length >= 640`` is "Wrong video note length").
VIDEO_MAX_SIDE = 10_000
VIDEO_NOTE_MAX_LENGTH = 640


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit the emulator enforces; the defaults are Telegram's."""

    download_bytes: int = 20 * MB  # getFile refuses bigger files ("file is too big")
    photo_upload_bytes: int = 10 * MB  # sendPhoto multipart
    upload_bytes: int = 50 * MB  # any other multipart file: videos, GIFs, stickers (413 above)
    photo_max_width_plus_height: int = 10_000
    photo_max_aspect_ratio: float = 20.0
    text_chars: int = 4096  # after entity parsing, in UTF-16 code units
    caption_chars: int = 1024
    callback_data_bytes: int = 64
    callback_answer_chars: int = 200
    media_group_max: int = 10
    get_updates_limit: int = 100
    get_updates_max_timeout: int = 50  # seconds; longer timeouts are clamped, as Telegram does
    commands_max: int = 100
    command_max_chars: int = 32
    command_description_max_chars: int = 256
    # Photo sizes Telegram derives from an upload: each is the image scaled to fit
    # the box, smallest first; the list stops at the first box the image fits.
    bot_photo_boxes: tuple[int, ...] = (90, 320, 800, 1280, 2560)
    # Telegram clients send users' photos already compressed to 1280 px.
    user_photo_boxes: tuple[int, ...] = (90, 320, 800, 1280)
