"""A local Telegram Bot API server, so the real aiogram bot runs without Telegram.

Telegram's servers are unreachable from development and CI machines, so the
project carries its own: an aiohttp server that speaks the Bot API's methods,
JSON shapes, limits and error texts, plus a *control API* that plays users.

Point aiogram at it unchanged::

    session = AiohttpSession(api=TelegramAPIServer.from_base(server.url))
    bot = Bot("123456:any-secret", session=session)

Pieces (one job per module):

* :mod:`.server` – :class:`EmulatorServer` (in the running loop or a thread),
  :func:`serve` (async) and :func:`run` (blocking);
  ``python -m totoshka.emulator --port 8081`` runs it standalone;
* :mod:`.app` – :func:`create_app`, the aiohttp routes and the call dispatcher;
* :mod:`.methods`, :mod:`.messaging` – Bot API method handlers;
* :mod:`.state` – the in-memory world (bots, users, chats, messages, files);
* :mod:`.control` – the HTTP JSON control API under ``/_emulator`` (route table
  in its docstring), for tests and the browser playground;
* :mod:`.client` – :class:`EmulatorClient` / :class:`SimUser`, an async driver
  of the control API for tests (the one module that uses aiogram, imported on
  first use so the server never loads it);
* :mod:`.faults` – injected 429/5xx/slow answers and the call log;
* :mod:`.limits`, :mod:`.errors`, :mod:`.media`, :mod:`.text`, :mod:`.markup`,
  :mod:`.attachments`, :mod:`.clips`, :mod:`.params`, :mod:`.webhook` – Telegram's rules.

Deliberate differences from Telegram: only private chats; any token whose bot
id is the number before ``:``; file ids are valid for every bot; webhook URLs may
be plain ``http://`` and are retried quickly; no flood limits unless injected;
files sent by URL cannot be fetched ("failed to get HTTP URL content"); without
PyAV a GIF animation stays a GIF and clips carry only the sizes they were sent with.
"""

from typing import Any

from totoshka.emulator.app import create_app
from totoshka.emulator.limits import Limits
from totoshka.emulator.server import EmulatorServer, run, serve
from totoshka.emulator.state import World

_CLIENT_NAMES = ("ChatMessage", "ControlError", "EmulatorClient", "SimUser")


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from totoshka.emulator import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ChatMessage",
    "ControlError",
    "EmulatorClient",
    "EmulatorServer",
    "Limits",
    "SimUser",
    "World",
    "create_app",
    "run",
    "serve",
]
