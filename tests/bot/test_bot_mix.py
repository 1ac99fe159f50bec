"""The picker's pages and "mix with…", end to end through the emulator.

Thirty styles do not fit one keyboard: the picker shows ten a page with arrows
that edit the same message. Under a result of a Magenta preset or a Dumoulin
style, "mix with…" offers the styles of the same network, then a share.
"""

from __future__ import annotations

import pytest
from bot_helpers import WAIT, RunningBot

from totoshka.bot.keyboards import PAGE_SIZE, page_count
from totoshka.bot.texts import Texts
from totoshka.engine.catalog import load_builtin_catalog

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()
CATALOG = load_builtin_catalog()


def t(lang: str, key: str, **params: object) -> str:
    return TEXTS.get(lang, key, **params)


def offered(bot: RunningBot, lang: str) -> list[tuple[str, str]]:
    return bot.app.services.style_buttons(lang)


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_picker_pages_through_every_style(
    bot: RunningBot, new_user, photos, lang: str
) -> None:
    styles = offered(bot, lang)
    pages = page_count(len(styles))
    assert len(styles) >= 30 and pages >= 3, len(styles)
    user = await new_user(lang)
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.text == t(lang, "pick_style"), timeout=WAIT)
    seen: list[str] = []
    for page in range(pages):
        labels = [b.text for b in picker.buttons]
        assert f"{page + 1}/{pages}" in labels
        assert t(lang, "btn_own_style") in labels and t(lang, "btn_gallery") in labels
        titles = [label for label in labels if label in dict((v, k) for k, v in styles)]
        assert 1 <= len(titles) <= PAGE_SIZE
        seen += titles
        await user.press(picker, "▶")
        picker = await user.wait_for_message(
            lambda m, mid=picker.message_id: m.message_id == mid and m.edit_count, timeout=WAIT
        )
    # every offered style once, in the catalog's order; ▶ on the last page wraps to the first
    assert seen == [title for _, title in styles]
    assert f"1/{pages}" in [b.text for b in picker.buttons]


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_mix_with_another_style_then_a_share(
    bot: RunningBot, new_user, photos, lang: str
) -> None:
    partners = bot.app.services.partners
    first = next(sid for sid, _ in offered(bot, lang) if sid in partners)
    second = partners[first][0]
    titles = dict(offered(bot, lang))
    page = [sid for sid, _ in offered(bot, lang)].index(first) // PAGE_SIZE
    user = await new_user(lang)
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.text == t(lang, "pick_style"), timeout=WAIT)
    for _ in range(page):
        await user.press(picker, "▶")
        picker = await user.wait_for_message(
            lambda m, mid=picker.message_id: m.message_id == mid and m.edit_count, timeout=WAIT
        )
    await user.press(picker, titles[first])
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert t(lang, "btn_mix") in [b.text for b in result.buttons]

    await user.press(result, t(lang, "btn_mix"))
    choose = await user.wait_for_message(
        lambda m: m.text == t(lang, "mix_pick", style=titles[first]), timeout=WAIT
    )
    labels = [b.text for b in choose.buttons]
    assert titles[second] in labels and titles[first] not in labels
    assert all(CATALOG.style(s).model == CATALOG.style(first).model for s in partners[first])
    await user.press(choose, titles[second])
    shares = await user.wait_for_message(
        lambda m: (
            m.message_id == choose.message_id
            and m.text == t(lang, "mix_share", style=titles[second])
        ),
        timeout=WAIT,
    )
    assert [b.text for b in shares.buttons] == ["25%", "50%", "75%"]
    await user.press(shares, "25%")
    mixed_title = t(lang, "mix_title", first=titles[first], second=titles[second], share=25)
    caption = t(lang, "result_caption", style=mixed_title, strength=100)
    mixed = await user.wait_for_message(lambda m: m.photo and m.caption == caption, timeout=WAIT)
    assert mixed.largest_photo is not None
    done = await user.wait_for_message(
        lambda m: m.text == t(lang, "status_done", style=mixed_title), timeout=WAIT
    )
    assert done.text


async def test_an_ml5_result_has_no_mix_button(bot: RunningBot, new_user, photos) -> None:
    assert "wave" not in bot.app.services.partners
    user = await new_user("en")
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.text == t("en", "pick_style"), timeout=WAIT)
    await user.press(picker, dict(offered(bot, "en"))["wave"])
    result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert t("en", "btn_mix") not in [b.text for b in result.buttons]
