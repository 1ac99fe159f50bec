"""Fixtures for the playground tests: a headless Chromium through Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playground_helpers import CHROMIUM_ARGS, chromium_executable
from playwright.async_api import Browser, async_playwright


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium, closed after the test; fails (never skips) without one."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
