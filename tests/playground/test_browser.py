"""The playground in a real browser: headless Chromium, driven by Playwright.

Two layers, both as a user would do it – type, upload, tap, look:

* ``test_page_with_scripted_bot``: the page and the runner alone, against a small
  scripted aiogram bot (``scripted_bot.py``): a status message edited in place, a
  result photo, a downloadable file, a second tab being a second user, the
  language picker. Fast, and independent of the real bot's wording.
* ``test_playground_command_stylizes_a_photo``: the acceptance test – the real
  ``totoshka playground`` command (models from the offline mirror into a fresh
  cache), /start, upload a real photo, pick a style, get the stylized photo and the
  full-resolution file, then Ctrl+C and a clean exit.

Screenshots go to the test's ``tmp_path`` and to ``test-output/`` at the repo root.
Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import sys
from pathlib import Path

import pytest
from PIL import Image
from playground_helpers import keep_screenshot
from playwright.async_api import Browser, Page, expect

from totoshka.bot.texts import Texts
from totoshka.playground.runner import Playground, PlaygroundOptions

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 760, "height": 1100}
RESULT_TIMEOUT_MS = 300_000  # a CPU stylization on a busy 2-core CI machine, generously


def content_photo(shared_dir: Path) -> Path:
    return shared_dir / "images" / "content" / "amber.jpg"


async def send_text(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def wait_for_loaded_image(page: Page, selector: str, timeout_ms: int) -> None:
    """Until some image matching ``selector`` has really decoded (not just been inserted)."""
    await page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector)]
              .some((img) => img.complete && img.naturalWidth > 0)""",
        arg=selector,
        timeout=timeout_ms,
    )


async def download_bytes(page: Page, link_selector: str) -> bytes:
    """Fetch what a download link points to, through the page's own origin and cookies."""
    href = await page.locator(link_selector).last.evaluate("(a) => a.href")  # absolute
    assert href, f"{link_selector} has no href"
    response = await page.request.get(href)
    assert response.ok, f"GET {href}: {response.status}"
    return await response.body()


async def test_page_with_scripted_bot(browser: Browser, tmp_path: Path, shared_dir: Path) -> None:
    log: list[str] = []
    options = PlaygroundOptions(
        port=0,
        bot_command=[sys.executable, str(HERE / "scripted_bot.py")],
        ready_timeout=120,
        log_level="INFO",
    )
    async with Playground(options, echo=log.append) as playground:
        context = await browser.new_context(viewport=VIEWPORT)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(playground.url)
        await expect(page.locator("#user-name")).to_contain_text("id ")

        await send_text(page, "/start")
        await expect(page.locator(".row.out").first).to_contain_text("/start")
        await expect(page.locator(".row.in").first).to_contain_text("Send me a photo")

        await page.set_input_files("#photo-input", str(content_photo(shared_dir)))
        await expect(page.locator(".row.out img.photo")).to_have_count(1)
        await page.get_by_role("button", name="Sepia").click()

        # One status message, edited in place (queued -> working -> done), no spam.
        status = page.locator(".row.in", has_text="Done")
        await expect(status).to_have_count(1, timeout=60_000)
        await expect(status.locator(".meta")).to_contain_text("edited")
        await expect(page.locator(".row.in", has_text="In line")).to_have_count(0)

        await wait_for_loaded_image(page, ".row.in img.photo", 60_000)
        await expect(page.locator(".row.in .doc a.download")).to_have_count(1, timeout=60_000)
        document = await download_bytes(page, ".row.in .doc a.download")
        assert Image.open(io.BytesIO(document)).size == Image.open(content_photo(shared_dir)).size

        shot = tmp_path / "playground-scripted-bot.png"
        await page.screenshot(path=str(shot))
        keep_screenshot(shot)

        # Another tab is another Telegram user, with an empty chat and its own language.
        second = await context.new_page()
        await second.goto(playground.url)
        await expect(second.locator("#user-name")).to_contain_text("id ")
        first_name = await page.locator("#user-name").inner_text()
        assert await second.locator("#user-name").inner_text() != first_name
        await expect(second.locator(".row")).to_have_count(0)
        await second.select_option("#lang", "ru")
        user_id = json.loads(await second.evaluate("sessionStorage['totoshka.playground.user']"))
        await expect(second.locator("#toast")).to_contain_text("русский")
        response = await second.request.get(f"{playground.url}_emulator/users/{user_id['id']}")
        assert (await response.json())["result"]["language_code"] == "ru"
        await expect(second.locator("#text")).to_have_attribute(
            "placeholder", "Сообщение  (например, /start)"
        )

        # Several photos at once go as one album, shown as one grid.
        photos = [content_photo(shared_dir), shared_dir / "images" / "content" / "flowers.jpg"]
        await second.set_input_files("#photo-input", [str(p) for p in photos])
        await expect(second.locator(".album.out .row img.photo")).to_have_count(2)

        assert errors == [], errors
        await context.close()


async def _read_url(process: asyncio.subprocess.Process, timeout: float) -> str:
    """The URL line `totoshka playground` prints on stdout once the bot is polling."""
    assert process.stdout is not None
    prefix = "Totoshka playground: "
    async with asyncio.timeout(timeout):
        while line := await process.stdout.readline():
            text = line.decode().strip()
            if text.startswith(prefix):
                return text[len(prefix) :]
    raise AssertionError("totoshka playground exited before printing its URL")


async def test_playground_command_stylizes_a_photo(
    browser: Browser, tmp_path: Path, shared_dir: Path, mirror_env: Path
) -> None:
    from totoshka.engine.catalog import load_catalog

    style_title = load_catalog().style("wave").title["en"]
    full_button = Texts.load().get("en", "btn_full")
    stderr_path = tmp_path / "playground.stderr.log"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "totoshka", "playground", "--port", "0", "--no-open",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=tmp_path,
        )  # fmt: skip
    try:
        try:
            url = await _read_url(process, timeout=300)
        except (AssertionError, TimeoutError):
            pytest.fail(f"no URL from totoshka playground:\n{stderr_path.read_text()[-4000:]}")
        # Models came from the mirror into the test's own cache, on the first start.
        assert (mirror_env / "ml5" / "wave" / "manifest.json").is_file()

        page = await browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url)
        await expect(page.locator("#user-name")).to_contain_text("id ")

        await send_text(page, "/start")
        await expect(page.locator(".row.in").first).to_be_visible(timeout=60_000)

        await page.set_input_files("#photo-input", str(content_photo(shared_dir)))
        picker = page.get_by_role("button", name=style_title, exact=True)
        await expect(picker).to_be_visible(timeout=60_000)
        # Thirty styles come ten a page: the arrows edit the picker in place.
        await page.get_by_role("button", name="▶", exact=True).click()
        # "2/N": a substring match (Playwright cannot take a pattern with a slash here)
        second_page = page.get_by_role("button", name="2/")
        await expect(second_page).to_be_visible(timeout=60_000)
        await expect(picker).to_have_count(0)
        await page.get_by_role("button", name="◀", exact=True).click()
        await expect(picker).to_be_visible(timeout=60_000)
        await picker.click()

        # The stylized photo arrives as a bot photo whose caption names the style.
        result = page.locator(".row.in", has=page.locator("img.photo")).filter(has_text=style_title)
        await expect(result).to_have_count(1, timeout=RESULT_TIMEOUT_MS)
        await wait_for_loaded_image(page, ".row.in img.photo", 60_000)
        # The status message was edited in place rather than repeated.
        await expect(page.locator(".row.in .meta", has_text="edited").first).to_be_visible()

        await result.get_by_role("button", name=full_button).click()
        link = ".row.in .doc a.download"
        await expect(page.locator(link)).to_have_count(1, timeout=RESULT_TIMEOUT_MS)
        full = Image.open(io.BytesIO(await download_bytes(page, link)))
        assert min(full.size) > 0

        await result.scroll_into_view_if_needed()
        shot = tmp_path / "playground-real-bot.png"
        await page.screenshot(path=str(shot))
        keep_screenshot(shot)
        assert errors == [], errors
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # what Ctrl+C does
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                pytest.fail("totoshka playground did not stop within 60 s of Ctrl+C")
    assert process.returncode == 0, stderr_path.read_text()[-4000:]
