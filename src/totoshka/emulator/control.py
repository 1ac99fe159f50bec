"""The control API: HTTP JSON under ``/_emulator/`` for tests and the playground page.

No token: it plays the *users* and inspects the world. Every answer has the Bot
API's envelope – ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
"description"}`` – and CORS is open so a page served from elsewhere can use it.
A request may name the bot with ``bot_id`` (query string or JSON body); without
it the server's default bot is meant (the only bot seen so far, or
``--bot-id``). Binary payloads travel either as multipart parts or as base64 in
JSON (``data``; a ``data:...;base64,`` URL from a browser is accepted too).

Routes (``{uid}`` is a user id = their private chat id):

* ``GET /_emulator`` – overview: bots, users, limits.
* ``POST /_emulator/reset`` – forget users, chats, files, faults and the call log.
* ``POST /_emulator/users`` ``{first_name?, last_name?, username?, language_code?,
  is_premium?, id?}`` → User.  ``GET /_emulator/users`` → [User];
  ``GET /_emulator/users/{uid}`` → User.
* ``POST /_emulator/users/{uid}/text`` ``{text, reply_to_message_id?}`` →
  ``{message, message_id}`` (``message`` is the Bot API Message the bot receives).
* ``POST /_emulator/users/{uid}/photo`` ``{data, caption?}`` or multipart part
  ``photo`` → same.
* ``POST /_emulator/users/{uid}/document`` ``{data, file_name?, mime_type?,
  caption?}`` or multipart part ``document`` → same.
* ``POST /_emulator/users/{uid}/{kind}`` for animation | video | video_note | sticker
  | voice | audio: multipart part ``{kind}`` or base64 ``data``, ``file_name?``,
  ``caption?`` (not for stickers and video notes), ``width``, ``height``,
  ``duration``, ``length`` (video notes), ``emoji``, ``is_animated``/``is_video``
  (stickers) → same. The file is looked into as Telegram does: real sizes and
  length, a thumbnail, a GIF animation re-encoded as a silent MP4 (with PyAV), a
  sticker's format from its bytes (WebP, .tgs, WebM); given numbers win. Without a
  file a small stub is sent and only the given numbers describe it.
* ``POST /_emulator/users/{uid}/album`` ``{items: [{type, data, caption?,
  file_name?}]}`` or multipart, one file part per item (each its own part name) →
  ``{messages, media_group_id}``.
* ``POST /_emulator/users/{uid}/press`` ``{message_id, data? | text?}`` →
  ``{callback_query_id, data, message_id}``.
* ``POST /_emulator/users/{uid}/block`` / ``unblock`` – the bot gets
  ``my_chat_member``; its sends to a blocker fail 403.
* ``GET /_emulator/users/{uid}/messages?include_deleted=1`` → ``{messages: [MessageView],
  reply_keyboard}`` (the ReplyKeyboardMarkup the bot last showed, or null).
* ``GET /_emulator/users/{uid}/events?after=SEQ&timeout=S`` (long poll) →
  ``{events: [ChatEvent], last_seq}``.
* ``GET /_emulator/users/{uid}/wait?after_message_id=N&timeout=S`` → MessageView of
  the bot's first message after N; 408 on timeout.
* ``GET /_emulator/callback_queries/{id}`` → ``{id, data, message_id, answer|null}``.
* ``GET /_emulator/files/{file_id}`` → the raw bytes of any stored file.
* ``GET /_emulator/bots/{bot_id}`` → ``{me, webhook, allowed_updates,
  pending_updates, commands}``.
* ``POST /_emulator/faults`` ``{method, status?, retry_after?, count?, probability?,
  seed?, delay?, description?, executed?}`` → FaultRule with ``id``;
  ``GET /_emulator/faults``; ``DELETE /_emulator/faults[/{id}]``.
* ``GET /_emulator/calls?method=&since=SEQ`` → [CallRecord];
  ``DELETE /_emulator/calls``.

MessageView: ``{message_id, from_bot, deleted, edit_count, history: [Message],
message: Message}`` where Message is the Bot API object in its current state.
ChatEvent: ``{seq, type, at, message_id, data, message: MessageView|null}`` with
type one of message, edit, delete, chat_action, callback_answer, blocked, unblocked;
its ``message`` is the message as it was right after that event (``history`` left
empty), so a page can replay the chat and a test sees every version in order.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from totoshka.emulator.actions import UserActions, control_error
from totoshka.emulator.errors import BotApiError
from totoshka.emulator.messaging import media_attributes
from totoshka.emulator.params import Params, Upload, read_params
from totoshka.emulator.state import BotAccount, ChatEvent, Message, World

log = logging.getLogger(__name__)

PREFIX = "/_emulator"
_MEDIA_KINDS = ("document", "sticker", "voice", "video", "video_note", "animation", "audio")
_FAULT_FIELDS: dict[str, Any] = {
    "status": int,
    "retry_after": int,
    "count": int,
    "probability": float,
    "seed": int,
    "delay": float,
    "description": str,
    "executed": bool,
}

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def cors_middleware(request: web.Request, handler: RouteHandler) -> web.StreamResponse:
    """Let a browser page on another origin drive the control API."""
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response()
    else:
        response = await handler(request)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _decode(data: Any) -> bytes | None:
    if data is None:
        return None
    if not isinstance(data, str):
        raise control_error("data must be base64 text")
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        return base64.b64decode(
            data + "=" * (-len(data) % 4),
            altchars=b"-_" if "-" in data or "_" in data else None,
            validate=False,
        )
    except (binascii.Error, ValueError):
        raise control_error("data is not valid base64") from None


def _upload(params: Params, name: str) -> Upload | None:
    """The multipart part ``name``, or else the base64 ``data``."""
    if (part := params.uploads.get(name)) is not None:
        return part
    data = _decode(params.values.get("data"))
    return None if data is None else Upload(data, None, None)


class ControlApi:
    """Route handlers bound to one world."""

    def __init__(self, world: World) -> None:
        self.world = world

    # -- helpers --------------------------------------------------------------
    async def _params(self, request: web.Request) -> Params:
        return await read_params(request, self.world.limits.upload_bytes, control_error)

    def _bot(self, params: Params) -> BotAccount:
        bot_id = params.get("bot_id", int)
        if bot_id is not None:
            return self.world.bot(bot_id)
        try:
            return self.world.default_bot()
        except LookupError as error:
            raise control_error(str(error)) from None

    async def _actions(self, request: web.Request) -> tuple[UserActions, Params]:
        """The user of the route's ``{uid}`` acting towards the request's bot."""
        params = await self._params(request)
        try:
            user = self.world.users[int(request.match_info["uid"])]
        except (KeyError, ValueError):
            raise control_error("user not found", 404) from None
        return UserActions(self.world, self._bot(params), user), params

    @staticmethod
    def _sent(message: Message) -> dict[str, Any]:
        return {"message": message.to_json(), "message_id": message.message_id}

    # -- overview ---------------------------------------------------------------
    async def overview(self, request: web.Request) -> web.Response:
        world = self.world
        return _ok(
            {
                "bots": [bot.me_json() for bot in world.bots.values()],
                "users": [user.to_json() for user in world.users.values()],
                "limits": {name: getattr(world.limits, name) for name in world.limits.__slots__},
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.world.reset()
        return _ok(True)

    # -- users ------------------------------------------------------------------
    async def create_user(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        fields = {
            key: params.string(key)
            for key in ("last_name", "username", "language_code")
            if params.has(key)
        }
        try:
            user = self.world.add_user(
                params.string("first_name") or "Test",
                user_id=params.get("id", int),
                is_premium=params.flag("is_premium"),
                **fields,
            )
        except ValueError as error:
            raise control_error(str(error), 409) from None
        return _ok(user.to_json())

    async def list_users(self, request: web.Request) -> web.Response:
        return _ok([user.to_json() for user in self.world.users.values()])

    async def get_user(self, request: web.Request) -> web.Response:
        try:
            return _ok(self.world.users[int(request.match_info["uid"])].to_json())
        except (KeyError, ValueError):
            raise control_error("user not found", 404) from None

    async def send_text(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        message = actions.send_text(
            params.string("text") or "",
            reply_to_message_id=params.get("reply_to_message_id", int),
        )
        return _ok(self._sent(message))

    async def send_photo(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        upload = _upload(params, "photo")
        if upload is None:
            raise control_error("no photo: send a multipart part 'photo' or base64 'data'")
        message = await actions.send_photo(
            upload.data,
            caption=params.string("caption"),
            reply_to_message_id=params.get("reply_to_message_id", int),
        )
        return _ok(self._sent(message))

    async def send_media(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in _MEDIA_KINDS:
            raise control_error(f"unknown media kind {kind!r}", 404)
        actions, params = await self._actions(request)
        upload = _upload(params, kind)
        if upload is None and kind in ("document", "audio"):
            raise control_error(f"no {kind}: send a multipart part '{kind}' or base64 'data'")
        message = await actions.send_media(
            kind,
            upload and upload.data,
            file_name=params.string("file_name") or (upload and upload.filename),
            mime_type=params.string("mime_type") or (upload and upload.content_type),
            caption=params.string("caption"),
            is_animated=params.flag("is_animated"),
            is_video=params.flag("is_video"),
            **media_attributes(params, "emoji", "width", "height", "duration", "length"),
        )
        return _ok(self._sent(message))

    async def send_album(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        items: list[dict[str, Any]] = []
        if params.uploads:
            for upload in params.uploads.values():
                mime = upload.content_type
                kind = "photo" if (mime or "image/").startswith("image/") else "document"
                items.append(
                    {
                        "type": kind,
                        "data": upload.data,
                        "file_name": upload.filename,
                        "mime_type": mime,
                    }
                )
        else:
            for item in params.values.get("items") or []:
                if not isinstance(item, dict):
                    raise control_error("items must be objects")
                items.append({**item, "data": _decode(item.get("data"))})
        messages = await actions.send_album(items)
        return _ok(
            {
                "messages": [m.to_json() for m in messages],
                "media_group_id": messages[0].media_group_id,
            }
        )

    async def press(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        message_id = params.get("message_id", int)
        if message_id is None:
            raise control_error("message_id is required")
        query = actions.press(message_id, data=params.string("data"), text=params.string("text"))
        return _ok(
            {"callback_query_id": query.id, "data": query.data, "message_id": query.message_id}
        )

    async def block(self, request: web.Request) -> web.Response:
        actions, _ = await self._actions(request)
        actions.set_blocked(request.path.endswith("/block"))
        return _ok(True)

    async def messages(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        chat = actions.chat
        include_deleted = params.flag("include_deleted")
        views = [m.view() for m in chat.messages.values() if include_deleted or not m.deleted]
        return _ok({"messages": views, "reply_keyboard": chat.reply_keyboard})

    async def events(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        chat = actions.chat
        after = params.get("after", int, 0) or 0
        timeout = min(params.get("timeout", float, 0.0) or 0.0, 120.0)

        def fresh() -> list[ChatEvent]:
            return [event for event in chat.events if event.seq > after]

        events = await chat.notifier.wait_for(fresh, timeout)
        last = chat.events[-1].seq if chat.events else 0
        return _ok({"events": [asdict(e) for e in events], "last_seq": last})

    async def wait(self, request: web.Request) -> web.Response:
        actions, params = await self._actions(request)
        chat = actions.chat
        after = params.get("after_message_id", int, 0) or 0
        timeout = min(params.get("timeout", float, 10.0) or 0.0, 120.0)

        def first_new() -> Message | None:
            return next(
                (m for m in chat.messages.values() if m.from_bot and m.message_id > after), None
            )

        message = await chat.notifier.wait_for(first_new, timeout)
        if message is None:
            raise control_error("timed out waiting for a bot message", 408)
        return _ok(message.view())

    async def callback_query(self, request: web.Request) -> web.Response:
        query_id = request.match_info["query_id"]
        for bot in self.world.bots.values():
            if (query := bot.callback_queries.get(query_id)) is not None:
                return _ok(
                    {
                        "id": query.id,
                        "data": query.data,
                        "message_id": query.message_id,
                        "answer": query.answer,
                    }
                )
        raise control_error("callback query not found", 404)

    async def file(self, request: web.Request) -> web.StreamResponse:
        stored = self.world.files.get(request.match_info["file_id"])
        if stored is None:
            raise control_error("file not found", 404)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    async def bot_info(self, request: web.Request) -> web.Response:
        try:
            bot = self.world.bot(int(request.match_info["bot_id"]))  # known even before it calls
        except ValueError:
            raise control_error("bot_id must be an integer", 404) from None
        hook = bot.webhook
        return _ok(
            {
                "me": bot.me_json(),
                "webhook": None
                if hook is None
                else {
                    "url": hook.url,
                    "secret_token": hook.secret_token,
                    "last_error_message": hook.last_error_message,
                },
                "allowed_updates": bot.allowed_updates,
                "pending_updates": len(bot.updates),
                "commands": [
                    {"scope": scope, "language_code": language, "commands": commands}
                    for (scope, language), commands in bot.commands.items()
                ],
            }
        )

    # -- faults and the call log ------------------------------------------------
    async def add_fault(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        method = params.string("method")
        if not method:
            raise control_error("method is required ('*' for every method)")
        options = {
            k: params.get(k, kind) for k, kind in _FAULT_FIELDS.items() if k in params.values
        }
        try:
            rule = self.world.faults.add(method, **options)
        except (TypeError, ValueError) as error:
            raise control_error(str(error)) from None
        return _ok(rule.to_json())

    async def list_faults(self, request: web.Request) -> web.Response:
        return _ok([rule.to_json() for rule in self.world.faults.rules()])

    async def delete_faults(self, request: web.Request) -> web.Response:
        rule_id = request.match_info.get("fault_id")
        if rule_id is None:
            self.world.faults.clear()
            return _ok(True)
        return _ok(self.world.faults.remove(int(rule_id)))

    async def calls(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        records = self.world.calls.records(
            params.string("method"), params.get("since", int, 0) or 0
        )
        return _ok([record.to_json() for record in records])

    async def clear_calls(self, request: web.Request) -> web.Response:
        self.world.calls.clear()
        return _ok(True)


def _guarded(handler: RouteHandler) -> RouteHandler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BotApiError as error:
            return web.json_response(error.to_json(), status=error.error_code)
        except web.HTTPException:
            raise
        except Exception as error:  # a bug here must still answer JSON to a page or test
            log.exception("control API request %s failed", request.path)
            failure = BotApiError(500, f"Internal Server Error: {type(error).__name__}: {error}")
            return web.json_response(failure.to_json(), status=500)

    return wrapper


def add_control_routes(app: web.Application, world: World) -> None:
    """Mount the control API for ``world`` on ``app``."""
    api = ControlApi(world)

    def bound(name: str) -> RouteHandler:
        return _guarded(getattr(api, name))

    users = f"{PREFIX}/users/{{uid}}"
    routes = [
        ("GET", PREFIX, "overview"),
        ("GET", PREFIX + "/", "overview"),
        ("POST", f"{PREFIX}/reset", "reset"),
        ("POST", f"{PREFIX}/users", "create_user"),
        ("GET", f"{PREFIX}/users", "list_users"),
        ("GET", users, "get_user"),
        ("POST", f"{users}/text", "send_text"),
        ("POST", f"{users}/photo", "send_photo"),
        ("POST", f"{users}/album", "send_album"),
        ("POST", f"{users}/press", "press"),
        ("POST", f"{users}/block", "block"),
        ("POST", f"{users}/unblock", "block"),
        ("POST", f"{users}/{{kind}}", "send_media"),
        ("GET", f"{users}/messages", "messages"),
        ("GET", f"{users}/events", "events"),
        ("GET", f"{users}/wait", "wait"),
        ("GET", f"{PREFIX}/callback_queries/{{query_id}}", "callback_query"),
        ("GET", f"{PREFIX}/files/{{file_id}}", "file"),
        ("GET", f"{PREFIX}/bots/{{bot_id}}", "bot_info"),
        ("POST", f"{PREFIX}/faults", "add_fault"),
        ("GET", f"{PREFIX}/faults", "list_faults"),
        ("DELETE", f"{PREFIX}/faults", "delete_faults"),
        ("DELETE", f"{PREFIX}/faults/{{fault_id}}", "delete_faults"),
        ("GET", f"{PREFIX}/calls", "calls"),
        ("DELETE", f"{PREFIX}/calls", "clear_calls"),
    ]
    for method, path, name in routes:
        app.router.add_route(method, path, bound(name))
    app.router.add_route("OPTIONS", PREFIX + "/{tail:.*}", bound("overview"))  # CORS preflight
