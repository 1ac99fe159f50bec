"""Which loader builds a style's network: one entry per model family.

New families slot in by adding a loader here; the stylizer, tiling and backends
only ever see `forward(x) -> y` modules (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from totoshka.engine.catalog import Model, Style
from totoshka.engine.errors import EngineError
from totoshka.engine.imageio import load_image
from totoshka.engine.models import dumoulin
from totoshka.engine.models.magenta import load_bound
from totoshka.engine.models.ml5 import load_ml5
from totoshka.engine.models.msgnet import CHECKPOINT_FILE, BoundMSGNet, load_msgnet, mixed_target
from totoshka.engine.models.transformer_net import load_transformer_net

# (model folder in the cache, model record, style record) -> ready network
Loader = Callable[[Path, Model, Style], nn.Module]


def _ml5(folder: Path, model: Model, style: Style) -> nn.Module:
    return load_ml5(folder)


def _pytorch(folder: Path, model: Model, style: Style) -> nn.Module:
    # saved_models.zip holds several styles; a single .pth is a model of one file.
    archive_or_file = folder / Path(model.files[0].path).name
    return load_transformer_net(archive_or_file, member=style.member)


def _magenta(folder: Path, model: Model, style: Style) -> nn.Module:
    # painting presets: the transfer network bound to the style's stored vector
    if style.vector is None:
        raise EngineError(f"style {style.id!r}: a Magenta style needs a style vector")
    return load_bound(folder, style.vector)


def _dumoulin(folder: Path, model: Model, style: Style) -> nn.Module:
    # one network, 26 styles: a style (or a mix of styles) is its weight vector
    if style.vector is None or len(style.vector) != dumoulin.STYLE_COUNT:
        raise EngineError(
            f"style {style.id!r}: a Dumoulin style needs {dumoulin.STYLE_COUNT} style weights"
        )
    try:
        return dumoulin.load_bound(folder, style.vector)
    except ValueError as exc:  # negative or all-zero weights
        raise EngineError(f"style {style.id!r}: {exc}") from None


def _msgnet(folder: Path, model: Model, style: Style) -> nn.Module:
    # a catalog style of MSG-Net paints from its preview picture, the painting itself
    if not style.preview:
        raise EngineError(f"style {style.id!r}: an MSG-Net style needs its painting as preview")
    net = load_msgnet(str(folder / CHECKPOINT_FILE))
    return BoundMSGNet(net, mixed_target(net, [load_image(style.preview)], [1.0]))


LOADERS: dict[str, Loader] = {
    "ml5": _ml5,
    "pytorch": _pytorch,
    "magenta": _magenta,
    "msgnet": _msgnet,
    "dumoulin": _dumoulin,
}


def load_network(folder: Path, model: Model, style: Style) -> nn.Module:
    try:
        loader = LOADERS[model.family]
    except KeyError:
        raise EngineError(f"style {style.id!r}: unknown model family {model.family!r}") from None
    return loader(folder, model, style)
