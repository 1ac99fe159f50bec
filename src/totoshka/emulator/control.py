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
* ``POST /_emulator/users/{uid}/{kind}`` for sticker | voice | video | audio;
  ``data`` optional (a stub is sent), ``emoji``, ``width``, ``height``, ``duration``.
* ``POST /_emulator/users/{uid}/album`` ``{items: [{type, data, caption?,
  file_name?}]}`` or multipart, one file part per item → ``{messages, media_group_id}``.
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
from typing import Any

from aiohttp import BodyPartReader, web

from totoshka.emulator.actions import UserActions, control_error
from totoshka.emulator.errors import BotApiError
from totoshka.emulator.state import BotAccount, ChatEvent, Message, World

log = logging.getLogger(__name__)

PREFIX = "/_emulator"
_MEDIA_KINDS = ("document", "sticker", "voice", "video", "audio")
_FAULT_FIELDS = (
    "status",
    "retry_after",
    "count",
    "probability",
    "seed",
    "delay",
    "description",
    "executed",
)

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


def message_view(message: Message) -> dict[str, Any]:
    return message.view()


def event_view(event: ChatEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.type,
        "at": event.at,
        "message_id": event.message_id,
        "data": event.data,
        "message": event.message,
    }


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


class _Body:
    """A control request's JSON or multipart body, plus its query string."""

    def __init__(
        self, values: dict[str, Any], files: list[tuple[str, bytes, str | None, str | None]]
    ) -> None:
        self.values = values
        self.files = files  # (part name, bytes, filename, content type), in order

    def file(self, name: str) -> tuple[bytes, str | None, str | None] | None:
        for part, data, filename, content_type in self.files:
            if part == name:
                return data, filename, content_type
        encoded = _decode(self.values.get("data"))
        if encoded is None:
            return None
        return encoded, self.values.get("file_name"), self.values.get("mime_type")

    def number(self, name: str, default: float) -> float:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise control_error(f"{name} must be a number") from None

    def int(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise control_error(f"{name} must be an integer") from None


async def _body(request: web.Request) -> _Body:
    values: dict[str, Any] = dict(request.query)
    files: list[tuple[str, bytes, str | None, str | None]] = []
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = bytes(await part.read())
            if part.filename is not None:
                files.append((part.name, data, part.filename, part.headers.get("Content-Type")))
            else:
                values[part.name] = data.decode("utf-8", errors="replace")
    elif request.content_type == "application/x-www-form-urlencoded":
        values.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    elif request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            raise control_error("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise control_error("the body must be a JSON object")
        values.update(body)
    return _Body(values, files)


class ControlApi:
    """Route handlers bound to one world."""

    def __init__(self, world: World) -> None:
        self.world = world

    # -- helpers --------------------------------------------------------------
    def _bot(self, body: _Body) -> BotAccount:
        bot_id = body.int("bot_id")
        if bot_id is not None:
            return self.world.bot(bot_id)
        try:
            return self.world.default_bot()
        except LookupError as error:
            raise control_error(str(error)) from None

    def _actions(self, request: web.Request, body: _Body) -> UserActions:
        try:
            user = self.world.users[int(request.match_info["uid"])]
        except (KeyError, ValueError):
            raise control_error("user not found", 404) from None
        return UserActions(self.world, self._bot(body), user)

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
        body = await _body(request)
        fields = {
            key: body.values[key]
            for key in ("last_name", "username", "language_code", "is_premium")
            if body.values.get(key) is not None
        }
        try:
            user = self.world.add_user(
                str(body.values.get("first_name") or "Test"), user_id=body.int("id"), **fields
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
        body = await _body(request)
        actions = self._actions(request, body)
        message = actions.send_text(
            str(body.values.get("text") or ""),
            reply_to_message_id=body.int("reply_to_message_id"),
        )
        return _ok(self._sent(message))

    async def send_photo(self, request: web.Request) -> web.Response:
        body = await _body(request)
        actions = self._actions(request, body)
        file = body.file("photo")
        if file is None:
            raise control_error("no photo: send a multipart part 'photo' or base64 'data'")
        message = await actions.send_photo(
            file[0],
            caption=body.values.get("caption"),
            reply_to_message_id=body.int("reply_to_message_id"),
        )
        return _ok(self._sent(message))

    async def send_media(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in _MEDIA_KINDS:
            raise control_error(f"unknown media kind {kind!r}", 404)
        body = await _body(request)
        actions = self._actions(request, body)
        file = body.file(kind)
        if file is None and kind in ("document", "audio"):
            raise control_error(f"no {kind}: send a multipart part '{kind}' or base64 'data'")
        data, file_name, mime = file if file is not None else (None, None, None)
        values = body.values
        message = await actions.send_media(
            kind,
            data,
            file_name=values.get("file_name") or file_name,
            mime_type=values.get("mime_type") or mime,
            caption=values.get("caption"),
            emoji=values.get("emoji"),
            width=values.get("width"),
            height=values.get("height"),
            duration=values.get("duration"),
        )
        return _ok(self._sent(message))

    async def send_album(self, request: web.Request) -> web.Response:
        body = await _body(request)
        actions = self._actions(request, body)
        items: list[dict[str, Any]] = []
        if body.files:
            for _, data, filename, content_type in body.files:
                kind = "photo" if (content_type or "image/").startswith("image/") else "document"
                items.append(
                    {"type": kind, "data": data, "file_name": filename, "mime_type": content_type}
                )
        else:
            for item in body.values.get("items") or []:
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
        body = await _body(request)
        actions = self._actions(request, body)
        message_id = body.int("message_id")
        if message_id is None:
            raise control_error("message_id is required")
        data, text = body.values.get("data"), body.values.get("text")
        query = actions.press(message_id, data=data, text=text)
        return _ok(
            {"callback_query_id": query.id, "data": query.data, "message_id": query.message_id}
        )

    async def block(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self._actions(request, body).set_blocked(request.path.endswith("/block"))
        return _ok(True)

    async def messages(self, request: web.Request) -> web.Response:
        body = await _body(request)
        chat = self._actions(request, body).chat
        include_deleted = str(body.values.get("include_deleted", "")).lower() in ("1", "true")
        views = [
            message_view(m) for m in chat.messages.values() if include_deleted or not m.deleted
        ]
        return _ok({"messages": views, "reply_keyboard": chat.reply_keyboard})

    async def events(self, request: web.Request) -> web.Response:
        body = await _body(request)
        chat = self._actions(request, body).chat
        after = body.int("after") or 0
        timeout = min(body.number("timeout", 0.0), 120.0)

        def fresh() -> list[ChatEvent]:
            return [event for event in chat.events if event.seq > after]

        events = await chat.notifier.wait_for(fresh, timeout)
        last = chat.events[-1].seq if chat.events else 0
        return _ok({"events": [event_view(e) for e in events], "last_seq": last})

    async def wait(self, request: web.Request) -> web.Response:
        body = await _body(request)
        chat = self._actions(request, body).chat
        after = body.int("after_message_id") or 0
        timeout = min(body.number("timeout", 10.0), 120.0)

        def first_new() -> Message | None:
            return next(
                (m for m in chat.messages.values() if m.from_bot and m.message_id > after), None
            )

        message = await chat.notifier.wait_for(first_new, timeout)
        if message is None:
            raise control_error("timed out waiting for a bot message", 408)
        return _ok(message_view(message))

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
        body = await _body(request)
        method = body.values.get("method")
        if not method:
            raise control_error("method is required ('*' for every method)")
        options = {k: body.values[k] for k in _FAULT_FIELDS if k in body.values}
        try:
            rule = self.world.faults.add(str(method), **options)
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
        body = await _body(request)
        records = self.world.calls.records(body.values.get("method"), body.int("since") or 0)
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
