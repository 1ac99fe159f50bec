"""Inline keyboards. Built from `Translator` + small refs; no state of their own."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from totoshka.bot.callbacks import GalleryCB, MixCB, PageCB, ResultCB, SettingsCB, StyleCB
from totoshka.bot.prefs import STRENGTHS, Painting, Prefs
from totoshka.bot.texts import Translator

# Styles on one page of a picker: five rows of two fit a phone screen without
# scrolling, and one page's previews are one album (Telegram's albums hold ten).
PAGE_SIZE = 10
MIX_SHARES: tuple[int, ...] = (25, 50, 75)  # percent of the second style


def page_count(n: int, size: int = PAGE_SIZE) -> int:
    return max(1, -(-n // size))


def clamp_page(page: int, n: int, size: int = PAGE_SIZE) -> int:
    return min(max(page, 0), page_count(n, size) - 1)


def page_of(items: Sequence[tuple[str, str]], page: int) -> list[tuple[str, str]]:
    page = clamp_page(page, len(items))
    return list(items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE])


def _nav_row(page: int, n: int, to: Callable[[int], str]) -> list[InlineKeyboardButton]:
    """◀ page/pages ▶; the arrows wrap around, so every page is two taps away at most
    from either end."""
    pages = page_count(n)
    return [
        InlineKeyboardButton(text="◀", callback_data=to((page - 1) % pages)),
        InlineKeyboardButton(text=f"{page + 1}/{pages}", callback_data=to(page)),
        InlineKeyboardButton(text="▶", callback_data=to((page + 1) % pages)),
    ]


def style_picker(
    t: Translator, photo: str, styles: Sequence[tuple[str, str]], page: int = 0
) -> InlineKeyboardMarkup:
    """One page of the built-in styles by name (two per row), the page arrows when
    there is more than one page, then "My own style" and that page's gallery."""
    page = clamp_page(page, len(styles))
    kb = InlineKeyboardBuilder()
    for style_id, title in page_of(styles, page):
        kb.button(text=title, callback_data=StyleCB(photo=photo, style=style_id))
    kb.adjust(2)
    if page_count(len(styles)) > 1:
        kb.row(*_nav_row(page, len(styles), lambda p: PageCB(photo=photo, page=p).pack()))
    kb.row(
        InlineKeyboardButton(
            text=t("btn_own_style"), callback_data=StyleCB(photo=photo, style="own").pack()
        ),
        InlineKeyboardButton(
            text=t("btn_gallery"), callback_data=GalleryCB(photo=photo, page=page).pack()
        ),
    )
    return kb.as_markup()


def mix_picker(
    ref: str, partners: Sequence[tuple[str, str]], page: int = 0
) -> InlineKeyboardMarkup:
    """One page of the styles a result's style can be mixed with."""
    page = clamp_page(page, len(partners))
    kb = InlineKeyboardBuilder()
    for style_id, title in page_of(partners, page):
        kb.button(text=title, callback_data=MixCB(ref=ref, style=style_id))
    kb.adjust(2)
    if page_count(len(partners)) > 1:
        kb.row(*_nav_row(page, len(partners), lambda p: MixCB(ref=ref, page=p).pack()))
    return kb.as_markup()


def mix_shares(ref: str, style_id: str) -> InlineKeyboardMarkup:
    """How much of the second style: a quarter, a half, three quarters."""
    kb = InlineKeyboardBuilder()
    for share in MIX_SHARES:
        kb.button(text=f"{share}%", callback_data=MixCB(ref=ref, style=style_id, share=share))
    kb.adjust(len(MIX_SHARES))
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
    t: Translator, ref: str, strength: int, *, full: bool = True, mix: bool = False
) -> InlineKeyboardMarkup:
    """Under a result: another style, the full-resolution file (photos: ``full``),
    "mix with…" (styles of a shared network: ``mix``), stronger / weaker."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t("btn_another_style"), callback_data=ResultCB(action="again", ref=ref))
    if full:
        kb.button(text=t("btn_full"), callback_data=ResultCB(action="full", ref=ref))
    if mix:
        kb.button(text=t("btn_mix"), callback_data=ResultCB(action="mix", ref=ref))
    steps = 0
    if strength > STRENGTHS[0]:
        kb.button(text=t("btn_weaker"), callback_data=ResultCB(action="down", ref=ref))
        steps += 1
    if strength < STRENGTHS[-1]:
        kb.button(text=t("btn_stronger"), callback_data=ResultCB(action="up", ref=ref))
        steps += 1
    top = 1 + full + mix
    rows = [2, 1] if top == 3 else [top]
    kb.adjust(*rows, *([steps] if steps else []))
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
