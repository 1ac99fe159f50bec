"""Fixtures for the emulator tests: a server in the test's loop, a real aiogram Bot, a driver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from emulator_helpers import TOKEN, make_bot

from totoshka.emulator import EmulatorClient, EmulatorServer, Limits, SimUser


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def server(limits: Limits) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(limits=limits, webhook_retry_delay=0.05) as running:
        yield running


@pytest.fixture
async def bot(server: EmulatorServer) -> AsyncIterator[Bot]:
    bot = make_bot(server.url)
    yield bot
    await bot.session.close()


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(server.url, bot_token=TOKEN) as driver:
        yield driver


@pytest.fixture
async def user(client: EmulatorClient) -> SimUser:
    """A user who has already started the bot (so the bot may write to them)."""
    player = await client.create_user("Alice", language_code="ru")
    await player.send_text("/start")
    return player
