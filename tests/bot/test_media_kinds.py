"""What a message brings to paint: each Telegram shape to one kind, limits first."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Message

from totoshka.bot.media import Subject, subject_of

BASE = {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}


def message(**fields: Any) -> Message:
    return Message.model_validate({**BASE, **fields})


def media(file_id: str = "f", **extra: Any) -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": file_id + "u", **extra}


def test_a_gif_arrives_as_an_animation() -> None:
    gif = media("a", width=320, height=240, duration=3, file_size=1000, mime_type="video/mp4")
    got = subject_of(message(animation=gif, document=media("a")))
    assert got == Subject("a", 1000, "animation", 3)


def test_videos_and_video_notes() -> None:
    video = media("v", width=640, height=360, duration=10, file_size=10)
    assert subject_of(message(video=video)) == Subject("v", 10, "video", 10)
    note = media("n", length=240, duration=5)
    assert subject_of(message(video_note=note)) == Subject("n", None, "video_note", 5)


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("clip.gif", "image/gif", "animation"),
        ("clip.mp4", "video/mp4", "video"),
        ("clip.webm", "video/webm", "video"),
        ("clip.mp4", None, "video"),
        ("photo.jpg", "image/jpeg", "photo"),
        ("photo.webp", None, "photo"),
    ],
)
def test_documents_by_type(name: str, mime: str | None, kind: str) -> None:
    doc = media("d", file_name=name, mime_type=mime)
    got = subject_of(message(document=doc))
    assert isinstance(got, Subject) and got.kind == kind


def test_a_pdf_is_not_an_image() -> None:
    doc = media("d", file_name="paper.pdf", mime_type="application/pdf")
    assert subject_of(message(document=doc)) == "not_an_image"


def sticker(**flags: Any) -> dict[str, Any]:
    base = {"type": "regular", "width": 512, "height": 512, "is_animated": False}
    return media("s", **{**base, "is_video": False, **flags})


def test_still_stickers_are_painted_moving_ones_answered() -> None:
    assert subject_of(message(sticker=sticker())) == Subject("s", None, "sticker")
    assert subject_of(message(sticker=sticker(is_animated=True))) == "sticker_animated"
    assert subject_of(message(sticker=sticker(is_video=True))) == "sticker_animated"


def test_limits_are_checked_before_any_download() -> None:
    big = media("v", width=1, height=1, duration=5, file_size=21 * 1024 * 1024)
    assert subject_of(message(video=big)) == "file_too_big"
    long = media("v", width=1, height=1, duration=61)
    assert subject_of(message(video=long), max_seconds=60) == "clip_too_long"
    assert isinstance(subject_of(message(video=long), max_seconds=None), Subject)


def test_a_text_is_nobodys_subject() -> None:
    assert subject_of(message(text="hello")) is None
