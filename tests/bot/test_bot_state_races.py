"""Several photos at once from several users, with the conversation state in Redis
(as every scaled deployment has it) and in memory: no photo may be lost.

Picking three photos in Telegram sends three updates at once; each remembers its
photo in the conversation's FSM data. aiogram's ``update_data`` reads, merges and
writes back without a lock, so with Redis state a third of such photos were lost
("I no longer have that photo", issue 15). Here 5 users send 3 photos each at the
same moment, then press a style under every picker, also at once: all 15 pictures
must come back, each to its user, and nobody is told a photo expired.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from bot_helpers import WAIT, jpeg, make_settings, start_bot
from PIL import Image, ImageOps

from totoshka.bot.texts import Texts

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()
REDIS_URL = "redis://127.0.0.1:6379/0"
WAVE = "The Great Wave off Kanagawa"
USERS, PHOTOS = 5, 3


@pytest.mark.parametrize("state", ["redis", "memory"])
async def test_photos_sent_together_are_all_painted(
    state: str,
    emulator,
    new_user,
    client,
    shared_dir,
    tmp_path,
    model_cache,
    mirror,
    stylizer_factory,
) -> None:
    over: dict[str, object] = {"max_pending": PHOTOS, "workers": 2}
    if state == "redis":
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()  # loud if down
        over |= {"redis_url": REDIS_URL, "redis_prefix": f"totoshka-test:{uuid.uuid4().hex}"}
    settings = make_settings(emulator.url, tmp_path, model_cache, mirror, **over)
    bot = await start_bot(settings, stylizer_factory)
    try:
        base = Image.open(shared_dir / "images" / "content" / "amber.jpg").convert("RGB")
        base.thumbnail((96, 96))
        users = [await new_user("en", f"User{i}") for i in range(USERS)]
        photos = [
            [jpeg(ImageOps.posterize(base.rotate(90 * k), 8 - i)) for k in range(PHOTOS)]
            for i in range(USERS)
        ]
        # every photo of every user at the same moment
        await asyncio.gather(
            *(u.send_photo(p) for u, own in zip(users, photos, strict=True) for p in own)
        )
        pickers = await asyncio.gather(*(pickers_of(u) for u in users))
        # every style button pressed at the same moment
        presses = await asyncio.gather(
            *(u.press(p, WAVE) for u, mine in zip(users, pickers, strict=True) for p in mine)
        )
        for user in users:
            results = await results_of(user)
            assert len(results) == PHOTOS, (state, user, len(results))
        expired = TEXTS.get("en", "photo_expired")
        for query_id in presses:
            answer = await client.callback_answer(query_id)
            assert answer is not None and answer.get("text") != expired, answer
    finally:
        await bot.stop()


async def pickers_of(user) -> list:
    pickers: list = []
    while len(pickers) < PHOTOS:
        pickers.append(
            await user.wait_for_message(
                lambda m: m.text == TEXTS.get("en", "pick_style"), timeout=WAIT
            )
        )
    return pickers


async def results_of(user) -> list:
    deadline = asyncio.get_running_loop().time() + WAIT * 3
    while True:
        done = [m for m in await user.messages() if m.photo]
        if len(done) >= PHOTOS or asyncio.get_running_loop().time() > deadline:
            return done
        await asyncio.sleep(0.5)
