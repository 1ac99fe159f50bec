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
    photo: str = ""


class ResultCB(CallbackData, prefix="res"):
    """Buttons under a result: ``again`` (another style), ``full``, ``up``, ``down``."""

    action: str
    ref: str


class SettingsCB(CallbackData, prefix="set"):
    """``size``/``strength``/``colors``/``lang`` — each press cycles to the next value."""

    key: str
