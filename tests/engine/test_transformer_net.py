"""pytorch/examples TransformerNet checkpoints (and ml5 folders) through the normal path.

The checkpoints are built here with random weights in the exact upstream key
layout, written out by hand below from pytorch/examples' transformer_net.py (not
taken from our own module), so a renamed layer in our port would fail to load.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from totoshka.engine.catalog import Catalog, Model, ModelFile, Style
from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models.ml5 import load_ml5
from totoshka.engine.models.transformer_net import load_transformer_net
from totoshka.engine.store import ModelStore
from totoshka.engine.stylizer import Stylizer, to_tensor


def upstream_layout(legacy: bool = False) -> dict[str, tuple[int, ...]]:
    """Names and shapes of upstream TransformerNet's state dict."""
    layout: dict[str, tuple[int, ...]] = {}

    def conv(name: str, c_in: int, c_out: int, k: int) -> None:
        layout[f"{name}.conv2d.weight"] = (c_out, c_in, k, k)
        layout[f"{name}.conv2d.bias"] = (c_out,)

    def norm(name: str, c: int) -> None:
        layout[f"{name}.weight"] = (c,)
        layout[f"{name}.bias"] = (c,)
        if legacy:  # checkpoints saved by PyTorch 0.3 carry these unused buffers
            layout[f"{name}.running_mean"] = (c,)
            layout[f"{name}.running_var"] = (c,)

    conv("conv1", 3, 32, 9)
    norm("in1", 32)
    conv("conv2", 32, 64, 3)
    norm("in2", 64)
    conv("conv3", 64, 128, 3)
    norm("in3", 128)
    for i in range(1, 6):
        conv(f"res{i}.conv1", 128, 128, 3)
        norm(f"res{i}.in1", 128)
        conv(f"res{i}.conv2", 128, 128, 3)
        norm(f"res{i}.in2", 128)
    conv("deconv1", 128, 64, 3)
    norm("in4", 64)
    conv("deconv2", 64, 32, 3)
    norm("in5", 32)
    conv("deconv3", 32, 3, 9)
    return layout


def random_state(seed: int, legacy: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in upstream_layout(legacy).items():
        if name.endswith("running_var"):
            t = torch.ones(shape)
        elif name.endswith("running_mean"):
            t = torch.zeros(shape)
        elif name.endswith("conv2d.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            t = torch.randn(shape, generator=g) / fan_in**0.5
        elif name == "deconv3.conv2d.bias":
            t = torch.full(shape, 127.5)
        elif ".in" in name or name.startswith("in"):
            t = (1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.1 * torch.randn(shape, generator=g)
        if name == "deconv3.conv2d.weight":
            t = t * 60.0  # spread the output over 0..255
        state[name] = t
    return state


def pth_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def photo(w: int = 70, h: int = 50) -> Image.Image:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return Image.fromarray((base * 0.7 + rng.uniform(0, 76, (h, w, 3))).astype(np.uint8))


def setup(tmp_path: Path, files: dict[str, bytes], styles: list[Style], tofu: bool) -> Stylizer:
    """A catalog of one pytorch model served from a tmp mirror into a tmp cache."""
    mirror = tmp_path / "mirror"
    records = []
    for rel, data in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
        records.append(
            ModelFile(
                path=rel,
                url=f"https://example.invalid/{rel}",
                sha256=None if tofu else hashlib.sha256(data).hexdigest(),
                size=None if tofu else len(data),
                note="trust on first use" if tofu else None,
            )
        )
    catalog = Catalog()
    catalog.add_model(Model("pt-test", "pytorch", tuple(records), "test", "BSD-3-Clause"))
    for s in styles:
        catalog.add_style(s)
    store = ModelStore(tmp_path / "cache", mirror=mirror, data_dir=tmp_path / "data")
    return Stylizer(catalog, store)


def style(sid: str, member: str | None = None) -> Style:
    return Style(sid, "pt-test", {"en": sid, "ru": sid}, "test", "BSD-3-Clause", member=member)


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy-running-stats"])
def test_pth_through_catalog_store_registry_stylizer(tmp_path: Path, legacy: bool) -> None:
    stylizer = setup(
        tmp_path, {"pytorch/one.pth": pth_bytes(random_state(1, legacy))}, [style("one")], False
    )
    img = photo()
    out = stylizer.stylize(img, "one", max_side=None)
    assert out.size == img.size and out.mode == "RGB"
    again = stylizer.stylize(img, "one", max_side=None)
    assert np.array_equal(np.asarray(out), np.asarray(again))  # deterministic
    arr = np.asarray(out, dtype=np.float32)
    assert arr.std() > 5  # a picture, not a flat colour
    assert np.abs(arr - np.asarray(img, np.float32)).mean() > 5  # and not the photo

    net = stylizer.network("one")
    y = net(to_tensor(img))
    assert y.shape == (1, 3, 50, 70)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 255.0
    assert (tmp_path / "cache" / "pytorch" / "one.pth").is_file()


def test_saved_models_zip_members(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("saved_models/candy.pth", pth_bytes(random_state(2)))
        zf.writestr("saved_models/mosaic.pth", pth_bytes(random_state(3, legacy=True)))
    stylizer = setup(
        tmp_path,
        {"pytorch/saved_models.zip": buf.getvalue()},
        [style("candy", "saved_models/candy.pth"), style("mosaic", "saved_models/mosaic.pth")],
        tofu=True,
    )
    img = photo(33, 41)  # odd sizes
    candy = np.asarray(stylizer.stylize(img, "candy", max_side=None))
    mosaic = np.asarray(stylizer.stylize(img, "mosaic", max_side=None))
    assert candy.shape == mosaic.shape == (41, 33, 3)
    assert np.abs(candy.astype(int) - mosaic).mean() > 1  # two different networks
    record = tmp_path / "cache" / "pytorch" / "saved_models.zip.sha256"
    assert len(record.read_text().split()[0]) == 64  # TOFU hash recorded


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_wrong_keys_refused(tmp_path: Path) -> None:
    state = random_state(4)
    state["conv1.conv.weight"] = state.pop("conv1.conv2d.weight")
    path = write(tmp_path / "renamed.pth", pth_bytes(state))
    with pytest.raises(ModelFormatError, match=r"renamed\.pth") as info:
        load_transformer_net(path)
    assert "missing keys conv1.conv2d.weight" in str(info.value)
    assert "unexpected keys conv1.conv.weight" in str(info.value)


def test_wrong_shapes_refused(tmp_path: Path) -> None:
    state = random_state(5)
    state["res3.conv1.conv2d.weight"] = torch.zeros(64, 128, 3, 3)
    path = write(tmp_path / "shapes.pth", pth_bytes(state))
    with pytest.raises(ModelFormatError, match=r"shapes\.pth.*res3\.conv1\.conv2d\.weight"):
        load_transformer_net(path)


def test_truncated_pth_refused(tmp_path: Path) -> None:
    data = pth_bytes(random_state(6))
    path = write(tmp_path / "cut.pth", data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match=r"cut\.pth"):
        load_transformer_net(path)


def test_not_a_state_dict_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "list.pth", pth_bytes([torch.zeros(3)]))  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match=r"list\.pth"):
        load_transformer_net(path)


def test_missing_zip_member_refused(tmp_path: Path) -> None:
    path = tmp_path / "saved_models.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("saved_models/candy.pth", pth_bytes(random_state(7)))
    with pytest.raises(ModelFormatError, match=r"saved_models/udnie\.pth"):
        load_transformer_net(path, member="saved_models/udnie.pth")


# --- ml5 folders ------------------------------------------------------------------------


@pytest.fixture
def ml5_copy(shared_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "wave"
    shutil.copytree(shared_dir / "models" / "ml5" / "wave", folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def test_ml5_truncated_variable_refused(ml5_copy: Path) -> None:
    victim = ml5_copy / "Variable_12"
    victim.write_bytes(victim.read_bytes()[:-4])
    with pytest.raises(ModelFormatError, match="Variable_12"):
        load_ml5(ml5_copy)


def test_ml5_missing_manifest_refused(ml5_copy: Path) -> None:
    (ml5_copy / "manifest.json").unlink()
    with pytest.raises(ModelFormatError, match="manifest"):
        load_ml5(ml5_copy)


def test_ml5_loads_the_real_weights(ml5_copy: Path) -> None:
    net = load_ml5(ml5_copy)
    y = net(to_tensor(photo(21, 17)))
    assert y.shape == (1, 3, 17, 21)
