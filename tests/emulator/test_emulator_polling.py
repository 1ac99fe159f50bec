"""A real aiogram Dispatcher polling the emulator; webhooks; injected faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import (
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiohttp import web
from emulator_helpers import jpeg

from totoshka.emulator import EmulatorClient, EmulatorServer, SimUser


def echo_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Van Gogh", callback_data="style:vg")]]
        )
        await message.answer(f"Hi {message.from_user.first_name}!", reply_markup=markup)  # type: ignore[union-attr]

    @router.message(Command("echo"))
    async def echo(message: Message) -> None:
        await message.answer((message.text or "").removeprefix("/echo ").upper())

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        largest = message.photo[-1]  # type: ignore[index]
        await message.answer(f"{largest.width}x{largest.height}")

    @router.callback_query(F.data.startswith("style:"))
    async def style(query: CallbackQuery) -> None:
        await query.answer("Painting…")
        await query.message.edit_text(f"Chosen {query.data}")  # type: ignore[union-attr]

    return router


@contextlib.asynccontextmanager
async def polling(bot: Bot) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher()
    dispatcher.include_router(echo_router())
    task = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=5)
    )
    try:
        yield dispatcher
    finally:
        await dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_dispatcher_handles_commands_photos_and_button_presses(
    bot: Bot, client: EmulatorClient
) -> None:
    user = await client.create_user("Alice", language_code="ru")
    async with polling(bot):
        await user.send_text("/start")
        greeting = await user.wait_for_message(lambda m: m.buttons)
        assert greeting.text == "Hi Alice!"

        query_id = await user.press(greeting, "Van Gogh")
        edited = await user.wait_for_message(lambda m: m.text == "Chosen style:vg")
        assert edited.message_id == greeting.message_id and edited.edit_count == 1
        assert await client.callback_answer(query_id) == {"text": "Painting…", "show_alert": False}

        await user.send_text("/echo hello")
        assert (await user.wait_for_message()).text == "HELLO"

        await user.send_photo(jpeg(4000, 3000))
        assert (await user.wait_for_message()).text == "1280x960"


async def test_second_poller_conflicts_and_webhook_blocks_polling(
    bot: Bot, server: EmulatorServer, client: EmulatorClient
) -> None:
    waiting = asyncio.create_task(bot.get_updates(timeout=30))
    while server.world.bots.get(424242) is None or server.world.bots[424242].poll_generation < 1:
        await asyncio.sleep(0.01)  # until the first poll is waiting on the server
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await waiting

    await bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    await bot.delete_webhook()

    user = await client.create_user()
    await user.send_text("/start@emulator_424242_bot now")
    [update] = await bot.get_updates()
    assert update.message is not None and update.message.text == "/start@emulator_424242_bot now"
    assert update.message.entities is not None
    assert (update.message.entities[0].type, update.message.entities[0].length) == (
        "bot_command",
        len("/start@emulator_424242_bot"),
    )
    assert await bot.get_updates(offset=update.update_id + 1) == []


async def test_webhook_delivery_with_secret_and_retry(bot: Bot, client: EmulatorClient) -> None:
    received: list[tuple[dict[str, object], str | None]] = []
    answers = iter([500])  # the first delivery fails, later ones succeed

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        return web.Response(status=next(answers, 200))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        user = await client.create_user()
        await user.send_text("hello webhook")
        for _ in range(200):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(received) >= 2
        assert received[0][0] == received[1][0]  # the failed update was delivered again
        assert received[0][1] == "s3cret"
        assert received[1][0]["message"]["text"] == "hello webhook"  # type: ignore[index]
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook")
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


async def test_injected_faults_reach_aiogram_as_telegram_errors(
    bot: Bot, client: EmulatorClient, user: SimUser
) -> None:
    await client.inject_fault("sendMessage", status=429, retry_after=3, count=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(user.id, "hi")
        assert caught.value.retry_after == 3
        assert "Too Many Requests: retry after 3" in caught.value.message
    await bot.send_message(user.id, "finally")

    await client.inject_fault("sendMessage", status=502)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_message(user.id, "hi")

    # executed=True: Telegram delivered the message but the answer was lost.
    await client.inject_fault("sendMessage", status=500, executed=True)
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.send_message(user.id, "delivered anyway")

    texts = [m.text for m in await user.messages()]
    assert texts == ["finally", "delivered anyway"]
    calls = await client.calls("sendMessage")
    assert [c["status"] for c in calls] == [429, 429, 200, 502, 500]
    assert await client.successful_calls("sendMessage") == 2


async def test_probabilistic_faults_replay_with_a_seed(
    bot: Bot, client: EmulatorClient, user: SimUser
) -> None:
    async def outcomes() -> list[bool]:
        await client.clear_faults()
        await client.inject_fault("getMe", status=502, count=None, probability=0.5, seed=7)
        result = []
        for _ in range(12):
            try:
                await bot.get_me()
                result.append(True)
            except TelegramServerError:
                result.append(False)
        return result

    first, second = await outcomes(), await outcomes()
    assert first == second
    assert True in first and False in first


async def test_aiogram_webhook_server_and_reply_in_the_response(
    bot: Bot, client: EmulatorClient
) -> None:
    """aiogram's own webhook handler checks the secret and answers with a method call."""
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler

    router = Router()

    @router.message(Command("ping"))
    async def ping(message: Message) -> object:
        return message.answer("pong")  # returned, not awaited: sent in the webhook answer

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    app = web.Application()
    SimpleRequestHandler(
        dispatcher, bot, handle_in_background=False, secret_token="abc_123"
    ).register(app, path="/tg")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/tg", secret_token="abc_123")
        user = await client.create_user()
        await user.send_text("/ping")
        reply = await user.wait_for_message(timeout=10)
        assert reply.text == "pong"
        assert (await bot.get_webhook_info()).pending_update_count == 0
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


async def test_slow_answer_times_out_the_bot_but_the_send_still_happens(
    bot: Bot, client: EmulatorClient, user: SimUser
) -> None:
    """A delay fault: the bot's request times out, yet Telegram delivers the message anyway."""
    await client.inject_fault("sendMessage", status=None, delay=1.0)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(user.id, "slow", request_timeout=0.2)
    delivered = await user.wait_for_message(lambda m: m.text == "slow", timeout=10)
    assert delivered.from_bot
    [call] = await client.calls("sendMessage")
    assert call["ok"] and call["executed"] and call["duration"] >= 1.0
