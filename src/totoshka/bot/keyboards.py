"""Inline keyboards. Built from `Translator` + small refs; no state of their own."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from totoshka.bot.callbacks import GalleryCB, ResultCB, SettingsCB, StyleCB
from totoshka.bot.prefs import STRENGTHS, Painting, Prefs
from totoshka.bot.texts import Translator


def style_picker(
    t: Translator, photo: str, styles: Sequence[tuple[str, str]]
) -> InlineKeyboardMarkup:
    """The built-in styles by name (two per row), then "My own style" and the gallery."""
    kb = InlineKeyboardBuilder()
    for style_id, title in styles:
        kb.button(text=title, callback_data=StyleCB(photo=photo, style=style_id))
    kb.adjust(2)
    kb.row(
        InlineKeyboardButton(
            text=t("btn_own_style"), callback_data=StyleCB(photo=photo, style="own").pack()
        ),
        InlineKeyboardButton(text=t("btn_gallery"), callback_data=GalleryCB(photo=photo).pack()),
    )
    return kb.as_markup()


def paintings_keyboard(
    t: Translator, photo: str, paintings: Sequence[Painting]
) -> InlineKeyboardMarkup | None:
    """The user's recent paintings, to reuse one without sending it again."""
    if not paintings:
        return None
    kb = InlineKeyboardBuilder()
    for n, painting in enumerate(paintings, start=1):
        kb.button(
            text=t("btn_painting", n=n),
            callback_data=StyleCB(photo=photo, style=f"@{painting.pid}"),
        )
    kb.adjust(2)
    return kb.as_markup()


def result_keyboard(
    t: Translator, ref: str, strength: int, *, full: bool = True
) -> InlineKeyboardMarkup:
    """Under a result: another style, the full-resolution file (photos: ``full``),
    stronger / weaker."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t("btn_another_style"), callback_data=ResultCB(action="again", ref=ref))
    if full:
        kb.button(text=t("btn_full"), callback_data=ResultCB(action="full", ref=ref))
    steps = 0
    if strength > STRENGTHS[0]:
        kb.button(text=t("btn_weaker"), callback_data=ResultCB(action="down", ref=ref))
        steps += 1
    if strength < STRENGTHS[-1]:
        kb.button(text=t("btn_stronger"), callback_data=ResultCB(action="up", ref=ref))
        steps += 1
    kb.adjust(2, steps) if steps else kb.adjust(2)
    return kb.as_markup()


def settings_keyboard(t: Translator, prefs: Prefs, size: int) -> InlineKeyboardMarkup:
    """One button per setting; each press moves it to the next value."""
    size_text = t("size_full") if size == 0 else str(size)
    kb = InlineKeyboardBuilder()
    kb.button(text=t("btn_size", size=size_text), callback_data=SettingsCB(key="size"))
    kb.button(
        text=t("btn_strength", strength=prefs.strength), callback_data=SettingsCB(key="strength")
    )
    kb.button(
        text=t("btn_colors_on") if prefs.preserve_colors else t("btn_colors_off"),
        callback_data=SettingsCB(key="colors"),
    )
    kb.button(text=t("btn_language"), callback_data=SettingsCB(key="lang"))
    kb.adjust(2, 1, 1)
    return kb.as_markup()
