"""Parity of the PyTorch Magenta port with Google's own runtime (LiteRT) at 384x384.

Same inputs for both: the content photo and the paintings preprocessed with the
TFLite tutorial's recipe (PROVENANCE.md), the *LiteRT* style vector fed to both
transfer networks so that the picture check measures the transfer network alone.

- style vectors: cosine >= 0.999 (reached: ~0.9999);
- pictures: the float32 port vs LiteRT's int8 arithmetic reaches 27-31 dB (floor
  asserted: 25 dB). The published file keeps every activation in int8 with one
  scale per tensor, including the insides of conditional instance norm (variance
  from int8-rounded squared differences, an int8 rsqrt clipped at ~2.5...), and
  those roundings add up over 17 normalised layers; the port computes the same
  network in float32, as the float model the int8 file was quantized from would.
  The proof that the gap is those activations and nothing structural: the port's
  own layers with the file's activation grids emulated (`int8_emulation.py`)
  reach >= 30 dB against LiteRT (32-36 dB), while a real mistake (one wrong
  padding or norm) costs far more (checked with a deliberately broken network).

Run with `-s` to see the figures.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from int8_emulation import Int8Emulation
from own_style_helpers import psnr, tutorial_crop

from totoshka.engine.models import magenta
from totoshka.engine.models.tflite_reader import TFLiteModel

PAINTINGS = ["the_scream", "starry_night", "composition_vii", "wave"]
MIN_COSINE = 0.999
MIN_PSNR_EMULATED = 30.0
MIN_PSNR_FLOAT = 25.0
BROKEN_MAX_PSNR = 20.0


@pytest.fixture(scope="module")
def litert(magenta_dir: Path):
    from ai_edge_litert.interpreter import Interpreter

    prediction = Interpreter(str(magenta_dir / magenta.PREDICTION_FILE))
    prediction.allocate_tensors()
    transfer = Interpreter(str(magenta_dir / magenta.TRANSFER_FILE))
    transfer.allocate_tensors()

    def predict(style: np.ndarray) -> np.ndarray:
        prediction.set_tensor(prediction.get_input_details()[0]["index"], style)
        prediction.invoke()
        return prediction.get_tensor(prediction.get_output_details()[0]["index"]).reshape(-1)

    inputs = {d["name"]: d["index"] for d in transfer.get_input_details()}

    def stylize(content: np.ndarray, vector: np.ndarray) -> np.ndarray:
        transfer.set_tensor(inputs["content_image"], content)
        transfer.set_tensor(
            inputs["mobilenet_conv/Conv/BiasAdd"], vector.reshape(1, 1, 1, -1).astype(np.float32)
        )
        transfer.invoke()
        return transfer.get_tensor(transfer.get_output_details()[0]["index"])[0]

    return predict, stylize


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def picture(y: np.ndarray | torch.Tensor) -> np.ndarray:
    """[0, 1] HWC (or NCHW tensor) -> 0..255 the way outputs are saved."""
    if isinstance(y, torch.Tensor):
        y = y.permute(0, 2, 3, 1).numpy()[0]
    return np.clip(y, 0.0, 1.0) * 255.0


def test_style_vectors_match_litert(litert, predictor, styles_dir: Path) -> None:
    predict, _ = litert
    for name in PAINTINGS:
        style = tutorial_crop(styles_dir / f"{name}.jpg", magenta.PREDICTOR_SIZE)
        reference = predict(style)
        with torch.inference_mode():
            ours = predictor(nchw(style)).numpy().reshape(-1)
        cosine = float(ours @ reference / np.linalg.norm(ours) / np.linalg.norm(reference))
        rel = float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))
        print(f"vector {name:16s} cosine {cosine:.5f}  relative L2 error {rel:.4f}")
        assert cosine >= MIN_COSINE, name


def test_pictures_match_litert(litert, transfer, magenta_dir, styles_dir, photos_dir) -> None:
    predict, stylize = litert
    emulated = Int8Emulation(transfer, TFLiteModel(magenta_dir / magenta.TRANSFER_FILE))
    content = tutorial_crop(photos_dir / "amber.jpg", magenta.TRANSFER_SIZE)
    for name in PAINTINGS:
        vector = predict(tutorial_crop(styles_dir / f"{name}.jpg", magenta.PREDICTOR_SIZE))
        reference = picture(stylize(content, vector))
        style = torch.from_numpy(vector)[None]
        with torch.inference_mode():
            ours = picture(transfer(nchw(content), style))
            ours_int8 = picture(emulated(nchw(content), style))
        db, db_int8 = psnr(ours, reference), psnr(ours_int8, reference)
        print(f"picture {name:16s} float32 port {db:.2f} dB, int8-emulated {db_int8:.2f} dB")
        assert db_int8 >= MIN_PSNR_EMULATED, name
        assert db >= MIN_PSNR_FLOAT, name


def test_bound_wrapper_is_the_transfer_network(transfer, predictor, styles_dir, photos_dir):
    """0..255 in/out and the bound vector change nothing at a multiple of 4."""
    content = tutorial_crop(photos_dir / "amber.jpg", magenta.TRANSFER_SIZE)
    vector = torch.randn(1, magenta.STYLE_DIM, generator=torch.Generator().manual_seed(0))
    bound = magenta.BoundTransfer(transfer, vector[0])
    with torch.inference_mode():
        direct = transfer(nchw(content), vector) * 255.0
        wrapped = bound(nchw(content) * 255.0)
    assert torch.allclose(direct, wrapped, atol=1e-3)


def test_a_structural_mistake_is_caught(litert, transfer, styles_dir, photos_dir) -> None:
    """The comparison is sharp: gamma and beta swapped in the residual norms falls far below."""
    predict, stylize = litert
    content = tutorial_crop(photos_dir / "amber.jpg", magenta.TRANSFER_SIZE)
    vector = predict(tutorial_crop(styles_dir / "wave.jpg", magenta.PREDICTOR_SIZE))
    broken = copy.deepcopy(transfer)
    for block in broken.residual:  # swap gamma and beta of every residual norm
        for norm in (block.norm1, block.norm2):
            norm.gamma, norm.beta = norm.beta, norm.gamma
    with torch.inference_mode():
        wrong = picture(broken(nchw(content), torch.from_numpy(vector)[None]))
    db = psnr(wrong, picture(stylize(content, vector)))
    print(f"broken network (gamma/beta swapped) {db:.2f} dB")
    assert db < BROKEN_MAX_PSNR
