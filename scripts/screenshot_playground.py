"""Make the README's screenshot of the playground: a real chat with the real bot.

    .venv/bin/python scripts/screenshot_playground.py            # docs/screenshots/playground.png
    .venv/bin/python scripts/screenshot_playground.py --style wave --output /tmp/p.png

A manual step (not a test): it starts a playground exactly like `totoshka
playground` (models pulled on first use; set TOTOSHKA_MODEL_MIRROR for the offline
mirror), drives headless Chromium from Debian (`scripts/install-browser.sh`) with
Playwright – /start, upload a photo, pick a style – and saves the chat once the
stylized photo has rendered. The default photo is scikit-image's public-domain
`coffee` sample, so the published screenshot shows only pictures we may publish.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from totoshka.engine.catalog import load_catalog
from totoshka.engine.settings import EngineSettings
from totoshka.playground.runner import Playground, PlaygroundOptions, prepare_models

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def shoot(photo: Path, style: str, output: Path, width: int, height: int) -> None:
    title = load_catalog().style(style).title["en"]
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with Playground(PlaygroundOptions(port=0)) as playground, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": width, "height": height})
        await page.goto(playground.url)
        await page.wait_for_selector("#user-name:has-text('id ')")
        await page.fill("#text", "/start")
        await page.press("#text", "Enter")
        await page.wait_for_selector(".row.in")
        await page.set_input_files("#photo-input", str(photo))
        button = page.get_by_role("button", name=title, exact=True)
        await button.wait_for(timeout=60_000)
        await button.click()
        result = page.locator(".row.in", has=page.locator("img.photo")).filter(has_text=title)
        await result.wait_for(timeout=600_000)
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.row.in img.photo')]"
            ".every((img) => img.complete && img.naturalWidth > 0)"
        )
        await page.evaluate("document.getElementById('toast').hidden = true")
        await page.evaluate("document.getElementById('chat').scrollTop = 1e9")
        await asyncio.sleep(0.5)
        output.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(output))
        await browser.close()


def _public_domain_photo() -> Path:
    from PIL import Image
    from skimage import data

    path = Path(tempfile.mkdtemp(prefix="totoshka-shot-")) / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path, quality=92)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=None, help="default: skimage's coffee")
    parser.add_argument("--style", default="scream", help="a built-in style id (default: scream)")
    parser.add_argument("--output", type=Path, default=REPO / "docs/screenshots/playground.png")
    parser.add_argument("--width", type=int, default=760)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args()
    if args.photo is None:
        args.photo = _public_domain_photo()
    if not args.photo.is_file():
        print(f"no photo at {args.photo}", file=sys.stderr)
        return 1
    prepare_models(EngineSettings())
    asyncio.run(shoot(args.photo, args.style, args.output, args.width, args.height))
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
