"""The translations: every language complete, every message formats, numbers agree.

Fluent never raises while formatting: a missing variable or a broken select comes
back as a best-effort text plus a list of errors, so these tests read that list
instead of waiting for an exception that would never come.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import ftl_source as ftl
import pytest

from totoshka.bot.texts import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    SUFFIX,
    Texts,
    discover,
    language_from_code,
)

TEXTS = Texts.load()
OTHERS = [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]

# A sample for every variable any message uses; numbers are walked over values
# that reach every plural category of both languages (and 1280 for grouping).
STRINGS = {
    "name": "Ann",
    "style": "Udnie",
    "reason": "the picture is too large.",
    "size": "21.0",
    "colors": "yes",
    "language": "English",
    "first": "Mosaic",
    "second": "Candy",
}
NUMBERS = {"n", "position", "strength", "limit", "count", "percent", "seconds", "share"}
COUNTS = (0, 1, 2, 3, 4, 5, 11, 12, 14, 21, 22, 25, 101, 111, 1280)

# The messages whose words follow the number. Every other numeric message uses its
# number as a label ("place 5", "Painting 21", "75%"), where nothing agrees with it.
PLURAL = {
    "too_many_pending": "limit",
    "cancelled": "count",
    "clip_too_long": "limit",
    "err_clip_too_long": "limit",
}


def used_variables() -> set[str]:
    return {v for lang in LANGUAGES for k in ftl.message_ids(lang) for v in ftl.variables(lang, k)}


def samples(lang: str, key: str, number: int) -> dict[str, object]:
    return {name: number if name in NUMBERS else STRINGS[name] for name in ftl.variables(lang, key)}


def render(lang: str, key: str, **params: object) -> str:
    text, errors = TEXTS.format(lang, key, params)
    assert errors == [], (lang, key, errors)
    return text


def test_languages_are_the_files_in_the_package() -> None:
    folder = resources.files("totoshka.bot.texts")
    files = sorted(e.name for e in folder.iterdir() if e.name.endswith(SUFFIX))
    assert LANGUAGES[0] == DEFAULT_LANGUAGE
    assert sorted(LANGUAGES) == [name.removesuffix(SUFFIX) for name in files]
    assert {"en", "ru"} <= set(LANGUAGES)
    assert not any(e.name.endswith(".json") for e in folder.iterdir())
    assert TEXTS.languages == LANGUAGES


def test_every_variable_has_a_sample() -> None:
    assert used_variables() <= NUMBERS | set(STRINGS), used_variables() - NUMBERS - set(STRINGS)


@pytest.mark.parametrize("lang", OTHERS)
def test_every_language_has_the_same_messages_and_variables(lang: str) -> None:
    en = ftl.message_ids(DEFAULT_LANGUAGE)
    assert ftl.message_ids(lang) == en, ftl.message_ids(lang) ^ en
    for key in sorted(en):
        assert ftl.variables(lang, key) == ftl.variables(DEFAULT_LANGUAGE, key), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_formats_cleanly(lang: str) -> None:
    for key in sorted(ftl.message_ids(lang)):
        numeric = ftl.variables(lang, key) & NUMBERS
        for number in COUNTS if numeric else (1,):
            params = samples(lang, key, number)
            text, errors = TEXTS.format(lang, key, params)
            assert errors == [], (key, number, errors)
            assert text.strip(), key
            assert "{" not in text and "}" not in text, (key, text)
            assert "\u2068" not in text and "\u2069" not in text, key  # no bidi isolation
            assert len(text) < 4096, key  # Telegram's limit for one message
            for name, value in params.items():
                assert str(value) in text, (key, name)  # plain digits: 1280, never 1,280


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogs_give_each_message_literal_start(lang: str) -> None:
    """The e2e tests recognise a message by its words before the first placeable."""
    catalog = {key: ftl.source_text(lang, key) for key in ftl.message_ids(lang)}
    for key, source in catalog.items():
        head = source.split("{")[0]
        assert render(lang, key, **samples(lang, key, 2)).startswith(head), key
    assert catalog["cancelled"].split("{")[0].strip()
    assert catalog["status_working"].split("{")[0].strip()


RU_PENDING = {
    1: "У вас уже 1 картинка в работе. Дождитесь её",
    2: "У вас уже 2 картинки в работе. Дождитесь их",
    5: "У вас уже 5 картинок в работе. Дождитесь их",
    11: "У вас уже 11 картинок в работе. Дождитесь их",
    21: "У вас уже 21 картинка в работе. Дождитесь их",
    22: "У вас уже 22 картинки в работе. Дождитесь их",
}
RU_CANCELLED = {
    1: "Отменил 1 картинку в очереди.",
    2: "Отменил 2 картинки в очереди.",
    5: "Отменил 5 картинок в очереди.",
    11: "Отменил 11 картинок в очереди.",
    21: "Отменил 21 картинку в очереди.",
    22: "Отменил 22 картинки в очереди.",
}


@pytest.mark.parametrize("n", sorted(RU_PENDING))
def test_russian_plurals(n: int) -> None:
    assert render("ru", "too_many_pending", limit=n) == (
        f"{RU_PENDING[n]} (или /cancel), потом присылайте ещё."
    )
    assert render("ru", "cancelled", count=n) == (
        f"{RU_CANCELLED[n]} Разговор начат заново — присылайте новое фото, когда захотите."
    )
    # Numbers used as labels or percentages: the words around them never change.
    assert render("ru", "status_queued", position=n) == f"⏳ В очереди: место {n}."
    assert render("ru", "btn_painting", n=n) == f"🖌 Картина {n}"
    assert render("ru", "btn_strength", strength=n) == f"💪 {n}%"
    assert render("ru", "result_caption", style="Удни", strength=n) == f"«Удни» · сила {n}%"
    settings = render("ru", "settings", size="1024 px", strength=n, colors="да", language="Русский")
    assert f"\nСила стиля: {n}%\n" in settings


@pytest.mark.parametrize(
    ("n", "pending", "cancelled"),
    [
        (1, "1 picture in the works. Wait for it to arrive", "Cancelled 1 queued picture."),
        (2, "2 pictures in the works. Wait for them to arrive", "Cancelled 2 queued pictures."),
        (5, "5 pictures in the works. Wait for them to arrive", "Cancelled 5 queued pictures."),
        (11, "11 pictures in the works. Wait for them to arrive", "Cancelled 11 queued pictures."),
        (21, "21 pictures in the works. Wait for them to arrive", "Cancelled 21 queued pictures."),
    ],
)
def test_english_plurals(n: int, pending: str, cancelled: str) -> None:
    assert render("en", "too_many_pending", limit=n) == (
        f"You already have {pending} (or /cancel), then send more."
    )
    assert render("en", "cancelled", count=n).startswith(cancelled + " The conversation")
    assert render("en", "status_queued", position=n) == f"⏳ In line: place {n}."


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_messages_vary_with_the_number(lang: str) -> None:
    for key, variable in PLURAL.items():
        texts = {render(lang, key, **{variable: n}).replace(str(n), "#") for n in (1, 2, 5)}
        assert len(texts) > 1, (lang, key)


def test_numbers_are_not_grouped() -> None:
    for lang in LANGUAGES:
        assert render(lang, "btn_strength", strength=1280).endswith(" 1280%")
        assert "1280" in render(lang, "too_many_pending", limit=1280)
    assert render("ru", "too_many_pending", limit=1280).startswith("У вас уже 1280 картинок ")


def test_missing_variable_is_reported_not_raised() -> None:
    text, errors = TEXTS.format("en", "status_queued", {})
    assert text.startswith("⏳ In line: place ")
    assert errors
    assert TEXTS.get("en", "status_queued").startswith("⏳ In line: place ")


def test_get_and_translator() -> None:
    t = TEXTS.for_language("ru")
    assert t.lang == "ru"
    assert t("too_many_pending", limit=3) == TEXTS.get("ru", "too_many_pending", limit=3)
    assert TEXTS.for_language("xx").lang == DEFAULT_LANGUAGE
    assert TEXTS.get("xx", "yes") == "yes"
    with pytest.raises(KeyError):
        TEXTS.get("en", "no_such_message")


GERMAN = """\
language_name = Deutsch
yes = ja
too_many_pending =
    Du hast schon { $limit } { $limit ->
        [one] Bild
       *[other] Bilder
    } in Arbeit.
"""


def test_a_new_language_is_only_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    shutil.copytree(Path(str(resources.files("totoshka.bot.texts"))), folder)
    (folder / f"de{SUFFIX}").write_text(GERMAN, "utf-8")
    (folder / f"uk{SUFFIX}").write_text("yes = так\n", "utf-8")

    texts = Texts.load(folder)
    assert discover(folder) == texts.languages == ("en", "de", "ru", "uk")
    assert texts.for_language("de").lang == "de"
    assert texts.get("de", "yes") == "ja"
    assert texts.get("de", "too_many_pending", limit=1) == "Du hast schon 1 Bild in Arbeit."
    assert texts.get("de", "too_many_pending", limit=2) == "Du hast schon 2 Bilder in Arbeit."
    # what the new file lacks comes from English
    assert texts.get("de", "no") == "no"
    assert texts.get("de", "status_queued", position=2) == "⏳ In line: place 2."
    # a language with its own file is chosen for its own code
    assert language_from_code("de-AT", texts.languages) == "de"
    assert language_from_code("uk", texts.languages) == "uk"
    assert language_from_code("uk", LANGUAGES) == ("uk" if "uk" in LANGUAGES else "ru")
    assert texts.get("uk", "yes") == "так"


def test_a_broken_file_stops_loading(tmp_path: Path) -> None:
    (tmp_path / f"en{SUFFIX}").write_text("yes = yes\nno = { $oops\n", "utf-8")
    with pytest.raises(ValueError, match=r"en\.ftl: line 2"):
        Texts.load(tmp_path)
    (tmp_path / f"en{SUFFIX}").write_text("yes = yes\nyes = again\n", "utf-8")
    with pytest.raises(ValueError, match="twice"):
        Texts.load(tmp_path)
    (tmp_path / f"en{SUFFIX}").unlink()
    (tmp_path / f"ru{SUFFIX}").write_text("yes = да\n", "utf-8")
    with pytest.raises(FileNotFoundError):
        Texts.load(tmp_path)


def test_language_from_telegram_code() -> None:
    assert language_from_code("ru") == "ru"
    assert language_from_code("ru-RU") == "ru"
    assert language_from_code("be") == "ru"
    assert language_from_code("en-GB") == "en"
    assert language_from_code(None) == "en"
    assert language_from_code("") == "en"
    assert language_from_code("de") == ("de" if "de" in LANGUAGES else "en")
    # a neighbour maps only onto a language that has a file
    assert language_from_code("be", ("en",)) == "en"
