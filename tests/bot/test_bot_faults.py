"""Telegram misbehaves: 429 with retry_after and 502 on sendPhoto — still exactly once.

The emulator answers the first few sendPhoto calls with errors that did NOT take
effect (as Telegram's 429 and a gateway's 502 do); the delivery retries the same
painted picture — waiting ``retry_after`` on 429, backing off on 502 — and records
the sent message as a checkpoint, so every user ends up with one result.
"""

from __future__ import annotations

import asyncio

import pytest
from bot_helpers import WAIT, RunningBot

from totoshka.bot.texts import Texts

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_429_and_502_on_send_photo_still_deliver_once(
    bot: RunningBot, new_user, client, photos, lang: str
) -> None:
    await client.inject_fault("sendPhoto", status=429, retry_after=1, count=3)
    await client.inject_fault("sendPhoto", status=502, count=3)
    await client.clear_calls()
    users = [await new_user(lang, f"U{i}") for i in range(3)]
    pickers = []
    for user, name in zip(users, ["amber", "flowers", "venice-boat"], strict=True):
        await user.send_photo(photos[name])
        pickers.append(
            await user.wait_for_message(
                lambda m: m.text == TEXTS.get(lang, "pick_style"), timeout=WAIT
            )
        )
    title = TEXTS.get(lang, "pick_style") and (
        "The Great Wave off Kanagawa" if lang == "en" else "Большая волна в Канагаве"
    )
    await asyncio.gather(*(u.press(p, title) for u, p in zip(users, pickers, strict=True)))
    for user in users:
        await user.wait_for_message(
            lambda m: m.text == TEXTS.get(lang, "status_done", style=title), timeout=WAIT
        )
    await asyncio.sleep(1.0)
    for user in users:
        results = [m for m in await user.messages() if m.photo]
        assert len(results) == 1, f"{user}: {len(results)} results"
    calls = await client.calls("sendPhoto")
    assert sum(1 for c in calls if c["executed"]) == 3
    assert sum(1 for c in calls if not c["executed"]) == 6  # every fault was met and retried


async def test_status_edits_under_flood_do_not_break_delivery(
    bot: RunningBot, new_user, client, photos
) -> None:
    """429 on editMessageText (status line) must not cost the user the picture."""
    await client.inject_fault("editMessageText", status=429, retry_after=1, count=4)
    user = await new_user("en")
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, "Udnie")
    await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    await asyncio.sleep(1.0)
    assert len([m for m in await user.messages() if m.photo]) == 1


async def test_poison_job_gets_a_clear_apology(
    emulator, client, new_user, photos, tmp_path, model_cache, mirror, stylizer_factory
) -> None:
    """A job that keeps failing ends, and the user is told — never silence."""
    from bot_helpers import make_settings, start_bot

    settings = make_settings(
        emulator.url, tmp_path, model_cache, mirror, max_attempts=1, send_retries=1
    )
    running = await start_bot(settings, stylizer_factory)
    try:
        await client.inject_fault("getFile", status=502, count=1)
        user = await new_user("ru")
        await user.send_photo(photos["amber"])
        picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
        await user.press(picker, "Удни")
        reason = TEXTS.get("ru", "err_generic")
        apology = await user.wait_for_message(
            lambda m: m.text == TEXTS.get("ru", "status_failed", reason=reason), timeout=WAIT
        )
        assert apology
        assert not [m for m in await user.messages() if m.photo]
    finally:
        await running.stop()


async def test_slow_send_photo_still_delivers_once(
    bot: RunningBot, new_user, client, photos
) -> None:
    await client.inject_fault("sendPhoto", status=None, delay=3.0, count=1)
    await client.inject_fault("getFile", status=None, delay=1.0, count=1)
    user = await new_user("en")
    await user.send_photo(photos["flowers"])
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, "Udnie")
    await user.wait_for_message(
        lambda m: m.text == TEXTS.get("en", "status_done", style="Udnie"), timeout=WAIT
    )
    assert len([m for m in await user.messages() if m.photo]) == 1


async def test_user_who_blocked_the_bot_does_not_loop(
    bot: RunningBot, new_user, client, photos
) -> None:
    """403 from Telegram is final: the job ends at once instead of retrying for nothing."""
    await client.inject_fault("getFile", status=None, delay=1.0, count=1)
    user = await new_user("en")
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await user.press(picker, "Udnie")
    await user.wait_for_message(
        lambda m: m.text == TEXTS.get("en", "status_working", style="Udnie"), timeout=WAIT
    )
    await user.block_bot()
    queue = bot.app.queue
    for _ in range(200):
        stats = queue.stats()
        if stats["done"] + stats["failed"] >= 1:
            break
        await asyncio.sleep(0.1)
    assert queue.stats()["done"] == 1 and queue.stats()["failed"] == 0
    calls = await client.calls("sendPhoto")
    assert len(calls) == 1  # tried once, refused with 403, not retried


async def test_handler_failure_gets_an_apology_not_silence(
    bot: RunningBot, new_user, client
) -> None:
    await client.inject_fault("sendMessage", status=400, description="Bad Request: test", count=1)
    user = await new_user("ru")
    await user.send_command("help")
    reason = TEXTS.get("ru", "err_generic")
    answer = await user.wait_for_message(timeout=WAIT)
    assert answer.text == TEXTS.get("ru", "status_failed", reason=reason)


async def test_flood_wait_on_the_status_message_still_queues_the_job(
    bot: RunningBot, new_user, client, photos
) -> None:
    user = await new_user("en")
    await user.send_photo(photos["amber"])
    picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
    await client.inject_fault("sendMessage", status=429, retry_after=1, count=1)
    await user.press(picker, "Udnie")
    await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
    assert len([m for m in await user.messages() if m.photo]) == 1
