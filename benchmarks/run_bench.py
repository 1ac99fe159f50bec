#!/usr/bin/env python
"""Run `totoshka bench` and keep the result: benchmarks/results/<name>.json and .md.

Quick (about 2 minutes on 2 cores):
    .venv/bin/python benchmarks/run_bench.py --sizes 640x480 --families ml5 --repeats 1

The CPU table of the issue "Speed and memory" (1280×960 both families, 4000×3000 ml5;
the 4000×3000 reference alone takes minutes and ~6 GB):
    .venv/bin/python benchmarks/run_bench.py --name cpu-sapphire-rapids \\
        --sizes 640x480,1280x960 --families ml5,magenta
    .venv/bin/python benchmarks/run_bench.py --name cpu-4000x3000 \\
        --sizes 4000x3000 --families ml5 --paths auto

On a GPU machine (e.g. one H100) — CUDA fp16/bf16 against CUDA fp32 and the CPU reference,
then same-style batching (8 same-size pictures per call, time per picture):
    python benchmarks/run_bench.py --name h100 --sizes 640x480,1280x960,4000x3000 \\
        --paths cuda-fp32,cuda,cuda-bf16
    python benchmarks/run_bench.py --name h100-batch8 --sizes 640x480,1280x960 \\
        --paths cuda-fp32,cuda,cuda-bf16 --batch 8

Models come from the store (downloaded and verified) or from a mirror:
`--mirror ../shared/models` (or TOTOSHKA_MODEL_MIRROR).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from totoshka.engine import bench
from totoshka.engine.settings import EngineSettings

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", default=None, help="results file stem (default: date and time)")
    p.add_argument("--sizes", default="640x480,1280x960")
    p.add_argument("--paths", default=",".join(bench.DEFAULT_PATHS))
    p.add_argument("--families", default=",".join(bench.FAMILIES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--style", default="wave")
    p.add_argument("--mirror", default=None)
    p.add_argument("--photo", default=None)
    p.add_argument("--painting", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args(argv)

    def split(v: str) -> tuple[str, ...]:
        return tuple(x for x in v.split(",") if x)

    settings = EngineSettings(**({"model_mirror": args.mirror} if args.mirror else {}))
    report = bench.run_bench(
        settings,
        families=split(args.families),
        sizes=split(args.sizes),
        paths=split(args.paths),
        repeats=args.repeats,
        style=args.style,
        photo=args.photo,
        painting=args.painting,
        threads=args.threads,
        batch=args.batch,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    name = args.name or dt.datetime.now().strftime("%Y%m%d-%H%M")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(bench.report_json(report) + "\n")
    table = bench.format_table(report)
    (RESULTS / f"{name}.md").write_text(f"# {name}\n\n```\n{' '.join(sys.argv)}\n```\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
