"""An async Python driver for the control API: play users and inspect what the bot did.

Usage in a test (``server`` from :class:`~totoshka.emulator.server.EmulatorServer`)::

    async with EmulatorClient(server.url, bot_token=TOKEN) as client:
        user = await client.create_user(language_code="ru")
        await user.send_text("/start")
        menu = await user.wait_for_message(lambda m: m.buttons)
        await user.press(menu, "Van Gogh")            # by label or callback_data
        await user.send_photo(jpeg_bytes)
        result = await user.wait_for_message(lambda m: m.photo, timeout=30)
        image = await client.download(result.largest_photo.file_id)
        await client.inject_fault("sendPhoto", status=429, retry_after=1, count=2)
        sent = await client.calls("sendPhoto")        # [CallRecord], to count successes
        await user.send_animation(gif_bytes, "cat.gif")   # also send_video, send_video_note,
        clip = await user.wait_for_message(lambda m: m.animation, timeout=60)  # send_sticker
        mp4 = await client.download(clip.file_id)     # clip.kind == "animation"

Messages come back as aiogram's own types (:class:`ChatMessage` is aiogram's
``Message`` plus the chat facts the control API adds), so a test reads them as a
bot would. Waiting uses the server's long-polling ``events`` endpoint, so nothing here sleeps
in a loop; ``wait_for_message`` raises :class:`TimeoutError` when the bot stays
silent, with the chat's messages in the error text.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any, Self

import aiohttp
from aiogram.types import InlineKeyboardButton, Message, PhotoSize, User


class ControlError(RuntimeError):
    """The control API refused a request; ``status`` and ``description`` say why."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(f"{status}: {description}")
        self.status = status
        self.description = description


class ChatMessage(Message):
    """aiogram's Message, plus what the control API knows: who sent it, deleted, edits."""

    from_bot: bool
    deleted: bool
    edit_count: int
    history: list[Message]  # earlier versions, oldest first

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> ChatMessage:
        facts = {key: view[key] for key in ("from_bot", "deleted", "edit_count", "history")}
        return cls.model_validate({**view["message"], **facts})

    @property
    def buttons(self) -> list[InlineKeyboardButton]:
        """Inline keyboard buttons, row by row, flattened."""
        markup = self.reply_markup
        return [button for row in markup.inline_keyboard for button in row] if markup else []

    @property
    def largest_photo(self) -> PhotoSize | None:
        return self.photo[-1] if self.photo else None

    @property
    def kind(self) -> str:
        """What the message is, as a bot would dispatch it: an animation before its
        ``document`` twin; "text" for text, "other" for the rest."""
        for name in _KINDS:
            if getattr(self, name):
                return name
        return "text" if self.text is not None else "other"

    @property
    def file_id(self) -> str | None:
        """The file of :attr:`kind` (a photo's largest size), for ``client.download``."""
        media = self.largest_photo if self.photo else getattr(self, self.kind, None)
        return getattr(media, "file_id", None)

    def __repr__(self) -> str:
        what = self.text or self.caption or f"<{self.kind}>"
        who = "bot" if self.from_bot else "user"
        return f"<ChatMessage #{self.message_id} {who} {what!r} edits={self.edit_count}>"


MessagePredicate = Callable[[ChatMessage], Any]
_KINDS = ("photo", "animation", "video", "video_note", "sticker", "voice", "audio", "document")


class EmulatorClient:
    """Async client of one emulator's control API (aiohttp session owned or borrowed)."""

    def __init__(
        self,
        base_url: str,
        *,
        bot_id: int | None = None,
        bot_token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if bot_id is None and bot_token is not None:
            bot_id = int(bot_token.split(":", 1)[0])
        self.bot_id = bot_id
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """Call ``/_emulator{path}`` and return its ``result`` (raise ControlError otherwise)."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        if self.bot_id is not None:
            query.setdefault("bot_id", str(self.bot_id))
        async with self._http().request(
            method,
            f"{self.base_url}/_emulator{path}",
            json=json,
            params=query,
            data=data,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            body = await response.json(content_type=None)
        if not body.get("ok"):
            raise ControlError(body.get("error_code", response.status), body.get("description"))
        return body["result"]

    async def raw(self, path: str) -> bytes:
        async with self._http().get(f"{self.base_url}/_emulator{path}") as response:
            if response.status != 200:
                body = await response.json(content_type=None)
                raise ControlError(response.status, body.get("description", ""))
            return await response.read()

    # -- world ---------------------------------------------------------------------
    async def create_user(
        self,
        first_name: str = "Test",
        *,
        language_code: str | None = "en",
        last_name: str | None = None,
        username: str | None = None,
        is_premium: bool = False,
        user_id: int | None = None,
    ) -> SimUser:
        payload = {
            "first_name": first_name,
            "language_code": language_code,
            "last_name": last_name,
            "username": username,
            "is_premium": is_premium or None,
            "id": user_id,
        }
        user = await self.request(
            "POST", "/users", json={k: v for k, v in payload.items() if v is not None}
        )
        return SimUser(self, user)

    async def reset(self) -> None:
        await self.request("POST", "/reset")

    async def overview(self) -> dict[str, Any]:
        return await self.request("GET", "")

    async def bot_info(self, bot_id: int | None = None) -> dict[str, Any]:
        return await self.request("GET", f"/bots/{bot_id or self.bot_id}")

    async def download(self, file_id: str) -> bytes:
        """Bytes of any file the bot or a user sent, by file_id."""
        return await self.raw(f"/files/{file_id}")

    async def callback_answer(self, callback_query_id: str) -> dict[str, Any] | None:
        """The bot's answerCallbackQuery for a press, or None while unanswered."""
        query = await self.request("GET", f"/callback_queries/{callback_query_id}")
        return query["answer"]

    # -- faults and the call log -------------------------------------------------------
    async def inject_fault(
        self,
        method: str,
        *,
        status: int | None = 429,
        retry_after: int = 1,
        count: int | None = 1,
        probability: float | None = None,
        seed: int | None = None,
        delay: float = 0.0,
        description: str | None = None,
        executed: bool = False,
    ) -> dict[str, Any]:
        """Make ``method`` misbehave; see :mod:`totoshka.emulator.faults`. Returns the rule."""
        payload = {
            "method": method,
            "status": status,
            "retry_after": retry_after,
            "count": count,
            "probability": probability,
            "seed": seed,
            "delay": delay,
            "description": description,
            "executed": executed,
        }
        return await self.request("POST", "/faults", json=payload)

    async def clear_faults(self) -> None:
        await self.request("DELETE", "/faults")

    async def calls(self, method: str | None = None, *, since: int = 0) -> list[dict[str, Any]]:
        """Call log records ``{seq, method, status, ok, executed, ...}``, oldest first."""
        return await self.request("GET", "/calls", params={"method": method, "since": since})

    async def successful_calls(self, method: str) -> int:
        """How many calls of ``method`` took effect (including faults with executed=True)."""
        return sum(1 for record in await self.calls(method) if record["executed"])

    async def clear_calls(self) -> None:
        await self.request("DELETE", "/calls")


class SimUser:
    """A simulated Telegram user in a private chat with the bot."""

    def __init__(self, client: EmulatorClient, user: dict[str, Any]) -> None:
        self.client = client
        self.info = User.model_validate(user)
        self.id = self.info.id
        self._seen_seq = 0

    @property
    def chat_id(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<SimUser {self.id} {self.info.first_name!r}>"

    def _path(self, tail: str) -> str:
        return f"/users/{self.id}/{tail}"

    async def _send(self, kind: str, **body: Any) -> Message:
        """Post the user's message; returns it as the Bot API Message the bot receives."""
        sent = await self.client.request("POST", self._path(kind), **body)
        return Message.model_validate(sent["message"])

    async def send_text(self, text: str, *, reply_to: int | None = None) -> Message:
        """Send a message (``/command`` text gets bot_command entities)."""
        return await self._send("text", json={"text": text, "reply_to_message_id": reply_to})

    async def send_command(self, command: str, args: str = "") -> Message:
        text = "/" + command.removeprefix("/") + (f" {args}" if args else "")
        return await self.send_text(text)

    async def send_photo(self, data: bytes, *, caption: str | None = None) -> Message:
        payload = {"data": base64.b64encode(data).decode(), "caption": caption}
        return await self._send("photo", json=payload)

    async def send_document(
        self,
        data: bytes,
        file_name: str = "file.bin",
        mime_type: str | None = None,
        *,
        caption: str | None = None,
    ) -> Message:
        form = aiohttp.FormData()
        form.add_field(
            "document",
            data,
            filename=file_name,
            content_type=mime_type or "application/octet-stream",
        )
        if mime_type:
            form.add_field("mime_type", mime_type)
        if caption:
            form.add_field("caption", caption)
        return await self._send("document", data=form)

    async def send_media(
        self,
        kind: str,
        data: bytes | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        **fields: Any,
    ) -> Message:
        """Any kind, ``fields`` as the control API names them (``None`` ones left out).

        ``data`` goes as a multipart part named after the kind, as a Telegram app
        uploads it; the emulator looks into it (sizes, length, thumbnail; a GIF
        animation becomes an MP4) and numbers given in ``fields`` win. Without
        ``data`` a small stub goes, described by the given numbers alone.
        """
        given = {name: value for name, value in fields.items() if value is not None}
        if data is None:
            return await self._send(kind, json=given)
        form = aiohttp.FormData({name: str(value) for name, value in given.items()})
        form.add_field(
            kind,
            data,
            filename=file_name or kind,
            content_type=mime_type or "application/octet-stream",
        )
        return await self._send(kind, data=form)

    async def send_sticker(
        self,
        emoji: str = "🙂",
        *,
        data: bytes | None = None,
        file_name: str = "sticker.webp",
        is_animated: bool | None = None,
        is_video: bool | None = None,
    ) -> Message:
        """A sticker: still WebP, animated .tgs or video WebM, told apart by its bytes
        (without ``data``, ``is_animated``/``is_video`` choose the stub's format)."""
        return await self.send_media(
            "sticker", data, file_name, emoji=emoji, is_animated=is_animated, is_video=is_video
        )

    async def send_voice(self, duration: int = 2) -> Message:
        return await self.send_media("voice", duration=duration)

    async def send_video(
        self,
        data: bytes | None = None,
        file_name: str = "video.mp4",
        *,
        caption: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> Message:
        """A video (MP4, WebM, MOV; with sound or without); no ``data``: a 640×360, 3 s stub."""
        if data is None:
            width, height, duration = width or 640, height or 360, duration or 3
        return await self.send_media(
            "video", data, file_name, caption=caption, width=width, height=height, duration=duration
        )

    async def send_animation(
        self,
        data: bytes | None = None,
        file_name: str = "animation.gif",
        *,
        caption: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> Message:
        """A GIF (it arrives as a silent MP4 ``animation`` plus ``document``, as on Telegram)
        or a silent MP4; no ``data``: a 320×240, 2 s stub."""
        if data is None:
            width, height, duration = width or 320, height or 240, duration or 2
        return await self.send_media(
            "animation",
            data,
            file_name,
            caption=caption,
            width=width,
            height=height,
            duration=duration,
        )

    async def send_video_note(
        self, data: bytes | None = None, *, length: int | None = None, duration: int | None = None
    ) -> Message:
        """A round video message (a square MP4); no ``data``: a 240 px, 2 s stub."""
        if data is None:
            length, duration = length or 240, duration or 2
        return await self.send_media(
            "video_note", data, "video_note.mp4", "video/mp4", length=length, duration=duration
        )

    async def send_album(
        self, photos: list[bytes], captions: list[str | None] | None = None
    ) -> list[Message]:
        captions = captions or [None] * len(photos)
        items = [
            {"type": "photo", "data": base64.b64encode(p).decode(), "caption": c}
            for p, c in zip(photos, captions, strict=True)
        ]
        sent = await self.client.request("POST", self._path("album"), json={"items": items})
        return [Message.model_validate(message) for message in sent["messages"]]

    async def press(self, message: Message | int, button: str) -> str:
        """Press the inline button whose label or callback_data is ``button``.

        ``message`` is a Message (a ChatMessage, or what aiogram's Bot returned) or an
        id. Returns the callback query id (see :meth:`EmulatorClient.callback_answer`).
        """
        message_id = message if isinstance(message, int) else message.message_id
        try:
            result = await self.client.request(
                "POST", self._path("press"), json={"message_id": message_id, "text": button}
            )
        except ControlError as error:
            if error.status != 404:
                raise
            result = await self.client.request(
                "POST", self._path("press"), json={"message_id": message_id, "data": button}
            )
        return str(result["callback_query_id"])

    async def block_bot(self) -> None:
        await self.client.request("POST", self._path("block"))

    async def unblock_bot(self) -> None:
        await self.client.request("POST", self._path("unblock"))

    async def messages(
        self, *, include_deleted: bool = False, from_bot: bool | None = True
    ) -> list[ChatMessage]:
        """Messages in the chat in their current state; by default only the bot's."""
        result = await self.client.request(
            "GET",
            self._path("messages"),
            params={"include_deleted": "1" if include_deleted else None},
        )
        views = [ChatMessage.from_view(view) for view in result["messages"]]
        return [m for m in views if from_bot is None or m.from_bot == from_bot]

    async def events(self, after: int = 0, timeout: float = 0.0) -> dict[str, Any]:
        return await self.client.request(
            "GET",
            self._path("events"),
            params={"after": after, "timeout": timeout},
            timeout=timeout + 30,
        )

    async def wait_for_message(
        self,
        predicate: MessagePredicate | None = None,
        timeout: float = 10.0,
        *,
        new_only: bool = True,
        include_edits: bool = True,
    ) -> ChatMessage:
        """The first bot message (new, or edited if ``include_edits``) that matches.

        With ``new_only`` (default) only events after the previous wait count, so
        successive waits walk through the conversation in order. The message is
        shown as it was right after that event (``history`` empty; ``edit_count``
        set), so quick edits are seen one version at a time; use :meth:`messages`
        for the current state with full history.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        after = self._seen_seq if new_only else 0
        kinds = {"message", "edit"} if include_edits else {"message"}
        while True:
            remaining = deadline - loop.time()
            result = await self.events(after, max(remaining, 0.0))
            for event in result["events"]:
                after = event["seq"]
                view = event.get("message")
                if event["type"] not in kinds or view is None or not view["from_bot"]:
                    continue
                message = ChatMessage.from_view(view)
                if message.deleted or (predicate is not None and not predicate(message)):
                    continue
                self._seen_seq = max(self._seen_seq, after)
                return message
            self._seen_seq = max(self._seen_seq, after) if new_only else self._seen_seq
            if remaining <= 0:
                chat = await self.messages(from_bot=None)
                raise TimeoutError(f"no matching bot message within {timeout}s; chat: {chat}")
