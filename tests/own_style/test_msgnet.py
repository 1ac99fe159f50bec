"""MSG-Net (21styles.model) without the real checkpoint: a checkpoint with random
weights in the exact upstream key layout of `Net(ngf=128)`, written with
torch.save, goes through the normal path (store -> registry/own style -> network).

The key list below is written out from the upstream definition
(zhanghang1989/PyTorch-Multi-Style-Transfer, experiments/net.py), not taken from
the port, so a port that drifts from the layout fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from own_style_helpers import make_stylizer
from PIL import Image

from totoshka.engine.errors import EngineError, ModelFormatError
from totoshka.engine.models import msgnet
from totoshka.engine.stylizer import OwnStyle


def _conv(prefix: str, c_out: int, c_in: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c_out, c_in, k, k), f"{prefix}.bias": (c_out,)}


def _bottleneck(p: str, inplanes: int, planes: int, downsample: bool) -> dict:
    keys = {}
    if downsample:
        keys |= _conv(f"{p}.residual_layer", planes * 4, inplanes, 1)
    keys |= _conv(f"{p}.conv_block.2", planes, inplanes, 1)
    keys |= _conv(f"{p}.conv_block.5.conv2d", planes, planes, 3)
    keys |= _conv(f"{p}.conv_block.8", planes * 4, planes, 1)
    return keys


def _up_bottleneck(p: str, inplanes: int, planes: int) -> dict:
    keys = _conv(f"{p}.residual_layer.conv2d", planes * 4, inplanes, 1)
    keys |= _conv(f"{p}.conv_block.2", planes, inplanes, 1)
    keys |= _conv(f"{p}.conv_block.5.conv2d", planes, planes, 3)
    keys |= _conv(f"{p}.conv_block.8", planes * 4, planes, 1)
    return keys


def upstream_layout(ngf: int = 128) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of upstream `Net(ngf)`'s state dict (InstanceNorm2d: no keys)."""

    def encoder(p: str) -> dict:
        keys = _conv(f"{p}.0.conv2d", 64, 3, 7)
        keys |= _bottleneck(f"{p}.3", 64, 32, True)
        keys |= _bottleneck(f"{p}.4", 128, ngf, True)
        return keys

    c = ngf * 4
    keys = encoder("model1")
    keys["ins.weight"] = (1, c, c)
    keys |= encoder("model.0")
    keys["model.1.weight"] = (1, c, c)
    for i in range(2, 8):
        keys |= _bottleneck(f"model.{i}", c, ngf, False)
    keys |= _up_bottleneck("model.8", c, 32)
    keys |= _up_bottleneck("model.9", 128, 16)
    keys |= _conv("model.12.conv2d", 3, 64, 7)
    return keys


def random_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    shared: dict[str, torch.Tensor] = {}
    for key, shape in upstream_layout().items():
        twin = key.replace("model.0.", "model1.", 1).replace("model.1.weight", "ins.weight")
        if twin in shared:  # the encoder and Inspiration layer are one module, twice
            state[key] = shared[twin].clone()
            continue
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if key.endswith("ins.weight"):
            t = torch.rand(shape, generator=g) * 0.02
        else:
            t = torch.randn(shape, generator=g) / np.sqrt(fan_in)
        state[key] = shared[key] = t
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mirror = tmp_path_factory.mktemp("msgnet_mirror")
    path = mirror / "msgnet" / msgnet.CHECKPOINT_FILE
    path.parent.mkdir(parents=True)
    torch.save(random_checkpoint(), path)
    return path


def test_the_port_has_the_upstream_layout() -> None:
    port = {k: tuple(v.shape) for k, v in msgnet.MSGNet(128).state_dict().items()}
    assert port == upstream_layout()


def test_random_checkpoint_through_the_normal_path(checkpoint, photos_dir, styles_dir, tmp_path):
    stylizer = make_stylizer(tmp_path, checkpoint.parent.parent)
    photo = Image.open(photos_dir / "venice-boat.jpg").convert("RGB").resize((67, 45))
    painting = Image.open(styles_dir / "the_scream.jpg")
    style = OwnStyle(paintings=((painting, 1.0),), engine="msgnet")
    out = stylizer.stylize(photo, style)
    assert out.size == photo.size  # odd sides: padded to a multiple of 4 and cropped
    again = stylizer.stylize(photo, style)
    assert np.array_equal(np.asarray(out), np.asarray(again))  # deterministic
    other = stylizer.stylize(photo, OwnStyle(paintings=((Image.open(styles_dir / "wave.jpg"),
                                                         1.0),), engine="msgnet"))  # fmt: skip
    assert not np.array_equal(np.asarray(out), np.asarray(other))  # the target matters
    net = stylizer.own_style_network(style, torch.zeros(1, 3, 45, 67))
    with torch.inference_mode():
        y = net(torch.rand(1, 3, 45, 67) * 255)
    assert y.shape == (1, 3, 45, 67) and float(y.min()) >= 0 and float(y.max()) <= 255


def test_magenta_vectors_do_not_drive_msgnet(checkpoint, tmp_path) -> None:
    stylizer = make_stylizer(tmp_path, checkpoint.parent.parent)
    photo = Image.new("RGB", (32, 32), (10, 200, 30))
    with pytest.raises(EngineError, match="painting itself"):
        stylizer.stylize(photo, OwnStyle(vectors=(((0.0,) * 100, 1.0),), engine="msgnet"))


def test_old_instance_norm_running_stats_are_ignored(tmp_path) -> None:
    state = random_checkpoint(1)
    state["model1.1.running_mean"] = torch.zeros(64)
    state["model.0.1.running_var"] = torch.ones(64)
    path = tmp_path / "old.model"
    torch.save(state, path)
    net = msgnet.load_msgnet(path)
    assert torch.equal(net.ins.weight, state["ins.weight"])


@pytest.mark.parametrize("defect", ["missing", "unexpected", "shape", "twin", "garbage", "pickle"])
def test_wrong_checkpoints_are_refused(tmp_path, defect) -> None:
    state = random_checkpoint(2)
    path = tmp_path / f"{defect}.model"
    if defect == "missing":
        del state["model.12.conv2d.bias"]
    elif defect == "unexpected":
        state["model.13.conv2d.weight"] = torch.zeros(3, 3, 1, 1)
    elif defect == "shape":
        state["model.2.conv_block.5.conv2d.weight"] = torch.zeros(128, 128, 5, 5)
    elif defect == "twin":
        state["model1.0.conv2d.bias"] = state["model1.0.conv2d.bias"] + 1
    if defect == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif defect == "pickle":
        torch.save({"weights": [1, 2, 3]}, path)
    else:
        torch.save(state, path)
    with pytest.raises(ModelFormatError) as info:
        msgnet.load_msgnet(path)
    assert "\n" not in str(info.value)


def test_the_operators_engine_setting(checkpoint, styles_dir, tmp_path) -> None:
    stylizer = make_stylizer(tmp_path, checkpoint.parent.parent)
    photo = Image.new("RGB", (40, 28), (10, 120, 200))
    painting = Image.open(styles_dir / "wave.jpg")
    explicit = stylizer.stylize(photo, OwnStyle(paintings=((painting, 1.0),), engine="msgnet"))
    # the operator's TOTOSHKA_OWN_STYLE_ENGINE=msgnet, as the factory passes it on
    stylizer = make_stylizer(tmp_path, checkpoint.parent.parent, own_style_engine="msgnet")
    by_setting = stylizer.stylize(photo, OwnStyle(paintings=((painting, 1.0),)))
    assert np.array_equal(np.asarray(explicit), np.asarray(by_setting))
    # vectors are Magenta's own: the setting does not apply to them (needs the magenta
    # model, absent from this mirror, so the store says so)
    with pytest.raises(EngineError, match="magenta"):
        stylizer.stylize(photo, OwnStyle(vectors=(((0.0,) * 100, 1.0),)))
