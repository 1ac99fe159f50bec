"""`totoshka stylize clip.mp4`: clips through the same command as photos.

A clip is recognised by its name, so a photo never pays for PyAV and OpenCV being
imported; `stylize` hands clips here with the options it already parsed. The caps
are the operator's (`EngineSettings.video_*`); ``--max-side`` can only lower the
longest side, since its photo default (1280) is above the clips' cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from totoshka.cli.common import UsageError, err_console, print_error
from totoshka.engine.errors import EngineError

if TYPE_CHECKING:
    from totoshka.engine.factory import Engine
    from totoshka.engine.mixing import StyleMix
    from totoshka.engine.own_style import OwnStyle

CLIP_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif"})
CLIP_FORMATS = ("mp4", "gif")
CONSISTENCY_HELP = (
    "Clips: temporal consistency method"
    " (none, stats, flow, stats+flow, trust, fastflow, keyframes)."
)


def is_clip(path: Path) -> bool:
    return path.suffix.lower() in CLIP_SUFFIXES


def clip_format(source: Path, fmt: str | None) -> str:
    """A GIF stays a GIF unless asked otherwise; everything else becomes MP4."""
    if fmt is None:
        return "gif" if source.suffix.lower() == ".gif" else "mp4"
    if fmt not in CLIP_FORMATS:
        raise UsageError(f"--format {fmt} is for photos; clips are written as mp4 or gif")
    return fmt


def clip_output_path(source: Path, label: str, fmt: str, out_dir: Path | None) -> Path:
    return (out_dir or source.parent) / f"{source.stem}.{label}.{fmt}"


def clip_progress() -> Progress:
    return Progress(
        TextColumn("[bold]painting"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        redirect_stdout=False,
    )


def paint_clips(
    engine: Engine,
    inputs: list[Path],
    style: str | StyleMix | OwnStyle,
    label: str,
    *,
    output: Path | None,
    out_dir: Path | None,
    fmt: str | None,
    max_side: int,
    strength: float,
    preserve_colors: bool,
    consistency: str | None,
    square: bool,
) -> int:
    """Paint each clip; returns how many failed (one clip alone raises instead)."""
    from totoshka.engine.video import METHODS, VideoLimits, paint_clip

    method = consistency or engine.settings.video_consistency
    if method is not None and method not in METHODS:
        raise UsageError(f"--consistency must be one of: {', '.join(METHODS)}")
    caps = VideoLimits.from_settings(engine.settings)
    limits = VideoLimits(min(caps.max_side, max_side), caps.max_seconds, caps.max_fps)
    stylizer = engine.stylizer()
    failures = 0
    for path in inputs:
        kind = clip_format(path, fmt)
        target = output or clip_output_path(path, label, kind, out_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        with clip_progress() as bar:
            task = bar.add_task(path.name, total=1.0)
            try:
                paint_clip(
                    stylizer,
                    path,
                    target,
                    style,
                    strength=strength,
                    preserve_colors=preserve_colors,
                    method=method,
                    output="gif" if kind == "gif" else "mp4",
                    square=square,
                    limits=limits,
                    progress=lambda done, task=task: bar.update(task, completed=done),
                )
            except EngineError as exc:
                if len(inputs) == 1:
                    raise EngineError(f"{path}: {exc.message}") from None
                failures += 1
                print_error(f"{path}: {exc.message}")
                continue
        typer.echo(str(target))
    return failures
