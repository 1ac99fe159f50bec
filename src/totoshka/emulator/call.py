"""What a Bot API method handler receives, and lookups that many handlers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from totoshka.emulator.errors import (
    CHAT_ID_EMPTY,
    CHAT_NOT_FOUND,
    bad_request,
    forbidden,
)
from totoshka.emulator.params import Params
from totoshka.emulator.state import BotAccount, Chat, Message, World

if TYPE_CHECKING:
    from totoshka.emulator.webhook import WebhookDelivery


class ReplyParameters(BaseModel):
    """The fields of Telegram's ReplyParameters that a private chat uses."""

    message_id: int | None = None
    allow_sending_without_reply: bool | None = None


@dataclass(slots=True)
class Call:
    """One Bot API call: the world it acts on, the calling bot, and its parameters."""

    world: World
    bot: BotAccount
    params: Params
    webhooks: WebhookDelivery


@dataclass(frozen=True, slots=True)
class Described:
    """A result Telegram answers with a ``description`` next to it (e.g. setWebhook)."""

    result: Any
    description: str


Handler = Callable[[Call], Awaitable[Any]]


def target_chat(call: Call, name: str = "chat_id") -> Chat:
    """The private chat ``chat_id`` names, with Telegram's errors for every way it can't be."""
    raw = call.params.values.get(name)
    if raw is None or raw == "":
        raise bad_request(CHAT_ID_EMPTY)
    try:
        chat_id = int(raw)
    except (TypeError, ValueError):
        raise bad_request(CHAT_NOT_FOUND) from None  # @username of a non-channel
    user = call.world.users.get(chat_id)
    if user is None:
        raise bad_request(CHAT_NOT_FOUND)
    chat = call.bot.chats.get(chat_id)
    if chat is None:
        raise forbidden("bot can't initiate conversation with a user")
    if chat.blocked:
        raise forbidden("bot was blocked by the user")
    return chat


def existing_message(chat: Chat, message_id: int | None, missing: str) -> Message:
    message = chat.messages.get(message_id) if message_id is not None else None
    if message is None or message.deleted:
        raise bad_request(missing)
    return message


def reply_target(call: Call, chat: Chat) -> Message | None:
    """``reply_parameters`` (or the older ``reply_to_message_id``) → the replied message."""
    params = call.params
    reply = params.json_value("reply_parameters", "reply parameters", ReplyParameters)
    message_id = params.get("reply_to_message_id", int)
    allow_missing = params.flag("allow_sending_without_reply")
    if reply is not None:
        message_id = reply.message_id
        if reply.allow_sending_without_reply is not None:
            allow_missing = reply.allow_sending_without_reply
    if message_id is None:
        return None
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")
    return message
