"""One user's conversation as a handler sees it: the bot, their language, FSM state
and preferences, and the app's services — built once per update by a middleware,
so a handler that queues a picture passes one object instead of nine arguments.

Photos and result specs are remembered in the FSM data under short refs (a
``file_id`` is too long for callback data), so an older picker still paints the
photo it was shown under, and the buttons under a result re-run its spec.
"""

from __future__ import annotations

import secrets
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

    async def remember_photo(self, file_id: str, kind: MediaKind = "photo") -> str:
        """The ref of the photo (or clip, sticker) the picker's buttons will carry;
        the kinds of those that are not photos are kept beside them."""
        data = await self.state.get_data()
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
        kinds = {r: k for r, k in kinds.items() if r in photos}
        await self.state.update_data(photos=photos, kinds=kinds)
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
        data = await self.state.get_data()
        results: dict[str, Any] = dict(data.get("results", {}))
        results[ref] = spec.model_dump()
        while len(results) > RESULTS_KEPT:
            results.pop(next(iter(results)))
        await self.state.update_data(results=results)
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
            await self.state.update_data(clip_job=submitted.job_id)  # for /cancel
        return submitted
