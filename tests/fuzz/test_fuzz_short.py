"""CI's short fuzz run: a fixed seed, a bounded number of inputs, a hard time-out.

libFuzzer stops after `-runs`; `-max_total_time` and the subprocess time-out bound
it even if an input were slow (each input is also bounded by `-timeout`). Anything
but an `EngineError` leaving the decoder makes the harness exit non-zero with the
input saved, and this test fail with libFuzzer's report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HARNESS = Path(__file__).resolve().parent / "fuzz_imageio.py"
RUNS = 20_000


# libFuzzer's memory limit reads the process's peak RSS (getrusage), and Linux hands a
# child the peak of the process it was forked from: run straight from a pytest of
# 3 GB, the harness "used" 2972 MB before its first input. A shell in between forks
# the harness from itself, so the harness starts from the shell's few MB.
LAUNCH = ["sh", "-c", '"$@"; exit $?', "sh"]


def test_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*LAUNCH, sys.executable, str(HARNESS), f"-runs={RUNS}", "-seed=1", "-max_total_time=120"],
        cwd=tmp_path,  # crash-* / timeout-* files land here
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        check=False,
    )
    tail = proc.stderr[-4000:]
    assert proc.returncode == 0, tail
    assert "Done " in proc.stderr and " runs in " in proc.stderr, tail
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
