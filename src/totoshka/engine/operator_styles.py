"""Styles an operator adds without touching code.

Everything lives in the user data dir (`paths.data_dir()`):

    <data>/catalog.json                 {"models": [...], "styles": [...]}, same schema as
                                        the built-in engine/catalog.json
    <data>/models/user/<style>/...      the style's weights (model id "user-<style>")
    <data>/previews/<style>.<ext>       an optional preview picture

`add_operator_style(style, files)` is the one entry point: with `files` it copies
the weights in, hashes them, and proves they load through `models.registry`
before registering anything; without `files` the style reuses a model already in
the catalog (e.g. a Magenta painting preset: `Style(model="magenta", vector=...)`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from totoshka.engine import paths
from totoshka.engine.catalog import (
    OPERATOR,
    USER_CATALOG,
    CatalogError,
    Model,
    ModelFile,
    Style,
    catalog_from_dicts,
    load_builtin_catalog,
    merge_operator_styles,
    read_user_catalog,
    to_json,
)
from totoshka.engine.download import copy_atomic
from totoshka.engine.errors import EngineError, ModelFormatError
from totoshka.engine.imageio import load_image

MODEL_PREFIX = "user-"
PTH_SUFFIXES = (".pth", ".pt")
CATALOG_LOCK = ".catalog.lock"  # held while the operator catalog is read and rewritten


def _write_user_catalog(data_dir: Path, data: Mapping[str, Any]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / USER_CATALOG
    tmp = path.with_name(f"{USER_CATALOG}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def detect_family(path: Path) -> str:
    """A .pth/.pt file is pytorch/examples' TransformerNet; an ml5 folder has manifest.json."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "ml5"
        raise ModelFormatError(path, "a model folder needs a manifest.json (ml5 format)")
    if path.is_file():
        if path.suffix.lower() in PTH_SUFFIXES:
            return "pytorch"
        raise ModelFormatError(path, "expected a .pth file or an ml5 folder with manifest.json")
    raise EngineError(f"{path}: no such file or folder")


def model_files_of(path: Path, family: str) -> dict[str, Path]:
    """The files to copy for a model given as a file or an ml5 folder."""
    if family == "ml5":
        manifest = path / "manifest.json"
        try:
            entries = json.loads(manifest.read_text())
            names = sorted({e["filename"] for e in entries.values()})
        except (ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
            raise ModelFormatError(manifest, "manifest is not an ml5 manifest") from None
        files = {"manifest.json": manifest}
        for name in names:
            if Path(name).name != name:
                raise ModelFormatError(manifest, f"file name {name!r} leaves the folder")
            files[name] = path / name
        return files
    return {"model.pth": path}


def add_operator_style(
    style: Style,
    files: Mapping[str, Path] | None = None,
    *,
    family: str | None = None,
    data_dir: Path | str | None = None,
    validate: bool = True,
) -> Style:
    """Register an operator style; with `files` ({name: source}) its own model too.

    The weights are copied into the data dir and hashed; with `validate` the
    network is built through models.registry and a broken model is refused with
    the loader's error, leaving nothing behind. Returns the registered style.
    """
    data_dir = paths.data_dir(data_dir)
    with paths.file_lock(data_dir / CATALOG_LOCK):
        catalog = merge_operator_styles(load_builtin_catalog(), data_dir)
        if style.id in catalog:
            raise CatalogError(f"a style with id {style.id!r} already exists")
        data = read_user_catalog(data_dir)
        style = replace(style, origin=OPERATOR, preview=_copy_preview(style, data_dir))
        model: Model | None = None
        folder = data_dir / "models" / "user" / style.id
        try:
            if files:
                if not family:
                    raise EngineError("a style with its own files needs a model family")
                model = _import_files(style, files, family, data_dir, folder)
                style = replace(style, model=model.id)
                if validate:
                    _validate(folder, model, style)
            else:
                catalog.model(style.model)  # must exist (e.g. "magenta")
            if model is not None:
                data["models"].append(to_json(model))
            data["styles"].append(to_json(style))
            catalog_from_dicts(data["models"], data["styles"], OPERATOR, load_builtin_catalog())
            _write_user_catalog(data_dir, data)
        except BaseException:
            if files:
                shutil.rmtree(folder, ignore_errors=True)
            if style.preview:
                with contextlib.suppress(OSError):
                    Path(style.preview).unlink()
            raise
    return style


def _import_files(
    style: Style, files: Mapping[str, Path], family: str, data_dir: Path, folder: Path
) -> Model:
    shutil.rmtree(folder, ignore_errors=True)  # a leftover of a crashed add
    records = []
    for name, source in files.items():
        source = Path(source)
        if not source.is_file():
            raise ModelFormatError(source, "file is missing")
        digest = copy_atomic(source, folder / name)
        records.append(
            ModelFile(
                path=f"user/{style.id}/{name}",
                url="",
                sha256=digest,
                size=(folder / name).stat().st_size,
            )
        )
    return Model(
        id=MODEL_PREFIX + style.id,
        family=family,
        files=tuple(records),
        credit=style.credit,
        license=style.license,
        note="added by the operator",
        origin=OPERATOR,
    )


def _validate(folder: Path, model: Model, style: Style) -> None:
    from totoshka.engine.models.registry import load_network

    try:
        load_network(folder, model, style)
    except EngineError:
        raise
    except Exception as exc:  # a loader that failed in an unplanned way
        raise ModelFormatError(folder, f"{type(exc).__name__}: {exc}") from None


def _copy_preview(style: Style, data_dir: Path) -> str | None:
    if not style.preview:
        return None
    source = Path(style.preview)
    load_image(source)  # refuse a non-image with the image error
    dest = data_dir / "previews" / f"{style.id}{source.suffix.lower() or '.jpg'}"
    copy_atomic(source, dest)
    return str(dest)


def add_style_from_path(
    style_id: str,
    model_path: Path,
    *,
    title_en: str | None = None,
    title_ru: str | None = None,
    preview: Path | None = None,
    credit: str = "",
    license: str = "",
    data_dir: Path | str | None = None,
) -> Style:
    """`totoshka styles add`: a .pth file or an ml5 folder becomes a style."""
    model_path = Path(model_path)
    family = detect_family(model_path)
    files = model_files_of(model_path, family)
    title_en = title_en or style_id.replace("_", " ").replace("-", " ").title()
    style = Style(
        id=style_id,
        model=MODEL_PREFIX + style_id,
        title={"en": title_en, "ru": title_ru or title_en},
        credit=credit or "added by the operator",
        license=license or "unknown",
        preview=str(preview) if preview else None,
    )
    return add_operator_style(style, files, family=family, data_dir=data_dir)


def remove_operator_style(style_id: str, data_dir: Path | str | None = None) -> None:
    """Remove an operator style, its own model and files; built-in ones are refused."""
    data_dir = paths.data_dir(data_dir)
    with paths.file_lock(data_dir / CATALOG_LOCK):
        builtin = load_builtin_catalog()
        if style_id in builtin:
            raise EngineError(f"{style_id!r} is a built-in style and cannot be removed")
        data = read_user_catalog(data_dir)
        entry = next((s for s in data["styles"] if s.get("id") == style_id), None)
        if entry is None:
            raise EngineError(f"no operator style {style_id!r}")
        data["styles"] = [s for s in data["styles"] if s.get("id") != style_id]
        model_id = entry.get("model")
        still_used = any(s.get("model") == model_id for s in data["styles"])
        own_model = model_id == MODEL_PREFIX + style_id and not still_used
        if own_model:
            data["models"] = [m for m in data["models"] if m.get("id") != model_id]
        _write_user_catalog(data_dir, data)
        if own_model:
            shutil.rmtree(data_dir / "models" / "user" / style_id, ignore_errors=True)
        if entry.get("preview"):
            with contextlib.suppress(OSError):
                Path(entry["preview"]).unlink()
