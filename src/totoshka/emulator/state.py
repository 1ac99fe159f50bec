"""The in-memory world of one emulator server: bots, users, private chats, messages, files.

Everything a server knows lives in one :class:`World` (no module-level state), so
two servers in one process – or two tests – never see each other. The world is
touched only from the server's event loop; waiting (long polling, "wait for the
bot's next message") uses :class:`Notifier`, which wakes waiters on every change.

Identity rules, as in Telegram:

* a bot is identified by the number before ``:`` in its token; any secret after it
  is accepted;
* a private chat's id equals the user's id, one chat per (bot, user);
* ``message_id`` grows per chat and is shared by both directions;
* ``update_id`` grows per bot;
* each stored file has a ``file_id`` (to send again) and a ``file_unique_id``
  (stable identity); a photo is a set of sizes, each its own file.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from totoshka.emulator.faults import CallLog, FaultInjector
from totoshka.emulator.limits import Limits

# Update kinds Telegram leaves out unless a bot asks for them in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class Notifier:
    """A version counter that coroutines can wait on; each bump wakes every waiter.

    An ``asyncio.Event`` per generation: ``bump`` sets the current one and drops it,
    so waiters re-check their condition and later waiters get a fresh event.
    """

    def __init__(self) -> None:
        self.version = 0
        self._event: asyncio.Event | None = None

    def bump(self) -> None:
        self.version += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_for(self, ready: Callable[[], Any], timeout: float) -> Any:
        """Return ``ready()`` as soon as it is truthy, or its last value after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while not (result := ready()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return result
            if self._event is None:
                self._event = asyncio.Event()
            event = self._event
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass
        return result


@dataclass(slots=True)
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    is_bot: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for name in ("last_name", "username", "language_code"):
            if (value := getattr(self, name)) is not None:
                data[name] = value
        if self.is_premium:
            data["is_premium"] = True
        return data

    def chat_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "first_name": self.first_name, "type": "private"}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # photo, document, sticker, voice, video, video_note, animation, audio, thumbnail
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    file_path: str | None = None
    photo_set: str | None = None  # every size of one photo shares this key
    # A sticker's format: "static" (WebP), "animated" (.tgs) or "video" (WebM).
    sticker_format: str | None = None
    # The preview Telegram made at upload; a file_id sent again shows the same one.
    thumbnail: StoredFile | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def photo_size_json(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": self.width,
            "height": self.height,
            "file_size": self.size,
        }


_KIND_PREFIX = {
    "photo": "AgAC",
    "document": "BQAC",
    "sticker": "CAAC",
    "voice": "AwAC",
    "video": "BAAC",
    "audio": "CQAC",
    "thumbnail": "AAMC",
    "video_note": "DQAC",
    "animation": "CgAC",
}
_PATH_FOLDER = {
    "photo": "photos",
    "document": "documents",
    "sticker": "stickers",
    "voice": "voice",
    "video": "videos",
    "audio": "music",
    "thumbnail": "thumbnails",
    "video_note": "video_notes",
    "animation": "animations",
}
_MIME_EXTENSION = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/jpeg": ".jpg",
    "application/x-tgsticker": ".tgs",
}


class FileStore:
    """Files by ``file_id`` and by download path, kept in memory for the server's life."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._photo_sets: dict[str, list[StoredFile]] = {}
        self._paths = itertools.count(1)

    def add(self, kind: str, data: bytes, **meta: Any) -> StoredFile:
        unique = base64.urlsafe_b64encode(b"\x01" + secrets.token_bytes(11)).decode()
        file_id = _KIND_PREFIX.get(kind, "BQAC") + secrets.token_urlsafe(45)
        stored = StoredFile(file_id=file_id, file_unique_id=unique, kind=kind, data=data, **meta)
        self._by_id[file_id] = stored
        return stored

    def add_photo(self, variants: list[tuple[bytes, int, int]]) -> list[StoredFile]:
        set_key = secrets.token_hex(8)
        sizes = [
            self.add(
                "photo", data, width=width, height=height, photo_set=set_key, mime_type="image/jpeg"
            )
            for data, width, height in variants
        ]
        self._photo_sets[set_key] = sizes
        return sizes

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def photo_sizes(self, stored: StoredFile) -> list[StoredFile]:
        return self._photo_sets.get(stored.photo_set or "", [stored])

    def assign_path(self, stored: StoredFile) -> str:
        if stored.file_path is None:
            extension = ""
            if stored.kind == "photo":
                extension = ".jpg"
            elif stored.file_name and "." in stored.file_name:
                extension = "." + stored.file_name.rsplit(".", 1)[1]
            elif stored.kind == "voice":
                extension = ".oga"
            elif stored.mime_type in _MIME_EXTENSION:
                extension = _MIME_EXTENSION[stored.mime_type]
            folder = _PATH_FOLDER.get(stored.kind, "documents")
            stored.file_path = f"{folder}/file_{next(self._paths)}{extension}"
            self._by_path[stored.file_path] = stored
        return stored.file_path

    def by_path(self, path: str) -> StoredFile | None:
        return self._by_path.get(path)


@dataclass(slots=True)
class Message:
    """One message in a chat, with its edit history kept for the control API."""

    message_id: int
    chat: dict[str, Any]
    sender: dict[str, Any]
    date: int
    from_bot: bool
    content: dict[str, Any]
    reply_markup: dict[str, Any] | None = None
    media_group_id: str | None = None
    reply_to: Message | None = None
    edit_date: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    def to_json(self, *, with_reply: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if self.media_group_id is not None:
            data["media_group_id"] = self.media_group_id
        if with_reply and self.reply_to is not None and not self.reply_to.deleted:
            data["reply_to_message"] = self.reply_to.to_json(with_reply=False)
        data.update(self.content)
        if self.reply_markup is not None:
            data["reply_markup"] = self.reply_markup
        return data

    def snapshot(self) -> None:
        """Keep the current state in ``history`` before an edit changes it."""
        self.history.append(self.to_json(with_reply=False))

    def view(self, *, with_history: bool = True) -> dict[str, Any]:
        """The control API's MessageView: current Bot API object plus emulator facts."""
        return {
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "deleted": self.deleted,
            "edit_count": len(self.history),
            "history": self.history if with_history else [],
            "message": self.to_json(),
        }


@dataclass(slots=True)
class ChatEvent:
    """Something a person watching the chat would notice; the control API streams these."""

    seq: int
    type: str  # message, edit, delete, chat_action, callback_answer, blocked, unblocked
    at: float
    message_id: int | None = None
    data: dict[str, Any] | None = None
    # The message as it was right after this event (history left out to stay small),
    # so a watcher sees each version in turn even if edits follow quickly.
    message: dict[str, Any] | None = None


@dataclass(slots=True)
class Chat:
    """A private chat between one bot and one user."""

    user: User
    messages: dict[int, Message] = field(default_factory=dict)
    events: list[ChatEvent] = field(default_factory=list)
    notifier: Notifier = field(default_factory=Notifier)
    reply_keyboard: dict[str, Any] | None = None  # last ReplyKeyboardMarkup the bot showed
    blocked: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def id(self) -> int:
        return self.user.id

    def next_message_id(self) -> int:
        return next(self._ids)

    def record(self, type_: str, message: Message | None = None, **data: Any) -> ChatEvent:
        event = ChatEvent(
            next(self._seq),
            type_,
            time.time(),
            message.message_id if message is not None else None,
            data or None,
            message.view(with_history=False) if message is not None else None,
        )
        self.events.append(event)
        self.notifier.bump()
        return event


@dataclass(slots=True)
class CallbackQuery:
    id: str
    user_id: int
    message_id: int
    data: str | None
    created: float
    answer: dict[str, Any] | None = None


@dataclass(slots=True)
class Webhook:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


class BotAccount:
    """Server-side state of one bot: its updates queue, webhook, commands and chats."""

    def __init__(self, bot_id: int, name: str) -> None:
        self.id = bot_id
        self.user = User(id=bot_id, first_name=name, username=f"emulator_{bot_id}_bot", is_bot=True)
        self.updates: list[dict[str, Any]] = []
        self.update_notifier = Notifier()
        self.allowed_updates: list[str] | None = None
        self.webhook: Webhook | None = None
        self.poll_generation = 0
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.callback_queries: dict[str, CallbackQuery] = {}
        self.profile: dict[tuple[str, str], str] = {}  # (name|description|..., language)
        self.chats: dict[int, Chat] = {}
        self._update_ids = itertools.count(1)

    def me_json(self) -> dict[str, Any]:
        data = self.user.to_json()
        data.update(
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
            can_connect_to_business=False,
            has_main_web_app=False,
        )
        return data

    def wants(self, kind: str) -> bool:
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in OPT_IN_UPDATES

    def push_update(self, kind: str, payload: dict[str, Any]) -> int | None:
        """Queue an update unless the bot's allowed_updates filter drops it."""
        if not self.wants(kind):
            return None
        update_id = next(self._update_ids)
        self.updates.append({"update_id": update_id, kind: payload})
        self.update_notifier.bump()
        return update_id

    def confirm(self, offset: int) -> None:
        """getUpdates' ``offset``: forget every update below it; negative counts from the end."""
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]


class World:
    """All state of one emulator server."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        bot_name: str = "Totoshka Test Bot",
        default_bot_id: int | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.bot_name = bot_name
        self.default_bot_id = default_bot_id
        self.users: dict[int, User] = {}
        self.bots: dict[int, BotAccount] = {}
        self.files = FileStore()
        self.faults = FaultInjector()
        self.calls = CallLog()
        self._user_ids = itertools.count(100_000_001)
        self._media_groups = itertools.count(13_000_000_000_000_001)

    def reset(self) -> None:
        """Forget users, bots, chats, files, faults and calls; limits and settings stay."""
        for bot in self.bots.values():
            bot.webhook = None  # lets a running delivery task finish
            bot.update_notifier.bump()
        self.users.clear()
        self.bots.clear()
        self.files = FileStore()
        self.faults.clear()
        self.calls.clear()

    # -- bots -----------------------------------------------------------------
    def bot(self, bot_id: int) -> BotAccount:
        if bot_id not in self.bots:
            self.bots[bot_id] = BotAccount(bot_id, self.bot_name)
        return self.bots[bot_id]

    def default_bot(self) -> BotAccount:
        """The bot a control request means when it names none."""
        if self.default_bot_id is not None:
            return self.bot(self.default_bot_id)
        if len(self.bots) == 1:
            return next(iter(self.bots.values()))
        if not self.bots:
            raise LookupError(
                "no bot has called the API yet; pass bot_id (or start the server with a "
                "default bot id)"
            )
        raise LookupError("several bots are known; pass bot_id")

    # -- users ----------------------------------------------------------------
    def add_user(
        self, first_name: str = "Test", *, user_id: int | None = None, **fields: Any
    ) -> User:
        if user_id is None:
            user_id = next(self._user_ids)
            while user_id in self.users:
                user_id = next(self._user_ids)
        elif user_id in self.users:
            raise ValueError(f"user {user_id} already exists")
        user = User(id=user_id, first_name=first_name, **fields)
        self.users[user_id] = user
        return user

    def chat(self, bot: BotAccount, user: User) -> Chat:
        if user.id not in bot.chats:
            bot.chats[user.id] = Chat(user=user)
        return bot.chats[user.id]

    def next_media_group_id(self) -> str:
        return str(next(self._media_groups))

    # -- messages -------------------------------------------------------------
    def post(
        self,
        bot: BotAccount,
        chat: Chat,
        *,
        from_bot: bool,
        content: dict[str, Any],
        reply_markup: dict[str, Any] | None = None,
        media_group_id: str | None = None,
        reply_to: Message | None = None,
    ) -> Message:
        """Store a new message in ``chat``; a user's message also becomes an update."""
        sender = bot.user.to_json() if from_bot else chat.user.to_json()
        message = Message(
            message_id=chat.next_message_id(),
            chat=chat.user.chat_json(),
            sender=sender,
            date=int(time.time()),
            from_bot=from_bot,
            content=content,
            reply_markup=reply_markup,
            media_group_id=media_group_id,
            reply_to=reply_to,
        )
        chat.messages[message.message_id] = message
        chat.record("message", message)
        if not from_bot:
            bot.push_update("message", message.to_json())
        return message
