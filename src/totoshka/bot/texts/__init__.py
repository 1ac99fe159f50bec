"""Translations: one Fluent file per language next to this module (``en.ftl``, ``ru.ftl``).

Handlers never hold literals; they ask a `Translator` bound to the user's language.
Fluent (https://projectfluent.org) rather than ``str.format`` templates because a
number changes the words around it differently in every language (1 картинка,
2 картинки, 5 картинок, 21 картинка): a select expression over CLDR plural
categories lets each file say it its own way while code passes only the number.
The files stay plain text that translators edit without tooling, and a language
is nothing but its file: the languages are the ``.ftl`` files found here, and a
message one of them lacks is taken from English.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fluent.runtime import FluentBundle, FluentResource
from fluent.runtime.types import fluent_number
from fluent.syntax import ast

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
SUFFIX = ".ftl"

# Telegram language codes without a file of their own whose speakers are far more
# likely to read Russian than English. A code that has its own file wins over this.
_NEIGHBOURS = {"be": "ru", "uk": "ru", "kk": "ru"}


def discover(folder: Traversable | Path) -> tuple[str, ...]:
    """The languages with a file in ``folder``, English first.

    English leads because it is the fallback and the default, and the order is the
    one /settings cycles through, so it must not depend on the file system's.
    """
    found = sorted(
        entry.name.removesuffix(SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(SUFFIX) and entry.is_file()
    )
    if DEFAULT_LANGUAGE not in found:
        raise FileNotFoundError(f"no {DEFAULT_LANGUAGE}{SUFFIX} in {folder}: it is the fallback")
    return (DEFAULT_LANGUAGE, *(lang for lang in found if lang != DEFAULT_LANGUAGE))


LANGUAGES: tuple[str, ...] = discover(resources.files(__name__))


def language_from_code(code: str | None, languages: Iterable[str] = LANGUAGES) -> str:
    """Telegram's ``language_code`` (``ru``, ``ru-RU``, ``be``...) to one of ``languages``.

    The exact code is tried before its base language so that a regional file
    (``pt-br.ftl``) can exist beside the generic one.
    """
    if not code:
        return DEFAULT_LANGUAGE
    known = {lang.lower(): lang for lang in languages}
    code = code.lower().replace("_", "-")
    base = code.split("-")[0]
    for candidate in (code, base, _NEIGHBOURS.get(base)):
        if candidate in known:
            return known[candidate]
    return DEFAULT_LANGUAGE


def _argument(value: Any) -> Any:
    """A Python value as Fluent should see it.

    Numbers stay numbers so that a select expression can pick their plural form,
    but without digit grouping: Fluent would print 1280 as "1,280" (or "1 280" in
    Russian) where the texts always showed plain digits. Anything Fluent does not
    know becomes its ``str()``, as ``str.format`` did, instead of a formatting error.
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return fluent_number(value, useGrouping=False)
    if isinstance(value, str | date):
        return value
    return str(value)


def _parse(lang: str, source: str) -> ast.Resource:
    """One file's messages, refusing a broken one.

    Fluent itself skips what it cannot parse and keeps the first of two messages
    with one id, so a typo would silently fall back to English; at start-up it is
    better to stop and name the line.
    """
    resource = FluentResource(source)
    problems: list[str] = []
    ids: set[str] = set()
    for entry in resource.body:
        if isinstance(entry, ast.Junk):
            line = source.count("\n", 0, entry.span.start) + 1 if entry.span else "?"
            problems += [f"line {line}: {a.message}" for a in entry.annotations]
        elif isinstance(entry, ast.Message | ast.Term):
            name = ("-" if isinstance(entry, ast.Term) else "") + entry.id.name
            if name in ids:
                problems.append(f"{name} is defined twice")
            ids.add(name)
    if problems:
        raise ValueError(f"{lang}{SUFFIX}: " + "; ".join(problems))
    return resource


class Texts:
    """All translations, parsed once at start-up and shared read-only."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        """``sources``: the Fluent text of each language, keyed by its code."""
        if DEFAULT_LANGUAGE not in sources:
            raise ValueError(f"no {DEFAULT_LANGUAGE!r} texts: it is the fallback")
        self.languages: tuple[str, ...] = (
            DEFAULT_LANGUAGE,
            *sorted(lang for lang in sources if lang != DEFAULT_LANGUAGE),
        )
        self._bundles: dict[str, FluentBundle] = {}
        self._messages: dict[str, set[str]] = {}
        for lang in self.languages:
            resource = _parse(lang, sources[lang])
            # English as the second locale: Babel falls back to it for plural rules
            # and number formats when it does not know a language code.
            bundle = FluentBundle([lang, DEFAULT_LANGUAGE], use_isolating=False)
            bundle.add_resource(resource)
            self._bundles[lang] = bundle
            self._messages[lang] = {
                entry.id.name
                for entry in resource.body
                if isinstance(entry, ast.Message) and entry.value is not None
            }

    @classmethod
    def load(cls, folder: Traversable | Path | None = None) -> Texts:
        """The files in this package, or in ``folder`` (a test's copy with one more)."""
        root = resources.files(__name__) if folder is None else folder
        return cls(
            {lang: root.joinpath(lang + SUFFIX).read_text("utf-8") for lang in discover(root)}
        )

    def format(
        self, lang: str, key: str, params: Mapping[str, Any] | None = None
    ) -> tuple[str, list[Exception]]:
        """The text and what went wrong making it, for callers that must not guess.

        Fluent never raises on a missing variable or a bad selector: it returns its
        best text and the errors. A `KeyError` means English has no such message.
        """
        if key not in self._messages.get(lang, {}):
            lang = DEFAULT_LANGUAGE
            if key not in self._messages[lang]:
                raise KeyError(key)
        bundle = self._bundles[lang]
        pattern = bundle.get_message(key).value
        assert pattern is not None  # messages without a value are not kept
        arguments = {name: _argument(value) for name, value in (params or {}).items()}
        text, errors = bundle.format_pattern(pattern, arguments)
        return (text if isinstance(text, str) else "{???}"), errors

    def get(self, lang: str, key: str, **params: Any) -> str:
        """The text in ``lang`` (English where ``lang`` lacks it).

        A mistake in a translation is logged, not raised: the user is better served
        by a slightly wrong sentence than by a failed handler.
        """
        text, errors = self.format(lang, key, params)
        if errors:
            log.warning("text %s in %s: %s", key, lang, "; ".join(map(str, errors)))
        return text

    def for_language(self, lang: str) -> Translator:
        return Translator(self, lang if lang in self._bundles else DEFAULT_LANGUAGE)


@dataclass(frozen=True)
class Translator:
    """`Texts` bound to one language; handlers receive it as ``t``."""

    texts: Texts
    lang: str

    def __call__(self, key: str, **params: Any) -> str:
        return self.texts.get(self.lang, key, **params)
