"""Typed inline-button payloads (`CallbackData` factories); each packs into < 64 bytes.

Buttons carry short references (``photo``: a key into the FSM data's photos;
``ref``: a key of a past result), never file ids, which are too long for Telegram's
64-byte callback data.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class StyleCB(CallbackData, prefix="st"):
    """Pick a style for a photo: a catalog id, ``own`` (ask for a painting) or ``@<painting>``."""

    photo: str
    style: str


class GalleryCB(CallbackData, prefix="gal"):
    """The previews of one page of the picker (``page`` -1: every style, as /styles)."""

    photo: str = ""
    page: int = -1


class PageCB(CallbackData, prefix="pg"):
    """Turn the style picker under a photo to another page."""

    photo: str
    page: int


class MixCB(CallbackData, prefix="mix"):
    """Mix a result's style with another: without ``style``, the partners' page
    ``page``; with ``style`` and no ``share``, the share choice; with both, paint."""

    ref: str
    style: str = ""
    share: int = 0
    page: int = 0


class ResultCB(CallbackData, prefix="res"):
    """Buttons under a result: ``again`` (another style), ``full``, ``up``, ``down``, ``mix``."""

    action: str
    ref: str


class SettingsCB(CallbackData, prefix="set"):
    """``size``/``strength``/``colors``/``lang`` — each press cycles to the next value."""

    key: str
