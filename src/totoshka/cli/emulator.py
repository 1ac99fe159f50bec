"""`totoshka emulator`: the local Bot API server (src/totoshka/emulator/)."""

from __future__ import annotations

from typing import Annotated

import typer

from totoshka.engine.errors import EngineError


def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8081,
) -> None:
    """Run the local Telegram Bot API emulator (with its control API and web chat)."""
    try:  # imported lazily: the emulator stands alone and may pull in aiohttp
        from totoshka.emulator import serve
    except ImportError as exc:
        raise EngineError(f"the emulator is not available ({exc})") from None
    serve(host, port)
