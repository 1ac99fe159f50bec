"""Translations: one JSON file per language next to this module (``en.json``, ``ru.json``).

Handlers never hold literals; they ask a `Translator` bound to the user's language.
A plain JSON map keeps the files editable by translators without tooling; a test
checks that every language has exactly the same keys and placeholders.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from importlib import resources
from typing import Any

LANGUAGES: tuple[str, ...] = ("en", "ru")
DEFAULT_LANGUAGE = "en"


def language_from_code(code: str | None) -> str:
    """Telegram's ``language_code`` (``ru``, ``ru-RU``, ``be``...) to one of ours."""
    if code and code.lower().split("-")[0] in {"ru", "be", "uk", "kk"}:
        return "ru"
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Texts:
    """All translations, loaded once at start-up and shared read-only."""

    catalogs: dict[str, dict[str, str]]

    @classmethod
    def load(cls) -> Texts:
        folder = resources.files(__name__)
        catalogs = {
            lang: json.loads(folder.joinpath(f"{lang}.json").read_text("utf-8"))
            for lang in LANGUAGES
        }
        return cls(catalogs)

    def get(self, lang: str, key: str, **params: Any) -> str:
        catalog = self.catalogs.get(lang) or self.catalogs[DEFAULT_LANGUAGE]
        template = catalog.get(key) or self.catalogs[DEFAULT_LANGUAGE][key]
        return template.format(**params) if params else template

    def for_language(self, lang: str) -> Translator:
        return Translator(self, lang if lang in self.catalogs else DEFAULT_LANGUAGE)


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields of a template (for the consistency test)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class Translator:
    """`Texts` bound to one language; handlers receive it as ``t``."""

    texts: Texts
    lang: str

    def __call__(self, key: str, **params: Any) -> str:
        return self.texts.get(self.lang, key, **params)
