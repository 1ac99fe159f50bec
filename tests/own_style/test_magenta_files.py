"""Reading the published .tflite files: what the graph says, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from totoshka.engine.errors import ModelFormatError
from totoshka.engine.models import magenta
from totoshka.engine.models.tflite_reader import TFLiteModel


def test_the_graph_is_read_by_name(magenta_dir: Path) -> None:
    model = TFLiteModel(magenta_dir / magenta.TRANSFER_FILE)
    assert set(model.inputs) == {"content_image", "mobilenet_conv/Conv/BiasAdd"}
    assert model.outputs == ("transformer/expand/conv3/conv/Sigmoid",)
    conv = model.producer("transformer/contract/conv2/Relu")
    assert conv.op == "CONV_2D" and conv.options["stride"] == (2, 2)
    w = model.weight(conv.inputs[1])  # int8 per output channel -> float32
    assert w.shape == (16, 3, 3, 8) and w.dtype.name == "float32"
    assert len({op.op for op in model.ops("RESIZE_NEAREST_NEIGHBOR")}) == 1


def test_the_modules_follow_the_graph(predictor, transfer) -> None:
    assert len(predictor.blocks) == 17
    assert [b.depthwise.stride for b in predictor.blocks].count(2) == 4
    assert sum(b.residual for b in predictor.blocks) == 10
    assert len(transfer.residual) == 5
    assert [layer.scale for layer in transfer.expand] == [2, 2, 1]
    assert transfer.residual[0].norm1.norm.eps == pytest.approx(1e-5)


@pytest.mark.parametrize("defect", ["garbage", "truncated", "swapped"])
def test_broken_files_are_refused(magenta_dir: Path, tmp_path: Path, defect: str) -> None:
    data = (magenta_dir / magenta.TRANSFER_FILE).read_bytes()
    path = tmp_path / "transfer.tflite"
    if defect == "garbage":
        path.write_bytes(b"\x00" * 64)
        load = magenta.load_transfer
    elif defect == "truncated":
        path.write_bytes(data[: len(data) // 3])
        load = magenta.load_transfer
    else:  # the transfer file where the predictor is expected
        path.write_bytes(data)
        load = magenta.load_predictor
    with pytest.raises(ModelFormatError) as info:
        load(path)
    assert "\n" not in str(info.value)
