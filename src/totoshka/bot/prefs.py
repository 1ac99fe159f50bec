"""Per-user preferences and recent paintings, kept in aiogram's FSM storage.

They live under their own storage *destiny* (``prefs``) rather than in the
conversation's data, so ``/cancel`` (which clears the conversation) keeps the
user's language, output size and saved paintings. Using the FSM storage means
memory by default and Redis by configuration, with no database of our own; a
Celery worker configured with the same Redis sees the same preferences.
"""

from __future__ import annotations

import secrets

from aiogram.fsm.storage.base import BaseStorage, StorageKey
from pydantic import BaseModel, ConfigDict, Field

from totoshka.config import OUTPUT_SIZES

PREFS_DESTINY = "prefs"
RECENT_PAINTINGS = 4
STRENGTHS: tuple[int, ...] = (25, 50, 75, 100)  # percent; the result buttons step through these


class Painting(BaseModel):
    """A user's painting: its Telegram file and, once computed, its Magenta style vector."""

    pid: str
    file_id: str
    vector: list[float] | None = None


class Prefs(BaseModel):
    """Stored as JSON in the FSM storage; a record from an older version still loads."""

    model_config = ConfigDict(extra="ignore")

    language: str | None = None  # None: follow Telegram's language_code
    size: int | None = None  # longest side; 0 = full; None = the operator's default
    strength: int = 100
    preserve_colors: bool = False
    paintings: list[Painting] = Field(default_factory=list)

    def output_size(self, default: int) -> int:
        return default if self.size is None else self.size

    def add_painting(self, file_id: str) -> Painting:
        """Remember a painting (newest first, the last few only); same file = same entry."""
        for p in self.paintings:
            if p.file_id == file_id:
                self.paintings.remove(p)
                self.paintings.insert(0, p)
                return p
        painting = Painting(pid=secrets.token_hex(3), file_id=file_id)
        self.paintings.insert(0, painting)
        del self.paintings[RECENT_PAINTINGS:]
        return painting

    def painting(self, pid: str) -> Painting | None:
        return next((p for p in self.paintings if p.pid == pid), None)


def next_size(current: int, default: int) -> int:
    sizes = list(OUTPUT_SIZES)
    if current not in sizes:
        return sizes[0]
    return sizes[(sizes.index(current) + 1) % len(sizes)]


def next_strength(current: int) -> int:
    bigger = [s for s in STRENGTHS if s > current]
    return bigger[0] if bigger else STRENGTHS[0]


class PrefsStore:
    """Read and write `Prefs` for a (bot, chat, user) through any aiogram storage."""

    def __init__(self, storage: BaseStorage, bot_id: int) -> None:
        self.storage = storage
        self.bot_id = bot_id

    def _key(self, chat_id: int, user_id: int) -> StorageKey:
        return StorageKey(
            bot_id=self.bot_id, chat_id=chat_id, user_id=user_id, destiny=PREFS_DESTINY
        )

    async def load(self, chat_id: int, user_id: int) -> Prefs:
        return Prefs.model_validate(await self.storage.get_data(self._key(chat_id, user_id)))

    async def save(self, chat_id: int, user_id: int, prefs: Prefs) -> None:
        await self.storage.set_data(self._key(chat_id, user_id), prefs.model_dump())

    async def set_painting_vector(
        self, chat_id: int, user_id: int, pid: str, vector: list[float]
    ) -> None:
        """Called by the worker once a painting's style vector is known, for reuse."""
        prefs = await self.load(chat_id, user_id)
        painting = prefs.painting(pid)
        if painting is not None and painting.vector is None:
            painting.vector = list(vector)
            await self.save(chat_id, user_id, prefs)
