"""The `totoshka` command line (Typer).

Each command lives in its own module under totoshka/cli/ and is listed in `COMMANDS`
below with one line: its name, where it lives, and the help `totoshka --help` shows.
The root group imports a command's module only when that command runs (or its own
``--help`` is asked for), so `totoshka --help` and the commands that paint nothing
start without numpy, pydantic or the bot: see `group.RootGroup`. Errors a user can
cause print one line and exit 1 (2 for usage), so a new command just raises
`EngineError`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from totoshka import __version__
from totoshka.cli.group import LazyCommand, RootGroup

COMMANDS = (
    # --- engine: stylize, styles, models, emulator -----------------------------------
    LazyCommand(
        "stylize",
        "totoshka.cli.stylize:stylize",
        "Repaint photos or clips in a style. Output: <stem>.<style>.jpg beside each photo,\n"
        "<stem>.<style>.mp4 beside each clip (a GIF stays a GIF unless --format mp4).",
    ),
    LazyCommand(
        "emulator",
        "totoshka.cli.emulator:emulator",
        "Run the local Telegram Bot API emulator (with its control API and web chat).",
    ),
    LazyCommand(
        "playground",
        "totoshka.cli.playground:playground",
        "Try the bot in a browser: local Bot API emulator + the bot + a Telegram-like chat page.",
    ),
    # --- the bot: long polling, webhook, Celery worker -------------------------------
    LazyCommand(
        "run",
        "totoshka.cli.run:run",
        "Run the bot with long polling (embedded job queue and workers by default).",
    ),
    LazyCommand(
        "webhook",
        "totoshka.cli.run:webhook",
        "Run the bot as a webhook server (secret token from $TOTOSHKA_WEBHOOK_SECRET).",
    ),
    LazyCommand(
        "worker",
        "totoshka.cli.run:worker",
        "Run a Celery worker that paints and delivers jobs queued by a bot in celery mode.",
    ),
    # --- other parts add their commands here, one entry each -------------------------
    LazyCommand(
        "bench",
        "totoshka.cli.bench:bench",
        "Benchmark every inference path against eager fp32 (one fresh process per row).",
    ),
    LazyCommand(
        "doctor",
        "totoshka.cli.doctor:doctor",
        "What serves on this machine, measured; models, services, settings.",
    ),
    # --- sub-apps (Typer sub-groups) -------------------------------------------------
    LazyCommand(
        "jobs", "totoshka.cli.jobs:app", "The job queue: depth, running and stuck jobs, workers."
    ),
    LazyCommand("styles", "totoshka.cli.styles:app", "List the styles; add or remove your own."),
    LazyCommand("models", "totoshka.cli.models:app", "Model weights: list, pull, verify."),
)


class TotoshkaGroup(RootGroup):
    lazy_commands = COMMANDS


app = typer.Typer(
    name="totoshka",
    cls=TotoshkaGroup,
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


if __name__ == "__main__":
    app()
