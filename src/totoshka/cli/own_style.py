"""Own-style options of the CLI: `stylize --style-image` and `styles add --painting`.

- `totoshka stylize IN... --style-image PAINTING [--style-image PAINTING2 --mix 0.3]
  [--style-strength X] [--own-style-engine magenta|msgnet]`: any painting as the
  style; `--mix` is the second painting's share (0..1), `--style-strength` mixes
  in the photo's own style vector (Magenta's recipe). `cli/stylize.py` declares
  the options and hands them to `own_style_for`.
- `totoshka styles add NAME --painting FILE [--title-en --title-ru]`: the
  painting's style vector is computed once and stored as an operator style of
  the `magenta` model; it then lists and stylizes like any built-in style.
  `register(styles_app)` puts `--painting` on the colleague's `styles add`
  (which keeps `--model` for .pth files and ml5 folders).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from totoshka.cli import styles
from totoshka.cli.common import UsageError, command_engine, download_progress, err_console
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import Engine

STYLE_IMAGE_HELP = "A painting to use as the style (twice to mix two paintings)."
MIX_HELP = "With two --style-image: the second painting's share, 0..1."
STRENGTH_HELP = "Own style strength: 1 = the painting's style, lower mixes in the photo's own."
ENGINE_HELP = (
    "Own-style engine: magenta or msgnet (needs 'models pull msgnet') "
    "(default: $TOTOSHKA_OWN_STYLE_ENGINE, else magenta)."
)


def own_style_cli(
    style: str | None,
    style_images: list[Path] | None,
    mix: float | None,
    style_strength: float | None,
    engine_name: str | None,
    engine: Engine,
) -> tuple[Any, str]:
    """`stylize` without a built-in --style: check the option mix, then `own_style_for`."""
    if style is not None:
        raise UsageError("use either --style or --style-image, not both")
    if not style_images:
        raise UsageError("give --style NAME or --style-image PAINTING")
    strength = 1.0 if style_strength is None else style_strength
    return own_style_for(style_images, mix, strength, engine_name, engine)


def own_style_for(
    style_images: list[Path],
    mix: float | None,
    style_strength: float,
    engine_name: str | None,
    engine: Engine,
) -> tuple[Any, str]:
    """(OwnStyle, label for output names) from the CLI options; models pulled first.

    `engine_name` is --own-style-engine; without it, the operator's setting."""
    from totoshka.engine import own_style  # imports torch: these options paint

    name = own_style.check_engine(engine_name or engine.settings.own_style_engine)
    own_style.check_strength(style_strength)
    if len(style_images) > 2:
        raise UsageError("give at most two --style-image paintings")
    if mix is not None and len(style_images) != 2:
        raise UsageError("--mix needs two --style-image paintings")
    if mix is not None and not 0.0 <= mix <= 1.0:
        raise UsageError("--mix must be between 0 and 1")
    weights = [1.0] if len(style_images) == 1 else [1.0 - (mix if mix is not None else 0.5),
                                                     mix if mix is not None else 0.5]  # fmt: skip
    paintings = []
    for path in style_images:
        if not path.is_file():
            raise EngineError(f"{path}: no such file")
        try:
            paintings.append(own_style.load_painting(path))
        except EngineError as exc:
            raise EngineError(f"{path}: {exc.message}") from None
    needed = [own_style.MAGENTA_MODEL] if name == "magenta" else [own_style.MSGNET_MODEL]
    for model_id in needed:
        model = engine.catalog.model(model_id)
        if not engine.store.is_present(model):
            with download_progress(err_console.is_terminal) as progress:
                engine.store.ensure(model, progress=progress)
    style = own_style.OwnStyle(
        paintings=tuple(zip(paintings, weights, strict=True)),
        style_strength=style_strength,
        engine=name,
    )
    label = "+".join(p.stem for p in style_images)
    return style, label


def styles_add(
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
    """Add your own style: a model (--model) or a painting (--painting)."""
    if (model is None) == (painting is None):
        raise UsageError("give either --model FILE or --painting FILE")
    if model is not None:
        return styles.add(
            name=name,
            model=model,
            title_en=title_en,
            title_ru=title_ru,
            preview=preview,
            credit=credit,
            license=license,
        )
    assert painting is not None
    if preview is not None:
        raise UsageError("with --painting the painting itself is the preview")
    if not painting.is_file():
        raise EngineError(f"{painting}: no such file")
    from totoshka.engine import own_style  # torch: the painting's vector is computed

    engine = command_engine(model_mirror=mirror)
    magenta_model = engine.catalog.model(own_style.MAGENTA_MODEL)
    if not engine.store.is_present(magenta_model):
        with download_progress(err_console.is_terminal) as progress:
            engine.store.ensure(magenta_model, progress=progress)
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
    return None


def register(styles_app: typer.Typer) -> None:
    """Put `--painting` on `styles add`: replace its command with `styles_add`,
    which hands `--model` to the original unchanged."""
    for info in list(styles_app.registered_commands):
        if info.name == "add":
            original = inspect.signature(info.callback) if info.callback else None
            if original is not None and "painting" in original.parameters:
                return  # already has it
            styles_app.registered_commands.remove(info)
    styles_app.command("add")(styles_add)
