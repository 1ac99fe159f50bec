"""The catalog: which models exist, where their weights come from, which styles they paint.

A weight is a value (torchvision's habit): one `ModelFile` record holds its path in
the cache and in a mirror, its upstream URL, its full sha256 and its size. A
`Model` groups the files one loader reads; a `Style` is what a user picks, with
titles in English and Russian, the painter/model credit and the weights' license.

The built-in catalog ships as `catalog.json` next to this module. Operators add
their own styles without touching code (see `operator_styles`); `load_catalog()`
merges both. Ids are unique across everything: the registry refuses duplicates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from totoshka.engine.errors import EngineError, UnknownStyleError

# Short, lowercase, safe inside Telegram callback data (64 bytes in all).
STYLE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
LANGUAGES = ("en", "ru")

BUILTIN = "builtin"
OPERATOR = "operator"


class CatalogError(EngineError):
    """A catalog entry that breaks the rules (duplicate id, missing title, bad hash...)."""

    code = "catalog"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model.

    `path` is where the file lives in the cache AND in a mirror (e.g.
    "ml5/wave/Variable_3"). `sha256=None` means unknown offline: the hash is
    recorded at the first download (trust on first use) and enforced after;
    `note` then says so explicitly.
    """

    path: str
    url: str
    sha256: str | None
    size: int | None = None
    note: str | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def trust_on_first_use(self) -> bool:
        return self.sha256 is None


@dataclass(frozen=True)
class Model:
    """The files one loader reads. `family` picks the loader (models/registry.py)."""

    id: str
    family: str
    files: tuple[ModelFile, ...]
    credit: str
    license: str
    note: str | None = None
    origin: str = BUILTIN  # "operator": files live in the user data dir, never downloaded

    @property
    def folder(self) -> str:
        """The model's folder relative to the cache (the files' common parent)."""
        parents = {str(Path(f.path).parent) for f in self.files}
        if len(parents) != 1:
            raise CatalogError(f"model {self.id!r}: files must share one folder")
        return parents.pop()

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s)


@dataclass(frozen=True)
class Style:
    """What a user picks.

    `member`: a file inside the model (e.g. "saved_models/candy.pth" in a zip).
    `vector`: a Magenta style vector (painting presets of family "magenta").
    `preview`: an image of the style (a path, absolute for operator styles).
    """

    id: str
    model: str
    title: Mapping[str, str]
    credit: str
    license: str
    member: str | None = None
    vector: tuple[float, ...] | None = None
    preview: str | None = None
    origin: str = BUILTIN

    def title_in(self, language: str) -> str:
        return self.title.get(language) or self.title["en"]

    def __hash__(self) -> int:  # title is a dict; the id is the identity
        return hash((self.id, self.model))


@dataclass
class Catalog:
    """Models and styles by id; refuses duplicates and styles of unknown models."""

    _models: dict[str, Model] = field(default_factory=dict)
    _styles: dict[str, Style] = field(default_factory=dict)

    def add_model(self, model: Model) -> None:
        check_model(model)
        if model.id in self._models:
            raise CatalogError(f"duplicate model id {model.id!r}")
        self._models[model.id] = model

    def add_style(self, style: Style) -> None:
        check_style(style)
        if style.id in self._styles:
            raise CatalogError(f"duplicate style id {style.id!r}")
        if style.model not in self._models:
            raise CatalogError(f"style {style.id!r} uses unknown model {style.model!r}")
        self._styles[style.id] = style

    def styles(self) -> list[Style]:
        return list(self._styles.values())

    def models(self) -> list[Model]:
        return list(self._models.values())

    def style(self, style_id: str) -> Style:
        try:
            return self._styles[style_id]
        except KeyError:
            known = ", ".join(sorted(self._styles)) or "none"
            raise UnknownStyleError(f"unknown style {style_id!r} (known: {known})") from None

    def model(self, model_id: str) -> Model:
        try:
            return self._models[model_id]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none"
            raise UnknownStyleError(f"unknown model {model_id!r} (known: {known})") from None

    def styles_of(self, model_id: str) -> list[Style]:
        return [s for s in self._styles.values() if s.model == model_id]

    def __contains__(self, style_id: object) -> bool:
        return style_id in self._styles


def check_model(model: Model) -> None:
    if not MODEL_ID.match(model.id):
        raise CatalogError(f"bad model id {model.id!r}")
    if not model.files:
        raise CatalogError(f"model {model.id!r} has no files")
    for f in model.files:
        p = Path(f.path)
        if p.is_absolute() or ".." in p.parts or not f.path:
            raise CatalogError(f"model {model.id!r}: file path {f.path!r} must be relative")
        if model.origin == BUILTIN and not f.url:
            raise CatalogError(f"model {model.id!r}: file {f.path!r} has no URL")
        if f.sha256 is None:
            if model.origin == BUILTIN and not f.note:
                raise CatalogError(
                    f"model {model.id!r}: file {f.path!r} has no sha256 and no note saying why"
                )
        elif not SHA256.match(f.sha256):
            raise CatalogError(f"model {model.id!r}: file {f.path!r} has a malformed sha256")
    _ = model.folder


def check_style(style: Style) -> None:
    if not STYLE_ID.match(style.id):
        raise CatalogError(
            f"bad style id {style.id!r}: use 1-32 of a-z, 0-9, '_' and '-', starting "
            "with a letter or digit"
        )
    for lang in LANGUAGES:
        if not (style.title.get(lang) or "").strip():
            raise CatalogError(f"style {style.id!r} has no {lang} title")


# --- JSON <-> records -------------------------------------------------------------


def model_from_dict(d: Mapping[str, Any], origin: str = BUILTIN) -> Model:
    files = tuple(
        ModelFile(
            path=f["path"],
            url=f.get("url", ""),
            sha256=f.get("sha256"),
            size=f.get("size"),
            note=f.get("note"),
        )
        for f in d["files"]
    )
    return Model(
        id=d["id"],
        family=d["family"],
        files=files,
        credit=d.get("credit", ""),
        license=d.get("license", ""),
        note=d.get("note"),
        origin=origin,
    )


def style_from_dict(d: Mapping[str, Any], origin: str = BUILTIN) -> Style:
    vector = d.get("vector")
    return Style(
        id=d["id"],
        model=d["model"],
        title=dict(d["title"]),
        credit=d.get("credit", ""),
        license=d.get("license", ""),
        member=d.get("member"),
        vector=tuple(float(v) for v in vector) if vector is not None else None,
        preview=d.get("preview"),
        origin=origin,
    )


def model_to_dict(model: Model) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": model.id,
        "family": model.family,
        "credit": model.credit,
        "license": model.license,
        "files": [
            {k: v for k, v in vars(f).items() if v is not None or k == "sha256"}
            for f in model.files
        ],
    }
    if model.note:
        d["note"] = model.note
    return d


def style_to_dict(style: Style) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": style.id,
        "model": style.model,
        "title": dict(style.title),
        "credit": style.credit,
        "license": style.license,
    }
    for key in ("member", "preview"):
        if getattr(style, key) is not None:
            d[key] = getattr(style, key)
    if style.vector is not None:
        d["vector"] = list(style.vector)
    return d


def catalog_from_dicts(
    models: Iterable[Mapping[str, Any]],
    styles: Iterable[Mapping[str, Any]],
    origin: str = BUILTIN,
    into: Catalog | None = None,
) -> Catalog:
    catalog = into if into is not None else Catalog()
    for m in models:
        try:
            catalog.add_model(model_from_dict(m, origin))
        except (KeyError, TypeError) as exc:
            raise CatalogError(f"bad model entry {m.get('id', '?')!r}: {exc}") from None
    for s in styles:
        try:
            catalog.add_style(style_from_dict(s, origin))
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"bad style entry {s.get('id', '?')!r}: {exc}") from None
    return catalog


def builtin_catalog_data() -> dict[str, Any]:
    text = resources.files("totoshka.engine").joinpath("catalog.json").read_text("utf-8")
    return json.loads(text)


def load_builtin_catalog() -> Catalog:
    data = builtin_catalog_data()
    return catalog_from_dicts(data["models"], data["styles"])


def load_catalog(data_dir: Path | None = None) -> Catalog:
    """The built-in catalog plus the operator's own styles from the user data dir."""
    from totoshka.engine.operator_styles import merge_operator_styles

    return merge_operator_styles(load_builtin_catalog(), data_dir)
