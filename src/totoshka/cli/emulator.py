"""`totoshka emulator`: the local Bot API server (src/totoshka/emulator/)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from totoshka.engine.errors import EngineError


def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8081,
) -> None:
    """Run the local Telegram Bot API emulator (with its control API and web chat)."""
    try:  # imported lazily: the emulator stands alone and pulls in aiohttp
        from totoshka.emulator.server import run
    except ImportError as exc:
        raise EngineError(f"the emulator is not available ({exc})") from None

    def ready(server: Any) -> None:
        typer.echo(f"emulator listening on {server.url} (Ctrl-C stops it)")

    try:
        run(host, port, on_ready=ready)
    except OSError as exc:
        raise EngineError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
