"""The aiohttp application: Bot API routes, file downloads, and the control API.

URL layout (``{base}`` is the server's root URL):

* ``{base}/bot<token>/<method>`` – Bot API; GET or POST, query string, JSON,
  form-encoded or multipart, answered ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code", "description"[, "parameters"]}``;
* ``{base}/file/bot<token>/<file_path>`` – downloads, for paths from ``getFile``;
* ``{base}/_emulator/...`` – the control API (:mod:`totoshka.emulator.control`).

Every Bot API call goes through :func:`_dispatch`, which consults the fault
injector and writes the call log, so faults and logging behave the same for all
methods.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from totoshka.emulator.call import Call, Described
from totoshka.emulator.control import add_control_routes, cors_middleware
from totoshka.emulator.errors import BotApiError, not_found, unauthorized
from totoshka.emulator.faults import CallRecord
from totoshka.emulator.limits import Limits
from totoshka.emulator.methods import METHODS
from totoshka.emulator.params import Params, read_params
from totoshka.emulator.state import World
from totoshka.emulator.webhook import WebhookDelivery

WORLD_KEY = web.AppKey("world", World)
WEBHOOKS_KEY = web.AppKey("webhooks", WebhookDelivery)

_TOKEN = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{1,200}$")


def bot_id_from_token(token: str) -> int:
    """The bot's user id is the number before ``:``; any other shape is 401 Unauthorized."""
    match = _TOKEN.match(token)
    if match is None:
        raise unauthorized()
    return int(match.group(1))


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def execute(
    world: World,
    webhooks: WebhookDelivery,
    token: str,
    raw_method: str,
    read: Callable[[], Awaitable[Params]],
    *,
    inject_faults: bool = True,
) -> tuple[int, dict[str, Any]]:
    """Run one Bot API call (faults, handler, call log); returns (HTTP status, JSON body)."""
    seq, started, clock = world.calls.start()
    method = raw_method
    status, ok, description, fault_id, executed = 200, True, None, None, False
    chat_id: Any = None
    try:
        bot = world.bot(bot_id_from_token(token))
        entry = METHODS.get(raw_method.lower())
        if entry is None:
            raise not_found()
        method, handler = entry
        params = await read()
        chat_id = params.values.get("chat_id")
        fault = world.faults.take(method) if inject_faults else None
        if fault is not None:
            fault_id = fault.rule_id
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.error is not None and not fault.executed:
                raise fault.error
        result = await handler(Call(world, bot, params, webhooks))
        executed = True
        if fault is not None and fault.error is not None:
            raise fault.error
        body: dict[str, Any] = {"ok": True}
        if isinstance(result, Described):
            body.update(result=result.result, description=result.description)
        else:
            body["result"] = result
    except BotApiError as error:
        status, ok, description = error.error_code, False, error.description
        body = error.to_json()
    world.calls.add(
        CallRecord(
            seq=seq,
            method=method,
            started_at=started,
            duration=time.monotonic() - clock,
            status=status,
            ok=ok,
            description=description,
            fault_id=fault_id,
            executed=executed,
            chat_id=chat_id if isinstance(chat_id, int | str) else None,
        )
    )
    return status, body


async def _dispatch(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    status, body = await execute(
        world,
        request.app[WEBHOOKS_KEY],
        request.match_info["token"],
        request.match_info["method"],
        lambda: read_params(request, world.limits.upload_bytes),
    )
    return _json(body, status)


async def _download(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    try:
        bot_id_from_token(request.match_info["token"])
    except BotApiError as error:
        return _json(error.to_json(), error.error_code)
    stored = world.files.by_path(request.match_info["path"])
    if stored is None:
        return _json(not_found().to_json(), 404)
    return web.Response(
        body=stored.data, content_type=stored.mime_type or "application/octet-stream"
    )


async def _no_method(request: web.Request) -> web.Response:
    return _json(not_found().to_json(), 404)


async def _on_cleanup(app: web.Application) -> None:
    await app[WEBHOOKS_KEY].close()


def create_app(
    world: World | None = None,
    *,
    limits: Limits | None = None,
    webhook_retry_delay: float = 0.5,
) -> web.Application:
    """Build the emulator's aiohttp application around ``world`` (a fresh one by default)."""
    world = world or World(limits)
    # Uploads are read part by part and checked against Telegram's limits by the
    # handlers; aiohttp's own 1 MB cap would answer with a non-JSON 413.
    app = web.Application(
        client_max_size=world.limits.upload_bytes + (2 << 20), middlewares=[cors_middleware]
    )
    app[WORLD_KEY] = world
    webhooks = WebhookDelivery(retry_delay=webhook_retry_delay)

    async def reply_method(token: str, method: str, params: Params) -> None:
        """A method the bot answered a webhook request with; Telegram runs it silently."""

        async def read() -> Params:
            return params

        await execute(world, webhooks, token, method, read, inject_faults=False)

    webhooks.reply_method = reply_method
    app[WEBHOOKS_KEY] = webhooks
    app.router.add_route("*", "/bot{token}/{method}", _dispatch)
    app.router.add_route("*", "/bot{token}", _no_method)
    app.router.add_route("*", "/bot{token}/", _no_method)
    app.router.add_get("/file/bot{token}/{path:.+}", _download)
    add_control_routes(app, world)
    app.on_cleanup.append(_on_cleanup)
    return app
