"""Running the emulator: in the current event loop, in a background thread, or forever.

Tests that drive a bot in the same loop use ``async with EmulatorServer() as server``;
tests whose bot runs in another OS process (or synchronous code) use
``with EmulatorServer().in_thread() as server`` – the server then has its own loop
in a daemon thread and is reachable over real HTTP either way. Port 0 picks a
free port; :attr:`EmulatorServer.url` tells which. ``server.world`` is the live
state; from another thread prefer the control API (the world is not locked).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Self

from aiohttp import web

from totoshka.emulator.app import create_app
from totoshka.emulator.limits import Limits
from totoshka.emulator.state import World


class EmulatorServer:
    """One emulator instance with its own world; start it in a loop or in a thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: Limits | None = None,
        bot_name: str = "Totoshka Test Bot",
        default_bot_id: int | None = None,
        webhook_retry_delay: float = 0.5,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.host = host
        self.shutdown_timeout = shutdown_timeout
        self.port = port
        self.world = World(limits, bot_name=bot_name, default_bot_id=default_bot_id)
        self._webhook_retry_delay = webhook_retry_delay
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:8081``; give it to ``TelegramAPIServer.from_base``."""
        return f"http://{self.host}:{self.port}"

    # -- in the running loop ----------------------------------------------------
    async def start(self) -> None:
        app = create_app(self.world, webhook_retry_delay=self._webhook_retry_delay)
        # A short shutdown: long polls still waiting at stop time are not worth waiting for.
        # (Handlers are not cancelled when a client disconnects: like Telegram, a send
        # whose caller timed out still completes.)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- in a background thread ---------------------------------------------------
    def start_in_thread(self, timeout: float = 10.0) -> None:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="totoshka-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the emulator did not start in time")
        if failure:
            raise failure[0]

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._thread_loop = None

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Self]:
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()


async def serve(
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    limits: Limits | None = None,
    default_bot_id: int | None = None,
    bot_name: str = "Totoshka Test Bot",
    on_ready: Callable[[EmulatorServer], None] | None = None,
) -> None:
    """Serve until cancelled (the ``totoshka emulator`` command and ``python -m`` use this).

    ``on_ready`` is called once listening, e.g. to print :attr:`EmulatorServer.url`
    (which tells the real port when ``port=0``).
    """
    server = EmulatorServer(
        host, port, limits=limits, default_bot_id=default_bot_id, bot_name=bot_name
    )
    await server.start()
    if on_ready is not None:
        on_ready(server)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def run(host: str = "127.0.0.1", port: int = 8081, **options: object) -> None:
    """Blocking form of :func:`serve` for synchronous callers (a CLI command); Ctrl-C stops."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port, **options))  # type: ignore[arg-type]
