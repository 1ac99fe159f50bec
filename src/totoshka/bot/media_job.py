"""The job handler's paths for what is not a photo: clips and stickers.

Each kind goes back as itself — an animation through sendAnimation, a video
through sendVideo (sound kept: the engine copies the audio stream), a round
video note through sendVideoNote, a sticker through sendSticker — so a user sees
their GIF repainted in the chat where a GIF would be.

A clip paints for seconds to a minute, so its one status message shows the
percentage, edited at most every ``progress_every`` seconds (Telegram
rate-limits edits to a message), and /cancel is looked for at the same beat
(`totoshka.bot.cancel`). The painting runs in the pool's CPU executor and
reports through a plain float the loop reads: a thread must not touch the loop.
The clip goes through temporary files (FFmpeg reads and writes files), removed
whatever happens.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram.types import BufferedInputFile, Message

from totoshka.bot.job import UPLOAD_MAX_BYTES, JobFailed, JobPayload
from totoshka.bot.keyboards import result_keyboard
from totoshka.bot.texts import Translator
from totoshka.engine.sticker import paint_sticker as paint

if TYPE_CHECKING:
    from totoshka.bot.job_handler import JobHandler

# what the engine's refusals (VideoRejected.reason) say to a user
CLIP_REASONS = {
    "too_long": "err_clip_too_long",
    "not_video": "err_bad_clip",
    "no_frames": "err_bad_clip",
}


@dataclass(frozen=True)
class ClipSettings:
    """The operator's caps for clips (engine settings) and the status beat."""

    max_side: int = 720
    max_seconds: float = 60.0
    max_fps: float = 30.0
    consistency: str | None = None  # None: the engine's default method
    progress_every: float = 3.0


class _Progress:
    """The painted fraction: written by the painting thread, read by the loop."""

    def __init__(self) -> None:
        self.fraction = 0.0

    def __call__(self, fraction: float) -> None:
        self.fraction = fraction


async def _paint_with_status(
    handler: JobHandler,
    job: JobPayload,
    run: Callable[[_Progress, threading.Event], Any],
    status: Callable[[int], str],
    ctx: Any,
) -> Any:
    """Run ``run`` off the loop, editing the status with its percentage and setting
    its cancel event when /cancel arrives. Returns what ``run`` returns."""
    progress, cancel = _Progress(), threading.Event()
    started = time.time()
    work: asyncio.Future[Any] = asyncio.ensure_future(ctx.run_blocking(run, progress, cancel))
    shown = -1
    while True:
        done, _ = await asyncio.wait({work}, timeout=handler.clips.progress_every)
        if done:
            return work.result()
        if await handler.cancel_requested(job, started):
            cancel.set()
        percent = min(99, int(progress.fraction * 100))
        if percent != shown and not cancel.is_set():
            shown = percent
            await handler.edit_status(job, status(percent))


def _send(handler: JobHandler, job: JobPayload, data: bytes, info: Any, t: Translator, title: str):
    """The send call for the clip's kind (a video note has no caption)."""
    bot, name = handler.bot, f"totoshka-{job.style or 'own'}.mp4"
    common = _common(job, t)
    caption = t("result_caption", style=title, strength=job.strength)
    duration = max(1, round(info.duration))
    upload = BufferedInputFile(data, name)
    if job.kind == "video_note":
        return "sendVideoNote", lambda: bot.send_video_note(
            video_note=upload, length=info.width, duration=duration, **common
        )
    if job.kind == "animation":
        return "sendAnimation", lambda: bot.send_animation(
            animation=upload,
            width=info.width,
            height=info.height,
            duration=duration,
            caption=caption,
            **common,
        )
    return "sendVideo", lambda: bot.send_video(
        video=upload,
        width=info.width,
        height=info.height,
        duration=duration,
        supports_streaming=True,
        caption=caption,
        **common,
    )


def _common(job: JobPayload, t: Translator) -> dict[str, Any]:
    common: dict[str, Any] = {"chat_id": job.chat_id}
    if job.ref:
        common["reply_markup"] = result_keyboard(t, job.ref, job.strength, full=False)
    if job.reply_to:
        common["reply_parameters"] = {
            "message_id": job.reply_to,
            "allow_sending_without_reply": True,
        }
    return common


async def paint_clip(
    handler: JobHandler, job: JobPayload, t: Translator, title: str, ctx: Any
) -> Message | None:
    """Paint and send one clip; None when the user cancelled it on the way."""
    import totoshka.engine.video as video  # PyAV, OpenCV, torch: only where clips are painted

    stylizer = await handler.stylizer(ctx)  # frame by frame: the Stylizer's own networks
    style = await handler.painted_style(job, await handler.painter(ctx), ctx)
    data = await handler.fetch_bytes(job.photo)
    caps = handler.clips
    limits = video.VideoLimits(
        max_side=caps.max_side, max_seconds=caps.max_seconds, max_fps=caps.max_fps
    )
    with tempfile.TemporaryDirectory(prefix="totoshka-clip-") as folder:
        source, target = Path(folder) / "source", Path(folder) / "painted.mp4"
        source.write_bytes(data)
        del data

        def run(progress: _Progress, cancel: threading.Event) -> Any:
            return video.paint_clip(
                stylizer,
                source,
                target,
                style,
                strength=job.strength / 100,
                preserve_colors=job.preserve_colors,
                method=caps.consistency,
                output="mp4",
                square=job.kind == "video_note",
                limits=limits,
                progress=progress,
                cancel=cancel,
            )

        try:
            info = await _paint_with_status(
                handler,
                job,
                run,
                lambda percent: t("status_painting_clip", style=title, percent=percent),
                ctx,
            )
        except video.VideoCancelled:
            return None
        except video.VideoRejected as e:
            key = CLIP_REASONS.get(e.reason, "err_bad_clip")
            raise JobFailed(key, limit=round(caps.max_seconds)) from e
        if target.stat().st_size > UPLOAD_MAX_BYTES:
            raise JobFailed("err_clip_too_big_upload")
        painted = target.read_bytes()
    what, call = _send(handler, job, painted, info, t, title)
    message: Message = await handler.retry.call(what, call)
    return message


async def paint_sticker(handler: JobHandler, job: JobPayload, t: Translator, ctx: Any) -> Message:
    """Paint a static sticker and send it back as a sticker (WebP, 512 px, alpha kept)."""
    stylizer = await handler.painter(ctx)  # `Engine.paint` where the handler has the engine
    style = await handler.painted_style(job, stylizer, ctx)
    data = await handler.fetch_bytes(job.photo)
    webp: bytes = await ctx.run_blocking(
        lambda: paint(
            stylizer,
            data,
            style,
            strength=job.strength / 100,
            preserve_colors=job.preserve_colors,
        )
    )
    common = _common(job, t)

    def send() -> Awaitable[Message]:
        return handler.bot.send_sticker(sticker=BufferedInputFile(webp, "totoshka.webp"), **common)

    return await handler.retry.call("sendSticker", send)
