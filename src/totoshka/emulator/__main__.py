"""``python -m totoshka.emulator --port 8081``: a standalone local Bot API server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from totoshka.emulator.server import EmulatorServer, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m totoshka.emulator", description="Local Telegram Bot API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--bot-id", type=int, default=None, help="bot meant by control requests that name none"
    )
    parser.add_argument("--bot-name", default="Totoshka Test Bot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def announce(server: EmulatorServer) -> None:
        print(f"Bot API emulator on {server.url} (control API at /_emulator)", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.host,
                args.port,
                default_bot_id=args.bot_id,
                bot_name=args.bot_name,
                on_ready=announce,
            )
        )


if __name__ == "__main__":
    main()
