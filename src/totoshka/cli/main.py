"""The `totoshka` command line (Typer).

Each command lives in its own module under totoshka/cli/ and is registered
below with one line. Errors a user can cause print one line and exit 1 (2 for
usage): see `common.CliGroup`, so a new command just raises `EngineError`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from totoshka import __version__
from totoshka.cli import (
    bench,
    doctor,
    emulator,
    models,
    playground,
    run,
    styles,
    stylize,
)
from totoshka.cli.common import CliGroup

app = typer.Typer(
    name="totoshka",
    cls=CliGroup,
    help="Totoshka: repaint photos in the style of a painting.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"totoshka {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Totoshka: repaint photos in the style of a painting."""


# --- engine: stylize, styles, models, emulator ---------------------------------------
app.command("stylize")(stylize.stylize)
app.add_typer(styles.app, name="styles")
app.add_typer(models.app, name="models")
app.command("emulator")(emulator.emulator)
app.command("playground")(playground.playground)

# --- the bot: long polling, webhook, Celery worker -----------------------------------
app.command("run")(run.run)
app.command("webhook")(run.webhook)
app.command("worker")(run.worker)

# --- other parts register their commands here, one line each, e.g. -----------------
# app.command("bench")(bench.main)         app.add_typer(run.app, name="run")
app.command("bench")(bench.bench)
app.command("doctor")(doctor.doctor)


if __name__ == "__main__":
    app()
