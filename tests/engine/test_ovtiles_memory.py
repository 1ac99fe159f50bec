"""OpenVINO conversions run in a short-lived child process (`ovconvert.make_ir`).

torch.export and OpenVINO's converter leave ≈ 125 MB resident in the process that
ran them; a cold 4000×3000 `auto` run peaked at 866–870 MB against 694 MB warm.
With the conversion in a child the serving process never imports torch.export,
and the IR it reads is the one it would have made itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from totoshka.engine import tile_geometry

pytest.importorskip("openvino")

CFG = tile_geometry.TileConfig(tile=64, overlap=32)

# A fresh process: a cold tile IR made through the child leaves torch.export out of it.
COLD_RUN = """
import json, sys
from pathlib import Path
import torch
from totoshka.engine import tile_geometry
from totoshka.engine.backends import openvino as ovb
from totoshka.engine.models.ml5 import load_ml5

net = load_ml5(sys.argv[1]).eval()
x = torch.rand(1, 3, 150, 170) * 255
runner = ovb.OpenVinoRunner("bf16", cache_dir=Path(sys.argv[2]), max_pixels=None)
y = runner.tiles().stylize(net, x, tile_geometry.TileConfig(tile=64, overlap=32))
print(json.dumps({
    "conversions": ovb.conversions,
    "dynamo": "torch._dynamo" in sys.modules,
    "export": "torch.export._trace" in sys.modules,
    "shape": list(y.shape),
}))
"""


@pytest.fixture(scope="module")
def ml5_net(shared_dir: Path) -> nn.Module:
    from totoshka.engine.models.ml5 import load_ml5

    return load_ml5(shared_dir / "models" / "ml5" / "wave").eval()


def test_cold_conversion_stays_out_of_the_serving_process(shared_dir: Path, tmp_path: Path) -> None:
    wave = str(shared_dir / "models" / "ml5" / "wave")
    proc = subprocess.run(
        [sys.executable, "-c", COLD_RUN, wave, str(tmp_path / "compiled")],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"conversions": 1, "dynamo": False, "export": False, "shape": [1, 3, 150, 170]}
    irs = list((tmp_path / "compiled" / "openvino").glob("*/tiles*.xml"))
    assert len(irs) == 1 and irs[0].with_suffix(".bin").exists()
    assert not list(irs[0].parent.glob(".*")), "temporary files left behind"


def test_child_and_in_process_conversions_agree(ml5_net: nn.Module, tmp_path: Path) -> None:
    """The same IR (bit for bit) and the same picture, made in the child or here."""
    from totoshka.engine.backends import openvino as ovb

    x = torch.rand(1, 3, 150, 170, generator=torch.Generator().manual_seed(0)) * 255
    pictures, blobs = [], []
    for where in ("child", "here"):
        runner = ovb.OpenVinoRunner(
            "bf16", cache_dir=tmp_path / where, max_pixels=None, convert_in_process=where == "here"
        )
        tiles = runner.tiles()
        before = ovb.conversions
        pictures.append(tiles.stylize(ml5_net, x, CFG))
        assert ovb.conversions == before + 1
        (ir,) = (tmp_path / where).glob("openvino/*/tiles*.xml")
        blobs.append(ir.with_suffix(".bin").read_bytes())
    assert blobs[0] == blobs[1]
    assert torch.equal(pictures[0], pictures[1])


def test_a_network_the_child_cannot_load_converts_here(tmp_path: Path) -> None:
    """A class defined in a function does not pickle: the conversion runs in this process."""
    from totoshka.engine.backends import openvino as ovb

    class Local(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    net = Local().eval()
    runner = ovb.OpenVinoRunner("f32", cache_dir=tmp_path, max_pixels=None)
    before = ovb.conversions
    x = torch.rand(1, 3, 40, 52) * 255
    y = runner.run(net, x)
    assert ovb.conversions == before + 1
    with torch.inference_mode():
        assert torch.allclose(y, net(x).clamp(0, 255), atol=1e-3)
    assert runner.variant_path(net, ovb.residue(x)).exists()
