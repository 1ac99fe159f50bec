"""`totoshka models`: list, pull and verify the model weights in the cache."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from totoshka.cli import common, table
from totoshka.cli.common import command_engine, download_progress
from totoshka.engine.catalog import OPERATOR
from totoshka.engine.errors import EngineError

app = typer.Typer(help="Model weights: list, pull, verify.", no_args_is_help=True)
ModelIds = Annotated[
    list[str] | None, typer.Argument(help="Model ids (default: all).", show_default=False)
]


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / (1024 * 1024):.1f} MB"


def _styles(ids: Iterable[str], shown: int = 4) -> str:
    """The first few style ids of a model: one line per model, however many it serves."""
    ids = list(ids)
    if not ids:
        return "-"
    more = f", … (+{len(ids) - shown})" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


@app.command("list")
def list_models() -> None:
    """Every model: family, files, size, license, and whether it is in the cache."""
    engine = command_engine()
    catalog, store = engine.catalog, engine.store
    rows = []
    for model in catalog.models():
        styles = _styles(s.id for s in catalog.styles_of(model.id))
        tofu = any(f.sha256 is None for f in model.files)
        size = _size(model.size) + (" (TOFU)" if tofu else "")
        cached = "yes" if store.is_present(model) else "no"
        rows.append(
            (model.id, model.family, str(len(model.files)), size, model.license, styles, cached)
        )
    header = ("id", "family", "files", "size", "license", "styles", "cached")
    table.echo(f"Models (cache: {store.cache_dir})", header, rows)


@app.command("pull")
def pull(
    ids: ModelIds = None,
    mirror: Annotated[
        str | None,
        typer.Option(help="Fetch from this mirror: a folder or URL laid out like the cache."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Download again even if present.")] = False,
) -> None:
    """Download models into the cache (checked by sha256)."""
    engine = command_engine(model_mirror=mirror)
    catalog, store = engine.catalog, engine.store
    asked = [catalog.model(i) for i in ids] if ids else catalog.models()
    models = [m for m in asked if m.origin != OPERATOR]  # an operator's own: nowhere to pull from
    failures = []
    with download_progress(common.err_console.is_terminal) as progress:
        for model in models:
            try:
                store.fetch(model, force=force, progress=progress)
            except EngineError as exc:
                failures.append(f"{model.id}: {exc.message}")
    for model in models:
        if store.is_present(model):
            typer.echo(f"{model.id}: ok ({store.folder(model)})")
    if failures:
        raise EngineError("; ".join(failures))


@app.command("verify")
def verify(
    ids: ModelIds = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Report models not in the cache as failures too.")
    ] = False,
) -> None:
    """Re-hash the cached files against the catalog (or the first-use record)."""
    engine = command_engine()
    catalog, store = engine.catalog, engine.store
    models = [catalog.model(i) for i in ids] if ids else catalog.models()
    bad = 0
    for model in models:
        checks = [store.check_file(model, f) for f in model.files]
        statuses = {c.status for c in checks}
        if statuses == {"missing"} and not ids and not all_models:
            typer.echo(f"{model.id}: not in the cache")
            continue
        problems = [c for c in checks if not c.ok]
        recorded = [c for c in checks if c.status == "recorded"]
        if problems:
            bad += 1
            for c in problems:
                typer.echo(f"{model.id}: {c.path}: {c.status} {c.detail}".rstrip())
        else:
            note = f" (first-use sha256 recorded for {len(recorded)} file(s))" if recorded else ""
            typer.echo(f"{model.id}: ok{note}")
    if bad:
        raise EngineError(
            f"{bad} model(s) failed verification; pull them again with "
            "'totoshka models pull --force ID'"
        )
