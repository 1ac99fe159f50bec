"""Parity of the PyTorch ml5 port with TensorFlow.js itself.

The reference is independent of the port: `tests/reference/tfjs/ml5_style.mjs` runs
ml5's StyleTransfer layer sequence with TensorFlow.js ops (`tf.conv2d(..., 'same')`,
`tf.conv2dTranspose(..., 'same')`, `tf.moments` instance norm, ...) on the tfjs CPU
backend, with the versions pinned in `tests/reference/tfjs/package.json`.

Every style of /work/shared/models/ml5 runs on a real photo at an even size, an odd
size and a size with one odd side; the port must reach PSNR >= 45 dB (peak 255).
A negative check proves the comparison is sharp enough to catch the one-pixel
shift of PyTorch's `padding=1, output_padding=1` transposed convolution.

Needs node and npm (fails, never skips, without them): the node dependencies are
installed on first use with `npm ci --prefix tests/reference/tfjs`.
Set TOTOSHKA_SHARED to point at the shared data (default: <repo>/../shared).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TFJS_DIR = REPO / "tests" / "reference" / "tfjs"
SCRIPT = TFJS_DIR / "ml5_style.mjs"
SHARED = Path(os.environ.get("TOTOSHKA_SHARED", REPO / ".." / "shared")).resolve()
ML5_MODELS = SHARED / "models" / "ml5"
PHOTOS = SHARED / "images" / "content"

STYLES = [
    "la_muse",
    "mathura",
    "matilde_perez",
    "matta",
    "rain_princess",
    "scream",
    "udnie",
    "wave",
    "wreck",
]
# (name, height, width, photo): 48x64 even (multiple of 4), 47x61 both sides odd,
# 50x63 only the width odd (and 50 = 2 mod 4, a third crop case).
SIZES = [
    ("even48x64", 48, 64, "venice-boat.jpg"),
    ("odd47x61", 47, 61, "flowers.jpg"),
    ("oddw50x63", 50, 63, "amber.jpg"),
]
MIN_PSNR_DB = 45.0
# The README puts the one-pixel shift at about 16 dB; anything under this is "caught".
TRAP_MAX_PSNR_DB = 30.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


# ----- node / tfjs harness ----------------------------------------------------------------


def _pinned_versions() -> dict[str, str]:
    return json.loads((TFJS_DIR / "package.json").read_text())["dependencies"]


def _installed_ok() -> bool:
    for name, version in _pinned_versions().items():
        meta = TFJS_DIR / "node_modules" / name / "package.json"
        if not meta.is_file() or json.loads(meta.read_text()).get("version") != version:
            return False
    return True


@pytest.fixture(scope="session")
def node() -> str:
    """Path of node, with the pinned tfjs packages installed (npm ci) if they are not."""
    node_bin = shutil.which("node")
    if node_bin is None:
        pytest.fail("node is not on PATH: the ml5 parity test needs Node.js (v18+) and npm")
    if not _installed_ok():
        npm_bin = shutil.which("npm")
        if npm_bin is None:
            pytest.fail("npm is not on PATH: needed for `npm ci --prefix tests/reference/tfjs`")
        proc = subprocess.run(
            [npm_bin, "ci", "--prefix", str(TFJS_DIR), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=300,
        )
        if proc.returncode != 0 or not _installed_ok():
            pytest.fail(
                f"npm ci --prefix {TFJS_DIR} failed (rc {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
    return node_bin


def run_tfjs(node_bin: str, jobs: list[dict], workdir: Path) -> list[dict]:
    """Run the tfjs reference on a list of jobs in ONE node process; return its reports."""
    jobs_file = workdir / "jobs.json"
    jobs_file.write_text(json.dumps({"jobs": jobs}))
    proc = subprocess.run(
        [node_bin, str(SCRIPT), str(jobs_file)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        cwd=TFJS_DIR,
    )
    if proc.returncode != 0:
        pytest.fail(f"tfjs reference failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    reports = [ln for ln in lines if "index" in ln]
    summary = [ln for ln in lines if "done" in ln]
    assert len(reports) == len(jobs), proc.stdout[-2000:]
    assert summary and summary[0]["backend"] == "cpu", proc.stdout[-2000:]
    assert summary[0]["tfjs"] == _pinned_versions()["@tensorflow/tfjs-core"], summary
    return reports


def read_output(report: dict) -> np.ndarray:
    h, w, c = report["shape"]
    return np.fromfile(report["output"], dtype="<f4").reshape(h, w, c)


def load_photo(name: str, height: int, width: int) -> np.ndarray:
    """A real photo, RGB, resized to height x width, float32 HWC in 0..255."""
    path = PHOTOS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: point TOTOSHKA_SHARED at the shared data folder")
    with Image.open(path) as im:
        im = im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.float32).copy()


def write_random_checkpoint(directory: Path, seed: int = 0) -> None:
    """An ml5-format checkpoint (manifest.json + raw float32) with random weights."""
    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, ...]] = []
    layers = [(9, 3, 32), (3, 32, 64), (3, 64, 128)] + [(3, 128, 128)] * 10
    for k, c_in, c_out in layers:
        shapes += [(k, k, c_in, c_out), (c_out,), (c_out,)]
    shapes += [(3, 3, 64, 128), (64,), (64,), (3, 3, 32, 64), (32,), (32,)]  # H,W,out,in
    shapes += [(9, 9, 32, 3), (3,), (3,)]
    assert len(shapes) == 48
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for i, shape in enumerate(shapes):
        name = "Variable" if i == 0 else f"Variable_{i}"
        if len(shape) == 4:
            fan_in = shape[0] * shape[1] * shape[3 if i in (39, 42) else 2]
            arr = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
        elif i % 3 == 1:  # shift
            arr = rng.normal(0.0, 0.1, shape)
        else:  # scale
            arr = rng.uniform(0.5, 1.5, shape)
        arr.astype("<f4").tofile(directory / name)
        manifest[name] = {"filename": name, "shape": list(shape)}
    (directory / "manifest.json").write_text(json.dumps(manifest))


# ----- the port under test ------------------------------------------------------------------


def run_port(model: torch.nn.Module, image_hwc: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image_hwc).permute(2, 0, 1).unsqueeze(0).contiguous()
    with torch.inference_mode():
        y = model(x)
    assert y.dtype == torch.float32
    assert tuple(y.shape) == (1, 3, *image_hwc.shape[:2]), tuple(y.shape)
    return y[0].permute(1, 2, 0).numpy()


def with_pytorch_transpose_trap(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose transposed convolutions use PyTorch's `padding=1, output_padding=1`.

    Those give exactly 2h x 2w, but keep the *last* 2h rows/columns of the full
    transposed convolution where TensorFlow keeps the first (README's trap).
    """
    trapped = copy.deepcopy(model)
    found = 0
    for m in trapped.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            assert m.padding == (0, 0) and m.stride == (2, 2), (m.padding, m.stride)
            m.padding, m.output_padding = (1, 1), (1, 1)
            found += 1
    if found != 2:
        pytest.fail(
            f"expected the ml5 port to hold 2 nn.ConvTranspose2d, found {found}: "
            "adapt with_pytorch_transpose_trap to the port's structure"
        )
    return trapped


# ----- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: load_photo(photo, h, w) for name, h, w, photo in SIZES}


@pytest.fixture(scope="session")
def tfjs_outputs(node, photos, tmp_path_factory) -> dict[tuple[str, str], np.ndarray]:
    """TF.js results for every style x size, from a single node process."""
    missing = [s for s in STYLES if not (ML5_MODELS / s / "manifest.json").is_file()]
    if missing:
        pytest.fail(f"ml5 checkpoints missing under {ML5_MODELS}: {missing}")
    work = tmp_path_factory.mktemp("tfjs_ml5")
    jobs, keys = [], []
    for name, h, w, _ in SIZES:
        inp = work / f"in_{name}.f32"
        photos[name].astype("<f4").tofile(inp)
        for style in STYLES:
            jobs.append(
                {
                    "model_dir": str(ML5_MODELS / style),
                    "input": str(inp),
                    "shape": [h, w, 3],
                    "output": str(work / f"out_{style}_{name}.f32"),
                }
            )
            keys.append((style, name))
    reports = run_tfjs(node, jobs, work)
    outputs = {}
    for key, (_, h, w, _), report in zip(
        keys, [s for s in SIZES for _ in STYLES], reports, strict=True
    ):
        assert report["shape"] == [h, w, 3], report
        assert report["full_shape"] == [4 * math.ceil(h / 4), 4 * math.ceil(w / 4), 3], report
        outputs[key] = read_output(report)
    return outputs


@pytest.fixture(scope="session")
def ports() -> dict[str, torch.nn.Module]:
    from totoshka.engine.models.ml5 import load_ml5

    return {style: load_ml5(ML5_MODELS / style) for style in STYLES}


# ----- tests --------------------------------------------------------------------------------


def test_tfjs_reference_shape_semantics(node, tmp_path):
    """Node side alone, random weights: sides go n -> 4*ceil(n/4), cropped back to n."""
    ckpt = tmp_path / "random_ckpt"
    write_random_checkpoint(ckpt)
    rng = np.random.default_rng(1)
    sizes = [(16, 12), (13, 10), (9, 15), (6, 7)]
    jobs = []
    for h, w in sizes:
        inp = tmp_path / f"in_{h}x{w}.npy"
        np.save(inp, rng.uniform(0, 255, (h, w, 3)).astype("<f4"))
        for crop in (False, True):
            jobs.append(
                {
                    "model_dir": str(ckpt),
                    "input": str(inp),
                    "output": str(tmp_path / f"out_{h}x{w}_{int(crop)}.f32"),
                    "crop": crop,
                }
            )
    reports = run_tfjs(node, jobs, tmp_path)
    for i, (h, w) in enumerate(sizes):
        full, cropped = reports[2 * i], reports[2 * i + 1]
        padded = [4 * math.ceil(h / 4), 4 * math.ceil(w / 4), 3]
        assert full["shape"] == full["full_shape"] == padded, full
        assert cropped["shape"] == [h, w, 3] and cropped["full_shape"] == padded, cropped
        a, b = read_output(full), read_output(cropped)
        # the picture is the top-left h x w of the padded output
        np.testing.assert_array_equal(a[:h, :w], b)
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 255.0
        assert a.std() > 1.0  # not a constant picture


@pytest.mark.parametrize("size", [s[0] for s in SIZES])
@pytest.mark.parametrize("style", STYLES)
def test_ml5_port_matches_tfjs(style, size, tfjs_outputs, ports, photos, record_property):
    ref = tfjs_outputs[(style, size)]
    out = run_port(ports[style], photos[size])
    value = psnr(out, ref)
    max_abs = float(np.max(np.abs(out.astype(np.float64) - ref)))
    record_property("psnr_db", value)
    record_property("max_abs_diff", max_abs)
    print(f"\n[ml5 parity] {style:>14} {size:>10}: PSNR {value:6.2f} dB  max|diff| {max_abs:.4f}")
    assert value >= MIN_PSNR_DB, f"{style} {size}: PSNR {value:.2f} dB < {MIN_PSNR_DB}"


@pytest.mark.parametrize("size", [s[0] for s in SIZES])
def test_transpose_trap_is_caught(size, tfjs_outputs, ports, photos, record_property):
    """Negative check: the port with PyTorch's padding=1/output_padding=1 must fail."""
    values = {}
    for style in STYLES:
        trapped = with_pytorch_transpose_trap(ports[style])
        values[style] = psnr(run_port(trapped, photos[size]), tfjs_outputs[(style, size)])
        print(f"\n[ml5 trap]   {style:>14} {size:>10}: PSNR {values[style]:6.2f} dB")
    record_property("trap_psnr_db", values)
    worst = max(values.values())
    assert worst < TRAP_MAX_PSNR_DB, f"the one-pixel shift went unnoticed: {values}"
