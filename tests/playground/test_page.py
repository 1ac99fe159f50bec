"""The playground's server side without a browser: page routes, bot environment, start-up errors."""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from totoshka.emulator.app import bot_id_from_token
from totoshka.emulator.state import World
from totoshka.playground.page import create_page_app
from totoshka.playground.runner import (
    Playground,
    PlaygroundError,
    PlaygroundOptions,
    bot_environment,
    generate_token,
)

BOT_ID = 7_123_456_789


@pytest.fixture
async def page() -> AsyncIterator[tuple[TestClient, World]]:
    world = World(bot_name="Totoshka", default_bot_id=BOT_ID)
    client = TestClient(TestServer(create_page_app(world, BOT_ID)))
    await client.start_server()
    try:
        yield client, world
    finally:
        await client.close()


async def test_static_files_are_served_with_their_types(page: tuple[TestClient, World]) -> None:
    client, _ = page
    index = await client.get("/")
    assert index.status == 200
    assert index.content_type == "text/html"
    html = await index.text()
    assert 'src="app.js"' in html and 'href="style.css"' in html
    for path, content_type in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == content_type
        assert len(await response.read()) > 1000


async def test_config_names_the_bot(page: tuple[TestClient, World]) -> None:
    client, _ = page
    result = (await (await client.get("/_playground/config")).json())["result"]
    assert result["bot_id"] == BOT_ID
    assert result["bot_name"] == "Totoshka"
    assert result["control"] == "/_emulator"


async def test_control_api_shares_the_world(page: tuple[TestClient, World]) -> None:
    client, world = page
    response = await client.post("/_emulator/users", json={"first_name": "Ada"})
    user = (await response.json())["result"]
    assert world.users[user["id"]].first_name == "Ada"
    sent = await client.post(f"/_emulator/users/{user['id']}/text", json={"text": "/start"})
    assert sent.status == 200
    assert world.bot(BOT_ID).updates[-1]["message"]["text"] == "/start"


async def test_language_switch(page: tuple[TestClient, World]) -> None:
    client, world = page
    user = world.add_user("Boris", language_code="en")
    response = await client.patch(f"/_playground/users/{user.id}", json={"language_code": "ru"})
    assert response.status == 200
    assert world.users[user.id].language_code == "ru"
    bad = await client.patch(f"/_playground/users/{user.id}", json={"language_code": "xx"})
    assert bad.status == 400
    assert (await bad.json())["ok"] is False
    missing = await client.patch("/_playground/users/42", json={"language_code": "en"})
    assert missing.status == 404


async def test_reply_keyboard_route(page: tuple[TestClient, World]) -> None:
    client, world = page
    user = world.add_user("Chiara")
    response = await client.get(f"/_playground/users/{user.id}/keyboard")
    assert (await response.json())["result"] is None
    keyboard = {"keyboard": [[{"text": "Yes"}]], "one_time_keyboard": True}
    world.chat(world.bot(BOT_ID), user).reply_keyboard = keyboard
    response = await client.get(f"/_playground/users/{user.id}/keyboard")
    assert (await response.json())["result"] == keyboard


async def test_photo_upload_through_the_page_origin(
    page: tuple[TestClient, World], shared_dir: Path
) -> None:
    """Uploads go through the page's app, whose body limit must allow real photos."""
    client, world = page
    user = world.add_user("Dmitri")
    photo = shared_dir / "images" / "content" / "amber.jpg"
    form = FormData()
    form.add_field("photo", photo.read_bytes(), filename="amber.jpg", content_type="image/jpeg")
    response = await client.post(f"/_emulator/users/{user.id}/photo", data=form)
    assert response.status == 200, await response.text()
    update = world.bot(BOT_ID).updates[-1]["message"]
    assert update["photo"][-1]["width"] > 0


async def test_clips_and_stickers_upload_as_their_kinds(page: tuple[TestClient, World]) -> None:
    """The page uploads a GIF as an animation, a video as a video or a round video note,
    a WebP as a sticker (one multipart part named after the kind, as app.js does); the
    bot gets each as Telegram would hand it over."""
    av = pytest.importorskip("av")
    client, world = page
    user = world.add_user("Emma")
    frames = [Image.new("RGB", (48, 32), (i * 40, 90, 200)) for i in range(6)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    webp = io.BytesIO()
    Image.new("RGBA", (512, 256), (255, 0, 0, 128)).save(webp, "WEBP")
    mp4 = io.BytesIO()
    with av.open(mp4, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_image(frame.resize((64, 64)))))
        out.mux(stream.encode(None))
    uploads = [
        ("animation", gif.getvalue(), "cat.gif", "image/gif"),
        ("video", mp4.getvalue(), "walk.mp4", "video/mp4"),
        ("video_note", mp4.getvalue(), "walk.mp4", "video/mp4"),
        ("sticker", webp.getvalue(), "hi.webp", "image/webp"),
    ]
    for kind, data, name, mime in uploads:
        form = FormData()
        form.add_field(kind, data, filename=name, content_type=mime)
        response = await client.post(f"/_emulator/users/{user.id}/{kind}", data=form)
        assert response.status == 200, await response.text()
    animation, video, note, sticker = (u["message"] for u in world.bot(BOT_ID).updates[-4:])
    assert animation["animation"]["mime_type"] == "video/mp4"  # a GIF becomes an MP4
    assert animation["document"]["file_id"] == animation["animation"]["file_id"]
    assert (video["video"]["width"], video["video"]["height"]) == (64, 64)
    assert note["video_note"]["length"] == 64 and "video" not in note
    assert (sticker["sticker"]["width"], sticker["sticker"]["is_video"]) == (512, False)
    played = await client.get(f"/_emulator/files/{animation['animation']['file_id']}")
    assert played.content_type == "video/mp4"  # what <video> needs to play it


def test_generated_token_is_accepted_by_the_emulator() -> None:
    token = generate_token()
    assert bot_id_from_token(token) == int(token.split(":")[0])
    assert generate_token() != token


def test_bot_environment_overrides_mode_switches(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "TOTOSHKA_BOT_TOKEN": "123:real-token",
        "TOTOSHKA_WEBHOOK_URL": "https://example.org/hook",
        "TOTOSHKA_REDIS_URL": "redis://x",
        "TOTOSHKA_MODEL_MIRROR": "relative/mirror",
        "TOTOSHKA_CACHE_DIR": "https://not-a-path.example/",
    }
    env = bot_environment(
        base, token="1:t", api_url="http://127.0.0.1:1", state_dir=tmp_path, log_level="INFO"
    )
    assert env["TOTOSHKA_BOT_TOKEN"] == "1:t"
    assert env["TOTOSHKA_API_URL"] == "http://127.0.0.1:1"
    assert "TOTOSHKA_WEBHOOK_URL" not in env and "TOTOSHKA_REDIS_URL" not in env
    assert env["TOTOSHKA_JOBS_BACKEND"] == "embedded"
    assert env["TOTOSHKA_QUEUE_PATH"] == str(tmp_path / "jobs.sqlite3")
    assert Path(env["TOTOSHKA_MODEL_MIRROR"]).is_absolute()  # the child runs elsewhere
    assert env["TOTOSHKA_CACHE_DIR"] == base["TOTOSHKA_CACHE_DIR"]  # URLs stay as they are
    assert env["PATH"] == "/usr/bin"


async def test_a_bot_that_dies_at_start_up_is_reported() -> None:
    lines: list[str] = []
    crash = "import sys; print('boom: no token'); sys.exit(3)"
    options = PlaygroundOptions(port=0, bot_command=[sys.executable, "-c", crash])
    playground = Playground(options, echo=lines.append)
    with pytest.raises(PlaygroundError, match="status 3") as raised:
        await playground.start()
    assert "boom: no token" in str(raised.value)
    assert not playground.state_dir.exists()  # the temporary folder is cleaned up


async def test_start_and_stop_with_a_scripted_bot() -> None:
    options = PlaygroundOptions(
        port=0, bot_command=[sys.executable, str(Path(__file__).with_name("scripted_bot.py"))]
    )
    playground = Playground(options, echo=lambda line: None)
    await playground.start()
    try:
        assert playground.url.startswith("http://127.0.0.1:")
        assert playground.emulator.world.bot(playground.bot_id).poll_generation > 0
        assert playground.bot_pid is not None
    finally:
        await playground.stop()
    assert playground.bot_pid is None
    assert not playground.state_dir.exists()
