"""Webhook mode: the emulator posts updates to the bot's aiohttp server.

setWebhook carries a ``secret_token``; the emulator sends it back in
``X-Telegram-Bot-Api-Secret-Token`` and the bot refuses any request without it.
The operator's endpoints (/metrics, /healthz, /readyz) share the webhook server.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from bot_helpers import (
    TOKEN,
    WAIT,
    free_port,
    http_get,
    make_settings,
    metric,
    scrape_until,
    wait_until_ready,
)

from totoshka.bot.app import BotApp
from totoshka.bot.texts import Texts
from totoshka.emulator.server import EmulatorServer

pytestmark = [pytest.mark.e2e]

TEXTS = Texts.load()


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_webhook_mode_with_secret(
    emulator: EmulatorServer,
    client,
    new_user,
    photos,
    tmp_path: Path,
    model_cache,
    mirror,
    stylizer_factory,
    lang: str,
) -> None:
    port = free_port()
    settings = make_settings(
        emulator.url,
        tmp_path,
        model_cache,
        mirror,
        webhook_url=f"http://127.0.0.1:{port}",
        webhook_secret="s3cret-webhook-value",
        webhook_port=port,
    )
    app = BotApp(settings, stylizer_factory=stylizer_factory)
    runner = await app.start_webhook()
    try:
        info = await client.bot_info()
        assert info["webhook"]["url"] == f"http://127.0.0.1:{port}/telegram/webhook"
        user = await new_user(lang)
        await user.send_command("help")
        answer = await user.wait_for_message(timeout=WAIT)
        assert answer.text == TEXTS.get(lang, "help", seconds=60)

        await user.send_photo(photos["amber"])
        picker = await user.wait_for_message(lambda m: m.buttons, timeout=WAIT)
        await user.press(picker, "Udnie" if lang == "en" else "Удни")
        result = await user.wait_for_message(lambda m: m.photo, timeout=WAIT)
        assert result.photo

        # /metrics, /healthz and /readyz on the same server, beside the webhook path
        base = f"http://127.0.0.1:{port}"
        status, body = await http_get(f"{base}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        answers = await wait_until_ready(base)
        assert answers[-1] == {"status_code": 200, "status": "ready"}, answers
        text, samples = await scrape_until(
            base, lambda s: metric(s, "totoshka_jobs_done_total", lane="photos") == 1
        )
        assert metric(samples, "totoshka_jobs_done_total", lane="photos") == 1
        assert (metric(samples, "totoshka_updates_total", type="message", outcome="ok") or 0) >= 2
        assert TOKEN.split(":", 1)[1] not in text and "s3cret-webhook-value" not in text

        # A forged update without the secret is refused.
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        async with aiohttp.ClientSession() as http:
            forged = {
                "update_id": 999999,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 1, "type": "private"},
                    "text": "/help",
                },
            }
            async with http.post(url, json=forged) as response:
                assert response.status == 401
            headers = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            async with http.post(url, json=forged, headers=headers) as response:
                assert response.status == 401
    finally:
        await runner.cleanup()
        await app.close()
