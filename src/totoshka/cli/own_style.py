"""Own-style options of the CLI: `stylize --style-image` and `styles add --painting`.

- `totoshka stylize IN... --style-image PAINTING [--style-image PAINTING2 --mix 0.3]
  [--style-strength X] [--own-style-engine magenta|msgnet]`: any painting as the
  style; `--mix` is the second painting's share (0..1), `--style-strength` mixes
  in the photo's own style vector (Magenta's recipe). `cli/stylize.py` declares
  the options and hands them to `own_style_cli`.
- `totoshka styles add NAME --painting FILE [--title-en --title-ru]`: the
  painting's style vector is computed once and stored as an operator style of
  the `magenta` model; it then lists and stylizes like any built-in style.
  `cli/styles.py` declares the option and pulls the model with `pull_missing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from totoshka.cli import common
from totoshka.cli.common import UsageError, download_progress
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import Engine

STYLE_IMAGE_HELP = "A painting to use as the style (twice to mix two paintings)."
MIX_HELP = "With two --style or two --style-image: the second one's share, 0..1 [default: 0.5]."
STRENGTH_HELP = "Own style strength: 1 = the painting's style, lower mixes in the photo's own."
ENGINE_HELP = (
    "Own-style engine: magenta or msgnet (needs 'models pull msgnet') "
    "(default: $TOTOSHKA_OWN_STYLE_ENGINE, else magenta)."
)


def pull_missing(engine: Engine, model_id: str) -> None:
    """Download the model into the cache unless it is there already."""
    model = engine.catalog.model(model_id)
    if not engine.store.is_present(model):
        with download_progress(common.err_console.is_terminal) as progress:
            engine.store.ensure(model, progress=progress)


def own_style_cli(
    style: str | None,
    style_images: list[Path] | None,
    mix: float | None,
    style_strength: float | None,
    engine_name: str | None,
    engine: Engine,
) -> tuple[Any, str]:
    """`stylize` without a built-in --style: (OwnStyle, label for output names) from
    the CLI options; models pulled first.

    `engine_name` is --own-style-engine; without it, the operator's setting."""
    if style is not None:
        raise UsageError("use either --style or --style-image, not both")
    if not style_images:
        raise UsageError("give --style NAME or --style-image PAINTING")
    if style_strength is None:
        style_strength = 1.0
    from totoshka.engine import own_style  # imports torch: these options paint

    name = own_style.check_engine(engine_name or engine.settings.own_style_engine)
    own_style.check_strength(style_strength)
    if len(style_images) > 2:
        raise UsageError("give at most two --style-image paintings")
    if mix is not None and len(style_images) != 2:
        raise UsageError("--mix needs two --style-image paintings")
    if mix is not None and not 0.0 <= mix <= 1.0:
        raise UsageError("--mix must be between 0 and 1")
    share = 0.5 if mix is None else mix
    weights = [1.0] if len(style_images) == 1 else [1.0 - share, share]
    paintings = []
    for path in style_images:
        if not path.is_file():
            raise EngineError(f"{path}: no such file")
        try:
            paintings.append(own_style.load_painting(path))
        except EngineError as exc:
            raise EngineError(f"{path}: {exc.message}") from None
    pull_missing(engine, own_style.MAGENTA_MODEL if name == "magenta" else own_style.MSGNET_MODEL)
    picked = own_style.OwnStyle(
        paintings=tuple(zip(paintings, weights, strict=True)),
        style_strength=style_strength,
        engine=name,
    )
    return picked, "+".join(p.stem for p in style_images)
