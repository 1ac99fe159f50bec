"""`totoshka bench`: the reference (eager fp32) against every inference path, in one run.

Prints the CPU and its flags, then one row per family × size × path: median
time, speed-up over the reference of the same run, PSNR against it, peak RSS of
the row's own process and achieved GFLOP/s. See `totoshka.engine.bench`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from totoshka.cli.common import UsageError, engine_settings, err_console
from totoshka.engine import bench as engine_bench


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def bench(
    sizes: Annotated[
        str, typer.Option("--sizes", help="Comma-separated WxH (640x480,1280x960,4000x3000).")
    ] = "640x480,1280x960",
    paths: Annotated[
        str, typer.Option("--paths", help="Paths besides the eager fp32 reference.")
    ] = ",".join(engine_bench.DEFAULT_PATHS),
    families: Annotated[
        str, typer.Option("--families", help="Model families: ml5, magenta.")
    ] = ",".join(engine_bench.FAMILIES),
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs per row.")] = 3,
    style: Annotated[str, typer.Option("--style", help="The ml5 style.")] = "wave",
    mirror: Annotated[
        str | None, typer.Option("--mirror", help="Model mirror folder (like ../shared/models).")
    ] = None,
    photo: Annotated[Path | None, typer.Option("--photo", help="The photo to stylize.")] = None,
    painting: Annotated[
        Path | None, typer.Option("--painting", help="Painting for Magenta's style vector.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch threads.")] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Pictures per call (GPU batching).")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON report to this file.")
    ] = None,
) -> None:
    """Benchmark every inference path against eager fp32 (one fresh process per row)."""
    size_list = _split(sizes)
    for size in size_list:
        try:
            engine_bench.parse_size(size)
        except ValueError:
            raise UsageError(f"size {size!r} is not WxH") from None
    family_list = _split(families)
    unknown = [f for f in family_list if f not in engine_bench.FAMILIES]
    if unknown:
        raise UsageError(f"unknown family {unknown[0]!r}")

    def progress(message: str) -> None:
        if not as_json:
            err_console.print(message)

    report = engine_bench.run_bench(
        engine_settings(model_mirror=mirror),
        families=family_list,
        sizes=size_list,
        paths=_split(paths),
        repeats=repeats,
        style=style,
        photo=str(photo) if photo else None,
        painting=str(painting) if painting else None,
        threads=threads,
        batch=batch,
        progress=progress,
    )
    text = engine_bench.report_json(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text if as_json else engine_bench.format_table(report))
