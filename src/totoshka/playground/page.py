"""The web chat page: static files plus the few routes the emulator's control API lacks.

The page is served by its own aiohttp application (on ``--host``/``--port``), not
by the emulator's: the Bot API stays on 127.0.0.1 even when the page is shown to
other machines. The emulator's control API is mounted on the page's application
too, over the *same* :class:`~totoshka.emulator.state.World`, so the page's
JavaScript talks to one origin and needs neither CORS nor a proxy.

Extra routes, under ``/_playground/`` (they only make sense for a page):

* ``GET /_playground/config`` – the bot's id, name and username for the header;
* ``PATCH /_playground/users/{uid}`` – change a user's ``language_code`` (a real
  user switches their Telegram app's language; the control API has no verb for it);
* ``GET /_playground/users/{uid}/keyboard`` – the reply keyboard the bot last
  showed (the emulator keeps it on the chat, not in a chat event).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

from totoshka.emulator.control import add_control_routes
from totoshka.emulator.state import World

WEB_FILES = {
    "/": ("index.html", "text/html"),
    "/index.html": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}
"""Everything the page loads: three files, no build step, no CDN."""

_LANGUAGES = ("en", "ru")


def _read_web_file(name: str) -> bytes:
    return resources.files("totoshka.playground").joinpath("web", name).read_bytes()


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(description: str, status: int) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )


class PageRoutes:
    """Route handlers bound to one emulator world and the bot the page chats with."""

    def __init__(self, world: World, bot_id: int) -> None:
        self.world = world
        self.bot_id = bot_id

    async def static(self, request: web.Request) -> web.Response:
        name, content_type = WEB_FILES[request.path]
        # Read on every request: the files are tiny and editing them needs no restart.
        return web.Response(
            body=_read_web_file(name),
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def config(self, request: web.Request) -> web.Response:
        me = self.world.bot(self.bot_id).me_json()
        return _ok(
            {
                "bot_id": self.bot_id,
                "bot_name": me.get("first_name"),
                "bot_username": me.get("username"),
                "control": "/_emulator",
                "languages": list(_LANGUAGES),
            }
        )

    async def update_user(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is None:
            return _error("user not found", 404)
        try:
            body = await request.json()
        except ValueError:
            return _error("the body must be a JSON object", 400)
        language = body.get("language_code") if isinstance(body, dict) else None
        if language not in _LANGUAGES:
            return _error(f"language_code must be one of {', '.join(_LANGUAGES)}", 400)
        user.language_code = language
        return _ok(user.to_json())

    async def keyboard(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is None:
            return _error("user not found", 404)
        chat = self.world.bot(self.bot_id).chats.get(user.id)
        return _ok(chat.reply_keyboard if chat is not None else None)

    def _user(self, request: web.Request) -> Any:
        try:
            return self.world.users.get(int(request.match_info["uid"]))
        except ValueError:
            return None


def create_page_app(world: World, bot_id: int) -> web.Application:
    """The page's application: static files, ``/_playground/*`` and the control API."""
    # Photos and files are uploaded through this app: allow what the emulator allows.
    app = web.Application(client_max_size=world.limits.upload_bytes + (2 << 20))
    routes = PageRoutes(world, bot_id)
    for path in WEB_FILES:
        app.router.add_get(path, routes.static)
    app.router.add_get("/_playground/config", routes.config)
    app.router.add_patch("/_playground/users/{uid}", routes.update_user)
    app.router.add_get("/_playground/users/{uid}/keyboard", routes.keyboard)
    add_control_routes(app, world)
    return app
