"""Bot API methods other than messages: identity, updates, webhooks, commands, files, actions.

:data:`METHODS` maps each lower-cased method name (Telegram's method names are
case-insensitive) to ``(canonical name, handler)``; the HTTP layer looks methods
up there and answers 404 "Not Found" for anything else, as Telegram does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from totoshka.emulator import messaging
from totoshka.emulator.call import Call, Described, Handler, target_chat
from totoshka.emulator.errors import (
    FILE_TOO_BIG,
    OTHER_GET_UPDATES,
    QUERY_TOO_OLD,
    WEBHOOK_ACTIVE,
    bad_request,
    conflict,
)
from totoshka.emulator.state import Webhook

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


async def get_me(call: Call) -> dict[str, Any]:
    return call.bot.me_json()


async def log_out(call: Call) -> bool:
    return True


async def close(call: Call) -> bool:
    return True


def _read_allowed_updates(call: Call) -> None:
    allowed = call.params.json_value("allowed_updates", "allowed updates", list[str])
    if allowed is not None:
        call.bot.allowed_updates = allowed or None


async def get_updates(call: Call) -> list[dict[str, Any]]:
    """Long polling: answer at once when updates wait, else hold up to ``timeout`` seconds.

    ``offset`` confirms (forgets) every earlier update. A newer getUpdates call ends a
    waiting one with 409, which is how Telegram tells two running copies of a bot apart.
    """
    bot, params, limits = call.bot, call.params, call.world.limits
    if bot.webhook is not None:
        raise conflict(WEBHOOK_ACTIVE)
    offset = params.get("offset", int)
    limit = min(max(params.get("limit", int, limits.get_updates_limit) or 1, 1), 100)
    timeout = min(max(params.get("timeout", int, 0) or 0, 0), limits.get_updates_max_timeout)
    _read_allowed_updates(call)
    if offset is not None:
        bot.confirm(offset)
    bot.poll_generation += 1
    generation = bot.poll_generation
    bot.update_notifier.bump()  # wake (and so end) an older waiting call

    def ready() -> bool:
        return bool(bot.updates) or generation != bot.poll_generation or bot.webhook is not None

    await bot.update_notifier.wait_for(ready, timeout)
    if bot.webhook is not None:
        raise conflict(WEBHOOK_ACTIVE)
    if generation != bot.poll_generation:
        raise conflict(OTHER_GET_UPDATES)
    return bot.updates[:limit]


async def set_webhook(call: Call) -> Described:
    params, bot = call.params, call.bot
    url = params.string("url") or ""
    _read_allowed_updates(call)
    if params.flag("drop_pending_updates"):
        bot.updates.clear()
    if not url:
        bot.webhook = None
        bot.update_notifier.bump()
        return Described(True, "Webhook was deleted")
    if not url.startswith(("http://", "https://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.string("secret_token")
    if secret is not None and not _SECRET.match(secret):
        raise bad_request("secret token contains unallowed characters")
    max_connections = params.get("max_connections", int, 40) or 40
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    unchanged = bot.webhook is not None and bot.webhook.url == url
    bot.webhook = Webhook(url=url, secret_token=secret, max_connections=max_connections)
    bot.poll_generation += 1
    bot.update_notifier.bump()
    call.webhooks.ensure_running(bot)
    return Described(True, "Webhook is already set" if unchanged else "Webhook was set")


async def delete_webhook(call: Call) -> Described:
    bot = call.bot
    if call.params.flag("drop_pending_updates"):
        bot.updates.clear()
    existed = bot.webhook is not None
    bot.webhook = None
    bot.update_notifier.bump()
    return Described(True, "Webhook was deleted" if existed else "Webhook is already deleted")


async def get_webhook_info(call: Call) -> dict[str, Any]:
    bot = call.bot
    hook = bot.webhook
    info: dict[str, Any] = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        info["ip_address"] = "127.0.0.1"
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    if bot.allowed_updates:
        info["allowed_updates"] = bot.allowed_updates
    return info


def _scope_key(call: Call) -> tuple[str, str]:
    scope = call.params.json_value("scope", "bot command scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), call.params.string("language_code") or ""


async def set_my_commands(call: Call) -> bool:
    limits = call.world.limits
    commands = call.params.json_value("commands", "bot commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse bot commands JSON object")
    if len(commands) > limits.commands_max:
        raise bad_request("too many commands specified")
    checked = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name = str(command.get("command", "")).removeprefix("/")
        description = str(command.get("description", "")).strip()
        if not _COMMAND.match(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= limits.command_description_max_chars:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        checked.append({"command": name, "description": description})
    key = _scope_key(call)
    if checked:
        call.bot.commands[key] = checked
    else:
        call.bot.commands.pop(key, None)
    return True


async def get_my_commands(call: Call) -> list[dict[str, str]]:
    return call.bot.commands.get(_scope_key(call), [])


async def delete_my_commands(call: Call) -> bool:
    call.bot.commands.pop(_scope_key(call), None)
    return True


async def answer_callback_query(call: Call) -> bool:
    query_id = call.params.string("callback_query_id") or ""
    query = call.bot.callback_queries.get(query_id)
    if query is None or query.answer is not None:
        raise bad_request(QUERY_TOO_OLD)
    text = call.params.string("text")
    if text is not None and len(text) > call.world.limits.callback_answer_chars:
        raise bad_request("MESSAGE_TOO_LONG")
    answer: dict[str, Any] = {"text": text, "show_alert": call.params.flag("show_alert")}
    if call.params.has("url"):
        answer["url"] = call.params.string("url")
    query.answer = answer
    chat = call.bot.chats.get(query.user_id)
    if chat is not None:
        chat.record(
            "callback_answer",
            chat.messages.get(query.message_id),
            callback_query_id=query.id,
            **answer,
        )
    return True


async def get_file(call: Call) -> dict[str, Any]:
    file_id = call.params.string("file_id") or ""
    stored = call.world.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    result: dict[str, Any] = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
    }
    if stored.size > call.world.limits.download_bytes:
        raise bad_request(FILE_TOO_BIG)
    result["file_path"] = call.world.files.assign_path(stored)
    return result


async def send_chat_action(call: Call) -> bool:
    action = call.params.string("action")
    chat = target_chat(call)
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.record("chat_action", action=action)
    return True


async def get_chat(call: Call) -> dict[str, Any]:
    """ChatFullInfo of a private chat, with every field its models require.

    Current aiogram refuses an answer whose ``accepted_gift_types`` lacks
    ``gifts_from_channels`` (a field of a recent Bot API), so it is always sent.
    """
    chat = target_chat(call)
    data = chat.user.chat_json()
    if chat.user.username:
        data["active_usernames"] = [chat.user.username]
    data.update(
        accent_color_id=0,
        max_reaction_count=11,
        accepted_gift_types={
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    )
    return data


def _profile_text(field: str) -> tuple[Handler, Handler]:
    """setMy<X>/getMy<X> pairs that only store a per-language string."""

    async def setter(call: Call) -> bool:
        key = (field, call.params.string("language_code") or "")
        call.bot.profile[key] = call.params.string(field) or ""
        return True

    async def getter(call: Call) -> dict[str, str]:
        key = (field, call.params.string("language_code") or "")
        return {field: call.bot.profile.get(key, "")}

    return setter, getter


set_my_description, get_my_description = _profile_text("description")
set_my_short_description, get_my_short_description = _profile_text("short_description")
set_my_name, get_my_name = _profile_text("name")


def _table(*handlers: tuple[str, Handler]) -> Mapping[str, tuple[str, Handler]]:
    return MappingProxyType({name.lower(): (name, handler) for name, handler in handlers})


METHODS = _table(
    ("getMe", get_me),
    ("logOut", log_out),
    ("close", close),
    ("getUpdates", get_updates),
    ("setWebhook", set_webhook),
    ("deleteWebhook", delete_webhook),
    ("getWebhookInfo", get_webhook_info),
    ("sendMessage", messaging.send_message),
    ("sendPhoto", messaging.send_photo),
    ("sendDocument", messaging.send_document),
    ("sendVideo", messaging.send_video),
    ("sendAnimation", messaging.send_animation),
    ("sendVideoNote", messaging.send_video_note),
    ("sendVoice", messaging.send_voice),
    ("sendAudio", messaging.send_audio),
    ("sendSticker", messaging.send_sticker),
    ("sendMediaGroup", messaging.send_media_group),
    ("editMessageText", messaging.edit_message_text),
    ("editMessageCaption", messaging.edit_message_caption),
    ("editMessageReplyMarkup", messaging.edit_message_reply_markup),
    ("editMessageMedia", messaging.edit_message_media),
    ("deleteMessage", messaging.delete_message),
    ("deleteMessages", messaging.delete_messages),
    ("answerCallbackQuery", answer_callback_query),
    ("getFile", get_file),
    ("setMyCommands", set_my_commands),
    ("getMyCommands", get_my_commands),
    ("deleteMyCommands", delete_my_commands),
    ("sendChatAction", send_chat_action),
    ("getChat", get_chat),
    ("setMyDescription", set_my_description),
    ("getMyDescription", get_my_description),
    ("setMyShortDescription", set_my_short_description),
    ("getMyShortDescription", get_my_short_description),
    ("setMyName", set_my_name),
    ("getMyName", get_my_name),
)
