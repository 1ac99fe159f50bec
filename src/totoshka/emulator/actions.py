"""What simulated users do: write, send media, press inline buttons, block the bot.

Each action stores the user's message in the private chat and queues the update a
real Telegram client would cause, shaped as the Bot API documents it (commands
carry ``bot_command`` entities, photos arrive as a PhotoSize list of a
1280-px-compressed JPEG, albums share a ``media_group_id``). The HTTP control API
and in-process callers share these functions.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import secrets
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

from totoshka.emulator.attachments import Attachments
from totoshka.emulator.errors import BotApiError, bad_request
from totoshka.emulator.params import Upload
from totoshka.emulator.state import BotAccount, CallbackQuery, Chat, Message, User, World
from totoshka.emulator.text import command_entities, utf16_len

# Placeholder media for "the user sent a voice note" when a test does not care about content.
_OGG_STUB = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead"
_MP4_STUB = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def control_error(description: str, status: int = 400) -> BotApiError:
    """Errors of the control API itself (not Telegram's): same JSON shape, plain wording."""
    return BotApiError(status, description)


# An EBML header naming the "webm" doc type: enough for Telegram to call it a video sticker.
_WEBM_STUB = bytes.fromhex(
    "1a45dfa39f4286810142f7810142f2810442f381084282847765626d4287810242858102"
)
_CAPTIONLESS = ("sticker", "video_note")


def _sticker_stub(is_animated: bool = False, is_video: bool = False) -> bytes:
    if is_animated:
        lottie = b'{"v":"5.5.2","fr":60,"ip":0,"op":60,"w":512,"h":512,"layers":[]}'
        return gzip.compress(lottie)
    if is_video:
        return _WEBM_STUB
    buffer = io.BytesIO()
    Image.new("RGBA", (512, 512), (255, 200, 0, 255)).save(buffer, "WEBP")
    return buffer.getvalue()


def _stub(kind: str, attributes: dict[str, Any]) -> bytes:
    if kind == "sticker":
        return _sticker_stub(bool(attributes.get("is_animated")), bool(attributes.get("is_video")))
    return _OGG_STUB if kind == "voice" else _MP4_STUB


@dataclass(slots=True)
class UserActions:
    """The actions of one user in their private chat with one bot."""

    world: World
    bot: BotAccount
    user: User

    @property
    def chat(self) -> Chat:
        return self.world.chat(self.bot, self.user)

    def _reply_to(self, message_id: int | None) -> Message | None:
        if message_id is None:
            return None
        message = self.chat.messages.get(message_id)
        if message is None or message.deleted:
            raise control_error(f"message {message_id} not found in the chat", 404)
        return message

    def _post(self, content: dict[str, Any], **extra: Any) -> Message:
        chat = self.chat
        if chat.blocked:
            chat.blocked = False  # writing to a blocked bot unblocks it, as in Telegram
            self._member_update("member")
        return self.world.post(self.bot, chat, from_bot=False, content=content, **extra)

    def _caption(self, caption: str | None) -> dict[str, Any]:
        if not caption:
            return {}
        if utf16_len(caption) > self.world.limits.caption_chars:
            raise bad_request("message caption is too long")
        content: dict[str, Any] = {"caption": caption}
        if entities := command_entities(caption):
            content["caption_entities"] = entities
        return content

    def _attachments(self) -> Attachments:
        return Attachments(self.world.files, self.world.limits)

    def send_text(self, text: str, *, reply_to_message_id: int | None = None) -> Message:
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > self.world.limits.text_chars:
            raise bad_request("message is too long")
        content: dict[str, Any] = {"text": text}
        if entities := command_entities(text):
            content["entities"] = entities
        return self._post(content, reply_to=self._reply_to(reply_to_message_id))

    async def send_photo(
        self,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> Message:
        photo = await self._attachments().photo(
            Upload(data, "photo.jpg", None), boxes=self.world.limits.user_photo_boxes
        )
        content = {"photo": photo, **self._caption(caption)}
        return self._post(
            content, media_group_id=media_group_id, reply_to=self._reply_to(reply_to_message_id)
        )

    async def send_media(
        self,
        kind: str,
        data: bytes | None,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        **attributes: Any,
    ) -> Message:
        """document / sticker / voice / video / video_note / animation / audio.

        ``data=None`` sends a small stub that no decoder reads, so its sizes are the
        caller's ``attributes``; real bytes are looked into as Telegram does.
        """
        if data is None:
            data = _stub(kind, attributes)
        content = await self._attachments().content(
            kind, Upload(data, file_name, mime_type), **attributes
        )
        if kind not in _CAPTIONLESS:
            content.update(self._caption(caption))
        return self._post(content, media_group_id=media_group_id)

    async def send_album(self, items: list[dict[str, Any]]) -> list[Message]:
        """Each item: ``{"type": "photo"|"video"|"document", "data": bytes, "caption"?...}``."""
        if not 2 <= len(items) <= self.world.limits.media_group_max:
            raise control_error("an album holds 2 to 10 items")
        group = self.world.next_media_group_id()
        messages = []
        for item in items:
            kind = item.get("type", "photo")
            if kind == "photo":
                messages.append(
                    await self.send_photo(
                        item["data"], caption=item.get("caption"), media_group_id=group
                    )
                )
            elif kind in ("video", "document", "audio"):
                messages.append(
                    await self.send_media(
                        kind,
                        item.get("data"),
                        file_name=item.get("file_name"),
                        mime_type=item.get("mime_type"),
                        caption=item.get("caption"),
                        media_group_id=group,
                    )
                )
            else:
                raise control_error(f"albums cannot hold {kind!r}")
        return messages

    def press(
        self, message_id: int, *, data: str | None = None, text: str | None = None
    ) -> CallbackQuery:
        """Press the inline button with this ``callback_data`` (or this label)."""
        message = self.chat.messages.get(message_id)
        if message is None or message.deleted:
            raise control_error(f"message {message_id} not found in the chat", 404)
        rows = (message.reply_markup or {}).get("inline_keyboard", [])
        buttons = [button for row in rows for button in row]
        chosen = next(
            (
                b
                for b in buttons
                if (data is not None and b.get("callback_data") == data)
                or (text is not None and b.get("text") == text)
            ),
            None,
        )
        if chosen is None:
            raise control_error(
                f"message {message_id} has no inline button matching data={data!r} text={text!r}",
                404,
            )
        if "callback_data" not in chosen:
            raise control_error("only callback buttons can be pressed in the emulator")
        query = CallbackQuery(
            id=str(secrets.randbits(63)),
            user_id=self.user.id,
            message_id=message_id,
            data=chosen["callback_data"],
            created=time.time(),
        )
        self.bot.callback_queries[query.id] = query
        digest = hashlib.sha256(f"{self.bot.id}:{self.user.id}".encode()).digest()
        payload = {
            "id": query.id,
            "from": self.user.to_json(),
            "message": message.to_json(),
            "chat_instance": str(int.from_bytes(digest[:8], "big") >> 1),
            "data": query.data,
        }
        self.bot.push_update("callback_query", payload)
        return query

    def set_blocked(self, blocked: bool) -> None:
        """Block/unblock the bot: the bot gets ``my_chat_member``; sends to a blocker fail 403."""
        chat = self.chat
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        chat.record("blocked" if blocked else "unblocked")
        self._member_update("kicked" if blocked else "member")

    def _member_update(self, new_status: str) -> None:
        old = "member" if new_status == "kicked" else "kicked"
        bot_user = self.bot.user.to_json()
        self.bot.push_update(
            "my_chat_member",
            {
                "chat": self.user.chat_json(),
                "from": self.user.to_json(),
                "date": int(time.time()),
                "old_chat_member": {"status": old, "user": bot_user}
                | ({"until_date": 0} if old == "kicked" else {}),
                "new_chat_member": {"status": new_status, "user": bot_user}
                | ({"until_date": 0} if new_status == "kicked" else {}),
            },
        )
