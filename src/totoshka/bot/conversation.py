"""One user's conversation as a handler sees it: the bot, their language, FSM state
and preferences, and the app's services — built once per update by a middleware,
so a handler that queues a picture passes one object instead of nine arguments.

Photos and result specs are remembered in the FSM data under short refs (a
``file_id`` is too long for callback data), so an older picker still paints the
photo it was shown under, and the buttons under a result re-run its spec.

Every write of that data goes through `edit_data` / `update_data` here, which hold
the conversation's lock (`Services.state_locks`: aiogram's event isolation, an
asyncio lock in memory and a Redis lock across replicas) from the read to the
write. aiogram's own ``update_data`` reads, merges and writes without one, so three
photos picked at once, each handled as its own update, lost each other's refs
(issue 15: a third of such photos with Redis state). The lock is per conversation
and held only around the edit, never while a handler waits on Telegram, so an
album's items (which wait for each other in `AlbumMiddleware`) are not serialised.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.fsm.context import FSMContext

from totoshka.bot.job import CLIP_KINDS, JobPayload, JobRequest, MediaKind
from totoshka.bot.prefs import Prefs, PrefsStore
from totoshka.bot.services import Services, Submitted
from totoshka.bot.texts import Translator

PHOTOS_KEPT = 10  # photos a conversation remembers (for "another style")
RESULTS_KEPT = 20  # results whose buttons still work


def new_ref() -> str:
    """A short random key; fits callback data many times over."""
    return secrets.token_hex(4)


@dataclass
class Conversation:
    bot: Bot
    t: Translator
    state: FSMContext
    prefs: Prefs
    prefs_store: PrefsStore
    services: Services

    @asynccontextmanager
    async def edit_data(self) -> AsyncIterator[dict[str, Any]]:
        """The FSM data to change in place, read and written back under the lock."""
        async with self.services.state_locks.lock(self.state.key):
            data = dict(await self.state.get_data())
            yield data
            await self.state.set_data(data)

    async def update_data(self, **fields: Any) -> None:
        """aiogram's ``update_data``, under the conversation's lock."""
        async with self.edit_data() as data:
            data.update(fields)

    async def remember_photo(self, file_id: str, kind: MediaKind = "photo") -> str:
        """The ref of the photo (or clip, sticker) the picker's buttons will carry;
        the kinds of those that are not photos are kept beside them."""
        async with self.edit_data() as data:
            photos: dict[str, str] = dict(data.get("photos", {}))
            kinds: dict[str, str] = dict(data.get("kinds", {}))
            for ref, known in photos.items():
                if known == file_id:
                    return ref
            ref = new_ref()
            photos[ref] = file_id
            if kind != "photo":
                kinds[ref] = kind
            while len(photos) > PHOTOS_KEPT:
                photos.pop(next(iter(photos)))
            data["photos"] = photos
            data["kinds"] = {r: k for r, k in kinds.items() if r in photos}
        return ref

    async def enqueue(self, request: JobRequest) -> Submitted:
        """Queue one picture; what the spec leaves open comes from the preferences.

        The spec is saved under a new result ref so that the buttons under the result
        (another style, full size, stronger, weaker) can re-run it with one change.
        """
        prefs = self.prefs
        spec = request.spec.model_copy()
        if spec.strength is None:
            spec.strength = prefs.strength
        if spec.preserve_colors is None:
            spec.preserve_colors = prefs.preserve_colors
        if spec.max_side is None:
            spec.max_side = prefs.output_size(self.services.settings.default_output_size)
        vector = None
        if spec.painting_pid:
            painting = prefs.painting(spec.painting_pid)
            if painting is not None:
                vector = painting.vector
                spec.painting = painting.file_id
        ref = new_ref()
        async with self.edit_data() as data:
            results: dict[str, Any] = dict(data.get("results", {}))
            results[ref] = spec.model_dump()
            while len(results) > RESULTS_KEPT:
                results.pop(next(iter(results)))
            data["results"] = results
        job = JobPayload(
            **spec.model_dump(exclude={"max_side"}),  # every PaintSpec field is a payload's
            max_side=spec.max_side or None,
            chat_id=request.chat_id,
            user_id=request.user_id,
            lang=self.t.lang,
            status_message_id=None,
            reply_to=request.reply_to,
            vector=vector,
            ref=ref,
        )
        submitted = await self.services.submit(
            self.bot, self.t, job, dedupe_key=request.dedupe_key, reply_to=request.reply_to
        )
        if job.kind in CLIP_KINDS and submitted.job_id:
            await self.update_data(clip_job=submitted.job_id)  # for /cancel
        return submitted
