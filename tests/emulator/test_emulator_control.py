"""Simulated users' messages as the bot receives them, raw HTTP encodings, thread mode."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

import aiohttp
import pytest
from aiogram import Bot
from emulator_helpers import TOKEN, jpeg, make_bot

from totoshka.emulator import ControlError, EmulatorClient, EmulatorServer, SimUser


async def test_user_media_arrive_in_telegram_shapes(bot: Bot, client: EmulatorClient) -> None:
    user = await client.create_user("Bob", language_code="de")
    await user.send_photo(jpeg(2000, 1500), caption="/stylize please")
    await user.send_document(b"hello", "notes.txt", "text/plain", caption="doc")
    await user.send_sticker("🐱")
    await user.send_voice(duration=4)
    await user.send_video(width=640, height=480, duration=2)
    album = await user.send_album([jpeg(300, 200), jpeg(200, 300)], ["first", None])

    updates = await bot.get_updates()  # aiogram validates every update against its models
    photo, document, sticker, voice, video, first, second = (u.message for u in updates)
    assert photo is not None and photo.photo is not None
    assert [(p.width, p.height) for p in photo.photo][-1] == (1280, 960)
    assert photo.from_user is not None and photo.from_user.language_code == "de"
    assert photo.caption_entities is not None and photo.caption_entities[0].type == "bot_command"
    assert document is not None and document.document is not None
    assert (document.document.file_name, document.document.mime_type) == ("notes.txt", "text/plain")
    assert sticker is not None and sticker.sticker is not None and sticker.sticker.emoji == "🐱"
    assert voice is not None and voice.voice is not None and voice.voice.duration == 4
    assert video is not None and video.video is not None and video.video.width == 640
    assert first is not None and second is not None
    assert first.media_group_id == second.media_group_id == album[0].media_group_id
    assert first.caption == "first" and second.caption is None

    assert await client.download(document.document.file_id) == b"hello"
    file = await bot.get_file(photo.photo[-1].file_id)
    async with aiohttp.ClientSession() as http:
        url = f"{client.base_url}/file/bot{TOKEN}/{file.file_path}"
        async with http.get(url) as response:
            assert response.status == 200
            assert len(await response.read()) == photo.photo[-1].file_size
        async with http.get(f"{client.base_url}/file/bot{TOKEN}/photos/nope.jpg") as response:
            assert response.status == 404


async def test_pressing_a_missing_button_is_a_control_error(bot: Bot, user: SimUser) -> None:
    sent = await bot.send_message(user.id, "no buttons")
    with pytest.raises(ControlError) as caught:
        await user.press(sent.message_id, "nothing")
    assert caught.value.status == 404


async def test_wait_for_message_times_out_with_the_chat_in_the_error(user: SimUser) -> None:
    with pytest.raises(TimeoutError, match="no matching bot message"):
        await user.wait_for_message(timeout=0.2)


async def test_bot_api_accepts_every_encoding(server: EmulatorServer, user: SimUser) -> None:
    base = f"{server.url}/bot{TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/sendMessage", params={"chat_id": user.id, "text": "q"}) as r:
            assert (await r.json())["result"]["text"] == "q"
        markup = {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]}
        body = {"chat_id": user.id, "text": "j", "reply_markup": markup}
        async with http.post(f"{base}/sendMessage", json=body) as r:
            assert (await r.json())["result"]["reply_markup"] == markup
        form = {"chat_id": str(user.id), "text": "f", "reply_markup": json.dumps(markup)}
        async with http.post(f"{base}/SENDMESSAGE", data=form) as r:
            assert (await r.json())["result"]["text"] == "f"
        multipart = aiohttp.FormData()
        multipart.add_field("chat_id", str(user.id))
        multipart.add_field("photo", jpeg(100, 100), filename="p.jpg", content_type="image/jpeg")
        async with http.post(f"{base}/sendPhoto", data=multipart) as r:
            assert len((await r.json())["result"]["photo"]) == 2  # 90 px + original
        async with http.post(f"{base}/noSuchMethod") as r:
            assert (r.status, await r.json()) == (
                404,
                {"ok": False, "error_code": 404, "description": "Not Found"},
            )
        async with http.post(f"{server.url}/botnot-a-token/getMe") as r:
            assert r.status == 401 and (await r.json())["description"] == "Unauthorized"
        async with http.post(f"{base}/sendMessage", json={"text": "x"}) as r:
            assert (await r.json())["description"] == "Bad Request: chat_id is empty"


async def test_one_parameter_reader_serves_both_apis(server: EmulatorServer, user: SimUser) -> None:
    """Numbers and objects as text or as JSON values; bad ones are 400 in each API's wording."""
    base = f"{server.url}/bot{TOKEN}"
    control = f"{server.url}/_emulator/users/{user.id}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/getUpdates", params={"offset": "soon"}) as r:
            assert (r.status, (await r.json())["description"]) == (
                400,
                "Bad Request: invalid offset specified",
            )
        form = {"chat_id": str(user.id), "text": "re", "reply_parameters": '{"message_id": "1"}'}
        async with http.post(f"{base}/sendMessage", data=form) as r:
            reply = (await r.json())["result"]
            assert reply["reply_to_message"]["text"] == "/start"
        body = {"chat_id": user.id, "message_ids": f"[{reply['message_id']}]"}
        async with http.post(f"{base}/deleteMessages", json=body) as r:
            assert (await r.json())["result"] is True
        async with http.post(f"{base}/deleteMessages", json={**body, "message_ids": "[x]"}) as r:
            assert (await r.json())["description"] == (
                "Bad Request: can't parse message identifiers JSON object"
            )
        async with http.get(f"{control}/events", params={"after": "x"}) as r:
            assert (r.status, (await r.json())["description"]) == (400, "invalid after specified")
        # A browser's cross-origin POST without a preflight: JSON declared as text/plain.
        headers = {"Content-Type": "text/plain"}
        async with http.post(f"{control}/text", data='{"text": "plain"}', headers=headers) as r:
            assert (await r.json())["result"]["message"]["text"] == "plain"
        async with http.post(f"{control}/text", data="not json", headers=headers) as r:
            assert (r.status, (await r.json())["description"]) == (400, "can't parse JSON object")


def test_the_server_loads_neither_aiogram_nor_the_rest_of_the_project() -> None:
    """It must catch aiogram's mistakes, so it shares no code with aiogram or the bot."""
    code = (
        "import sys, totoshka.emulator.__main__, totoshka.emulator.control;"
        "print(' '.join(m for m in sys.modules if m.startswith(('aiogram', 'totoshka'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True
    ).stdout.split()
    assert "totoshka.emulator.server" in loaded
    outside = [
        m for m in loaded if m.split(".")[:2] not in (["totoshka"], ["totoshka", "emulator"])
    ]
    assert outside == [] and "totoshka.emulator.client" not in loaded


def test_server_in_a_thread_serves_synchronous_callers() -> None:
    with EmulatorServer().in_thread() as server:
        with urllib.request.urlopen(f"{server.url}/bot5:abc/getMe", timeout=10) as response:
            assert json.loads(response.read())["result"]["id"] == 5
        request = urllib.request.Request(
            f"{server.url}/_emulator/users",
            data=b'{"first_name": "Zed"}',
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["result"]["first_name"] == "Zed"


async def test_standalone_server_in_another_process() -> None:
    """``python -m totoshka.emulator``: what a bot in another OS process talks to."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "totoshka.emulator",
        "--port",
        "0",
        "--bot-id",
        "424242",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        url = line.split(" on ", 1)[1].split()[0]
        async with EmulatorClient(url) as client:  # no bot id: the server's default is used
            user = await client.create_user()
            await user.send_text("/start")
            bot = make_bot(url)
            try:
                [update] = await bot.get_updates()
                assert update.message is not None and update.message.text == "/start"
                await bot.send_message(user.id, "hello from the bot")
            finally:
                await bot.session.close()
            assert (await user.wait_for_message(new_only=False)).text == "hello from the bot"
    finally:
        process.terminate()
        await process.wait()


async def test_waiting_sees_each_version_of_a_quickly_edited_message(
    bot: Bot, user: SimUser
) -> None:
    sent = await bot.send_message(user.id, "10%")
    await bot.edit_message_text("50%", chat_id=user.id, message_id=sent.message_id)
    await bot.send_message(user.id, "next")
    seen = [await user.wait_for_message(timeout=5) for _ in range(3)]
    assert [(m.text, m.edit_count) for m in seen] == [("10%", 0), ("50%", 1), ("next", 0)]
    with pytest.raises(TimeoutError):
        await user.wait_for_message(timeout=0.1)
