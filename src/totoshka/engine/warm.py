"""``python -m totoshka.engine.warm``: every style a worker serves, converted and
compiled before the worker takes its first job.

Why: a style's first photo on a fresh host pays its conversion (the network traced
and turned into an OpenVINO IR, then calibrated: tens of seconds on a small CPU), and
that user waits for it. `totoshka worker` runs this in a short-lived child before
Celery starts (a forked OpenVINO thread pool is broken, so the worker's own process
must not hold one), and the pool's children then read the IRs and verdicts from the
disk cache. A style already on disk costs about a second here.

Each style is painted once on the sample photo at the bot's default size (1280×960,
whose sides fall in the residue class most photos at that size share), through the
Stylizer, which also records the IR for the torch-free path. A style that fails is
named and skipped: the worker serves the others, and that style's first job will
say what is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from PIL import Image

from totoshka.assets import sample_photo_covering
from totoshka.engine.factory import Engine, open_engine
from totoshka.engine.settings import EngineSettings

WARM_SIZE = (1280, 960)


def warm_picture(size: tuple[int, int] = WARM_SIZE) -> Image.Image:
    return sample_photo_covering(size)


def chosen_styles(engine: Engine, wanted: str) -> list[str]:
    """``all``: every offered style; else the ids given, comma-separated, in order."""
    if wanted.strip().lower() == "all":
        return [style_id for style_id, _ in engine.offered_styles()]
    return [part.strip() for part in wanted.split(",") if part.strip()]


def warm(
    engine: Engine,
    style_ids: Sequence[str],
    *,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.perf_counter,
) -> list[tuple[str, float | None]]:
    """Paint each style once; ``(style, seconds)``, seconds None where it failed."""
    picture = warm_picture()
    stylizer = engine.stylizer()
    done: list[tuple[str, float | None]] = []
    for n, style_id in enumerate(style_ids, 1):
        started = clock()
        try:
            stylizer.stylize(picture, style_id, max_side=None)
        except Exception as exc:
            say(f"warning: warm-up {n}/{len(style_ids)} {style_id}: {type(exc).__name__}: {exc}")
            done.append((style_id, None))
            continue
        seconds = clock() - started
        say(f"warm-up {n}/{len(style_ids)}: {style_id} ready in {seconds:.1f} s")
        done.append((style_id, seconds))
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """The child's composition root: the operator's settings (environment, .env)
    with the parent's paths given as options on top."""
    parser = argparse.ArgumentParser(prog="python -m totoshka.engine.warm")
    parser.add_argument("--cache-dir")
    parser.add_argument("--mirror")
    parser.add_argument("--data-dir")
    parser.add_argument("--styles", default="all", help="all, or style ids separated by commas")
    args = parser.parse_args(argv)
    given = {"cache_dir": args.cache_dir, "model_mirror": args.mirror, "data_dir": args.data_dir}
    engine = open_engine(EngineSettings(**{k: v for k, v in given.items() if v}))
    ids = chosen_styles(engine, args.styles)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    done = warm(engine, ids, say=say)
    ok = sum(1 for _, seconds in done if seconds is not None)
    say(f"warm-up: {ok}/{len(ids)} styles ready in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
