"""`totoshka styles`: list the styles, add and remove the operator's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from totoshka.cli import table
from totoshka.cli.common import UsageError, command_engine, engine_settings
from totoshka.cli.own_style import pull_missing
from totoshka.engine.catalog import OPERATOR
from totoshka.engine.errors import EngineError

app = typer.Typer(help="List the styles; add or remove your own.", no_args_is_help=True)


@app.command("list")
def list_styles(
    plain: Annotated[bool, typer.Option("--plain", help="One id per line, for scripts.")] = False,
) -> None:
    """All styles: id, titles, family, and whether the weights are in the cache."""
    engine = command_engine()
    catalog, store = engine.catalog, engine.store
    if plain:
        for style in catalog.styles():
            typer.echo(style.id)
        return
    rows = []
    for style in catalog.styles():
        model = catalog.model(style.model)
        family = model.family + (" (yours)" if style.origin == OPERATOR else "")
        cached = "yes" if store.is_present(model) else "no"
        rows.append((style.id, style.title["en"], style.title["ru"], family, model.id, cached))
    table.echo("Styles", ("id", "title (en)", "title (ru)", "family", "model", "cached"), rows)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Style id: short, lowercase (a-z 0-9 _ -).")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="A pytorch/examples .pth file, or an ml5 folder (manifest.json)."
        ),
    ] = None,
    painting: Annotated[
        Path | None,
        typer.Option(
            "--painting", "-p", help="A painting: its Magenta style vector becomes the style."
        ),
    ] = None,
    title_en: Annotated[str | None, typer.Option(help="English title.")] = None,
    title_ru: Annotated[str | None, typer.Option(help="Russian title.")] = None,
    preview: Annotated[Path | None, typer.Option(help="A preview picture.")] = None,
    credit: Annotated[str, typer.Option(help="Painter and model author.")] = "",
    license: Annotated[str, typer.Option("--license", help="License of the weights.")] = "",
    mirror: Annotated[
        str | None, typer.Option(help="Model mirror (folder or URL) for the Magenta model.")
    ] = None,
) -> None:
    """Add your own style: a model (--model; the files are copied, hashed and
    test-loaded first) or a painting (--painting)."""
    from totoshka.engine.operator_styles import add_style_from_path  # numpy, Pillow

    if (model is None) == (painting is None):
        raise UsageError("give either --model FILE or --painting FILE")
    if model is not None:
        style = add_style_from_path(
            name,
            model,
            title_en=title_en,
            title_ru=title_ru,
            preview=preview,
            credit=credit,
            license=license,
            data_dir=engine_settings().data_path(),
        )
        typer.echo(f"added style {style.id!r} ({style.title['en']})")
        return
    assert painting is not None
    if preview is not None:
        raise UsageError("with --painting the painting itself is the preview")
    if not painting.is_file():
        raise EngineError(f"{painting}: no such file")
    from totoshka.engine import own_style  # torch: the painting's vector is computed

    engine = command_engine(model_mirror=mirror)
    pull_missing(engine, own_style.MAGENTA_MODEL)
    style = own_style.add_painting_style(
        name,
        painting,
        catalog=engine.catalog,
        store=engine.store,
        title_en=title_en,
        title_ru=title_ru,
        credit=credit,
        license=license,
    )
    typer.echo(f"added style {style.id!r} ({style.title['en']}) from {painting.name}")


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Id of a style you added.")]) -> None:
    """Remove a style you added (and its files)."""
    from totoshka.engine.operator_styles import remove_operator_style  # numpy, Pillow

    remove_operator_style(name, data_dir=engine_settings().data_path())
    typer.echo(f"removed style {name!r}")
