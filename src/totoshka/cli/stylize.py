"""`totoshka stylize`: repaint photos and clips from the command line (clips: cli/clips.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from totoshka.cli import clips, own_style
from totoshka.cli.common import (
    UsageError,
    command_engine,
    download_progress,
    err_console,
    item_progress,
    print_error,
)
from totoshka.engine.catalog import Catalog
from totoshka.engine.errors import EngineError
from totoshka.engine.imageio import encode_image, load_image
from totoshka.engine.mixing import StyleMix, check_share, mixed_style


class OutputFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"
    mp4 = "mp4"  # clips
    gif = "gif"  # clips


def output_path(source: Path, style_id: str, fmt: str, out_dir: Path | None) -> Path:
    """`<stem>.<style>.jpg` next to the photo, or inside `out_dir`."""
    suffix = ".png" if fmt == "png" else ".jpg"
    return (out_dir or source.parent) / f"{source.stem}.{style_id}{suffix}"


def catalog_style(styles: list[str], mix: float | None, catalog: Catalog) -> tuple[Any, str]:
    """(what to paint, label for output names) for one --style, or two mixed."""
    if len(styles) > 2:
        raise UsageError("give at most two --style to mix")
    if len(styles) == 1:
        if mix is not None:
            raise UsageError("--mix needs two --style (or two --style-image)")
        return catalog.style(styles[0]).id, styles[0]
    picked = StyleMix(styles[0], styles[1], 0.5 if mix is None else check_share(mix))
    mixed_style(catalog, picked)  # refused now, before torch loads, if they cannot mix
    return picked, picked.label


def stylize(
    inputs: Annotated[list[Path], typer.Argument(help="Photos to repaint.", show_default=False)],
    style: Annotated[
        list[str] | None,
        typer.Option(
            "--style",
            "-s",
            help="Style id (see 'totoshka styles list'); twice, with --mix, to mix two.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (one input only).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", "-d", help="Folder for the outputs.")
    ] = None,
    max_side: Annotated[
        int, typer.Option(min=16, max=8192, help="Downscale so the longer side is at most N.")
    ] = 1280,
    strength: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="0 = the photo, 1 = the full painting.")
    ] = 1.0,
    preserve_colors: Annotated[
        bool, typer.Option("--preserve-colors", help="Keep the photo's colours.")
    ] = False,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-f", help="Output format [default: from -o, else jpeg]."),
    ] = None,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality.")] = 92,
    mirror: Annotated[
        str | None,
        typer.Option(help="Model mirror (folder or URL) if the style must be downloaded."),
    ] = None,
    # your own style (totoshka.cli.own_style): any painting instead of --style
    style_image: Annotated[
        list[Path] | None, typer.Option("--style-image", help=own_style.STYLE_IMAGE_HELP)
    ] = None,
    mix: Annotated[float | None, typer.Option(help=own_style.MIX_HELP)] = None,
    style_strength: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help=own_style.STRENGTH_HELP)
    ] = None,
    own_style_engine: Annotated[str | None, typer.Option(help=own_style.ENGINE_HELP)] = None,
    consistency: Annotated[
        str | None, typer.Option("--consistency", help=clips.CONSISTENCY_HELP)
    ] = None,
    square: Annotated[
        bool, typer.Option("--square", help="Clips: centre-crop to a square (a video note).")
    ] = False,
) -> None:
    """Repaint photos or clips in a style. Output: <stem>.<style>.jpg beside each photo,
    <stem>.<style>.mp4 beside each clip (a GIF stays a GIF unless --format mp4)."""
    if output is not None and len(inputs) > 1:
        raise UsageError("--output takes one input; use --out-dir for several")
    if output is not None and out_dir is not None:
        raise UsageError("use either --output or --out-dir, not both")
    videos = [path for path in inputs if clips.is_clip(path)]
    photos = [path for path in inputs if not clips.is_clip(path)]
    if fmt is not None and photos and fmt.value in clips.CLIP_FORMATS:
        raise UsageError(f"--format {fmt.value} is for clips; photos are jpeg or png")
    if fmt is not None and videos:
        clips.clip_format(videos[0], fmt.value)  # a photo format for a clip: refused now
    if fmt is not None:
        fmt_name = fmt.value
    else:
        fmt_name = "png" if output is not None and output.suffix.lower() == ".png" else "jpeg"
    for path in inputs:
        if not path.is_file():
            raise EngineError(f"{path}: no such file")

    engine = command_engine(model_mirror=mirror)
    catalog, store = engine.catalog, engine.store
    if style_image or not style:
        picked, label = own_style.own_style_cli(
            style[0] if style else None, style_image, mix, style_strength, own_style_engine, engine
        )
    else:
        if style_strength is not None:
            raise UsageError("--style-strength goes with --style-image")
        picked, label = catalog_style(style, mix, catalog)
        for style_id in style:
            model = catalog.model(catalog.style(style_id).model)
            if not store.is_present(model):
                with download_progress(err_console.is_terminal) as progress:
                    store.ensure(model, progress=progress)

    # no Stylizer (torch) built here: a photo whose IR is cached is painted without it
    # (`Engine.paint`), and clips build it themselves
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    failures = 0
    if videos:
        failures += clips.paint_clips(
            engine,
            videos,
            picked,
            label,
            output=output,
            out_dir=out_dir,
            fmt=fmt.value if fmt is not None else None,
            max_side=max_side,
            strength=strength,
            preserve_colors=preserve_colors,
            consistency=consistency,
            square=square,
        )
    bar = item_progress(len(photos)) if len(photos) > 1 else None
    task = bar.add_task("", total=len(photos)) if bar else None
    if bar:
        bar.start()
    try:
        for path in photos:
            if bar is not None and task is not None:
                bar.update(task, description=path.name)
            target = output or output_path(path, label, fmt_name, out_dir)
            try:
                photo = load_image(path, max_side=max_side)
                painting = engine.paint(
                    photo,
                    picked,
                    max_side=max_side,
                    strength=strength,
                    preserve_colors=preserve_colors,
                )
                data = encode_image(painting, fmt_name, quality)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except EngineError as exc:
                if len(photos) == 1 and not videos:
                    raise EngineError(f"{path}: {exc.message}") from None
                failures += 1
                print_error(f"{path}: {exc.message}")
            else:
                typer.echo(str(target))
            if bar is not None and task is not None:
                bar.advance(task)
    finally:
        if bar:
            bar.stop()
    if failures:
        raise EngineError(f"{failures} of {len(inputs)} inputs failed")
