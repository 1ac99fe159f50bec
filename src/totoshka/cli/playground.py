"""`totoshka playground`: the bot in a browser, no Telegram account needed.

Zero configuration on purpose – it is the README's first command. Everything
interesting lives in :mod:`totoshka.playground.runner`; this module only turns
options into a :class:`PlaygroundOptions`, fetches the models with a progress bar,
prints the URL and maps the outcome to an exit status.
"""

from __future__ import annotations

import asyncio
import threading
import webbrowser
from typing import Annotated

import typer

from totoshka.cli.common import download_progress, engine_settings, err_console
from totoshka.engine.errors import EngineError


def playground(
    host: Annotated[
        str, typer.Option(help="Address for the web page (0.0.0.0 to show it on your network).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port for the web page (0 = any free port).")
    ] = 8080,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in your web browser.")
    ] = True,
    pull: Annotated[
        bool, typer.Option("--pull/--no-pull", help="Fetch missing models before starting.")
    ] = True,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the bot's INFO log lines.")
    ] = False,
) -> None:
    """Try the bot in a browser: local Bot API emulator + the bot + a Telegram-like chat page."""
    from totoshka.playground.runner import (
        Playground,
        PlaygroundError,
        PlaygroundOptions,
        prepare_models,
        run_until_signalled,
    )

    if pull:
        with download_progress(err_console.is_terminal) as progress:
            prepare_models(engine_settings(), progress, echo=_say)

    options = PlaygroundOptions(host=host, port=port, log_level="INFO" if verbose else "WARNING")
    playground_ = Playground(options, echo=_say)

    def on_ready() -> None:
        url = playground_.url
        # stdout, alone on its line: scripts (and the browser test) read the URL from here.
        typer.echo(f"Totoshka playground: {url}")
        _say("Each browser tab is a different Telegram user. Press Ctrl+C to stop.")
        if open_browser:
            # webbrowser may block on some desktops; the page must not wait for it.
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    _say("starting the emulator and the bot…")
    try:
        status = asyncio.run(run_until_signalled(playground_, on_ready))
    except PlaygroundError as error:
        first, _, details = str(error).partition("\n")
        if details:
            _say(details)
        raise EngineError(first) from None
    if status:
        raise typer.Exit(status)


def _say(line: str) -> None:
    err_console.print(line, markup=False, highlight=False)
