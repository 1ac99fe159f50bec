"""Your own style: any painting becomes the style, at the photo's full resolution.

Two engines, chosen by `OwnStyle.engine` (None: the operator's setting
`EngineSettings.own_style_engine`, i.e. `TOTOSHKA_OWN_STYLE_ENGINE`, for styles given
as paintings, default magenta; styles given only as vectors are Magenta's):

- **magenta** (default): Ghiasi et al.'s style prediction network turns the
  painting into a 100-number style vector once (`style_vector`); the transfer
  network, bound to that vector, paints the photo. Vectors are what the bot
  stores per user, and what operator painting presets keep in the catalog.
- **msgnet**: MSG-Net's Inspiration layer takes the Gram matrix of the painting's
  features as its target; it needs the painting itself (`OwnStyle.paintings`)
  and the `msgnet` model (21styles.model), which operators pull separately.

Style strength (Magenta's own recipe): with strength s the vector is
``(1 - s) * b_photo + s * b_painting``, b_photo being the photo's own vector,
i.e. the tutorial's ``r * b_content + (1 - r) * b_style`` with r = 1 - s.
That keeps the painting's brush work at low strengths instead of fading the
picture to the photo as a pixel blend does. Two paintings mix as the weighted
mean of their vectors.

How a non-square painting feeds the 256x256 predictor (`PAINTING_FIT`):
the painting is scaled so its short side is 256 and, when the long side is
longer, the vector is the **mean of the vectors of three 256x256 crops** at the
start, centre and end of the long side ("crops3"). Measured with
tests/own_style/measure_painting_fit.py on the 22 paintings of
../shared/images/styles plus a diptych and a 3:1 panorama, against a dense
reference (the mean vector of crops every 32 px), the error being the distance
to the reference over the median distance between two different paintings
(3.89): crops3 0.021 mean / 0.060 worst; the tutorial's centre crop 0.062 /
0.208 (it misses half of a diptych); padding to a square 0.137 / 0.301 (the
mirrored margins add strokes the painting does not have); squashing to a
square 0.178 / 0.595 (it changes the strokes' shape and scale, visibly: vertical
streaks on a wide painting). Cosines hide this (all style vectors share a large
common part: 0.9999 vs 0.9992 vs 0.9969 vs 0.9939). Three crops are one
predictor batch of three (~90 ms warm on 2 CPU threads), nothing next to the
transfer network. Only the predictor sees 256 px: the photo itself is painted
at its full resolution.

Where the networks come from (`OwnStyleNetworks`): the catalog and the model store
give the model folders; the networks themselves are loaded through a cache the
caller provides, the `Stylizer`'s LRU (the engine's one cache of networks), so a
bot loads the predictor and the transfer network once, not once per photo. This
module knows nothing of the Stylizer; the Stylizer uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from PIL import Image

from totoshka.engine.catalog import Catalog, Style
from totoshka.engine.errors import EngineError, ImageError
from totoshka.engine.imageio import load_image, to_srgb_rgb
from totoshka.engine.operator_styles import add_operator_style
from totoshka.engine.store import ModelStore

if TYPE_CHECKING:
    from torch import Tensor, nn

    from totoshka.engine.models import magenta, msgnet

# Importing this module loads no torch: the CLI reads and checks paintings with it,
# and `engine.coldpath` makes the predictor's input and mixes vectors with it, both
# before anything knows whether torch will be needed. The networks (`models.magenta`,
# `models.msgnet`) are imported by the functions that load or run them.
STYLE_DIM = 100  # models.magenta.STYLE_DIM (tests keep them equal)
PREDICTOR_SIZE = 256  # models.magenta.PREDICTOR_SIZE
# settings.OWN_STYLE_ENGINES (tests keep them equal): settings imports the backends,
# whose OpenVINO runner reaches `coldpath`, which imports this module
ENGINES: tuple[str, ...] = ("magenta", "msgnet")
DEFAULT_ENGINE = "magenta"
MAGENTA_MODEL = "magenta"
MSGNET_MODEL = "msgnet"
# keys of the own-style networks in the network cache (beside the styles' ids)
PREDICTOR_KEY = "magenta:predictor"
TRANSFER_KEY = "magenta:transfer"
MSGNET_KEY = "msgnet:network"

PAINTING_FIT = "crops3"  # see the module docstring
FITS = ("center", "crops3", "squash", "pad")
MIN_PAINTING_SIDE = 32  # below this there is no texture left to learn a style from
MAX_WEIGHTS = 8


@dataclass(frozen=True)
class OwnStyle:
    """A style from the user's own painting(s), as Magenta style vectors.

    `vectors` pairs each painting's vector with its weight (mixing two paintings);
    `style_strength` < 1 mixes in the photo's own vector (Magenta's recipe).
    `paintings` pairs painting images with weights instead: MSG-Net needs them
    (its target is the painting's Gram matrix, not a vector); with Magenta their
    vectors are computed and mixed with `vectors`.
    `engine`: "magenta" or "msgnet" (operators who pulled 21styles.model); None:
    the operator's setting (`EngineSettings.own_style_engine`, default magenta) when
    paintings are given, Magenta when there are only vectors (they are Magenta's).
    """

    vectors: tuple[tuple[tuple[float, ...], float], ...] = ()
    style_strength: float = 1.0
    paintings: tuple[tuple[Image.Image, float], ...] = ()
    engine: str | None = None


# (key, load) -> the network: `load()` once, then the kept one (see `OwnStyleNetworks`)
NetworkCache = Callable[[str, Callable[[], "nn.Module"]], "nn.Module"]


def load_every_time(key: str, load: Callable[[], nn.Module]) -> nn.Module:
    """No cache: for one-off work such as computing one preset's vector."""
    return load()


@dataclass(frozen=True)
class OwnStyleNetworks:
    """The networks own styles need, from the model folders of `catalog` and `store`.

    `cache` keeps them loaded between photos; the Stylizer passes its LRU, so there
    is one cache of networks in the engine, not one per model module.
    `default_engine` is the operator's engine for styles given as paintings.
    """

    catalog: Catalog
    store: ModelStore
    cache: NetworkCache = load_every_time
    default_engine: str = DEFAULT_ENGINE

    def folder(self, model_id: str) -> Path:
        """The model's folder, fetched into the cache first if it is missing."""
        return self.store.ensure(self.catalog.model(model_id))

    def predictor(self) -> nn.Module:
        """Magenta's style prediction network (painting -> style vector)."""

        def load() -> nn.Module:
            from totoshka.engine.models import magenta

            prediction, _ = magenta.model_files(self.folder(MAGENTA_MODEL))
            return magenta.load_predictor(str(prediction))

        return self.cache(PREDICTOR_KEY, load)

    def transfer(self) -> magenta.TransferNetwork:
        """Magenta's transfer network, shared by every vector it is bound to."""

        from totoshka.engine.models import magenta

        def load() -> nn.Module:
            _, transfer = magenta.model_files(self.folder(MAGENTA_MODEL))
            return magenta.load_transfer(str(transfer))

        return cast("magenta.TransferNetwork", self.cache(TRANSFER_KEY, load))

    def bound(self, vector: Sequence[float]) -> magenta.BoundTransfer:
        """The transfer network bound to `vector`: a `forward(x) -> y` module."""
        from totoshka.engine.models import magenta

        return magenta.BoundTransfer(self.transfer(), list(vector))

    def msgnet_network(self) -> msgnet.MSGNet:
        """MSG-Net (21styles.model), whose target is set per painting."""

        from totoshka.engine.models import msgnet

        def load() -> nn.Module:
            return msgnet.load_msgnet(str(self.folder(MSGNET_MODEL) / msgnet.CHECKPOINT_FILE))

        return cast("msgnet.MSGNet", self.cache(MSGNET_KEY, load))


def _rgb(image: Image.Image) -> Image.Image:
    """Any PIL image (grayscale, palette, alpha on white, 16-bit, CMYK, ICC, the first
    frame of an animation) as plain sRGB RGB, through the engine's image decoder."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    return to_srgb_rgb(image, image.info.get("icc_profile"))


def check_painting(image: Image.Image) -> Image.Image:
    """The painting as RGB, or a one-line ImageError for what cannot be a style."""
    if not isinstance(image, Image.Image):
        raise ImageError("the style must be a picture")
    w, h = image.size
    if min(w, h) < MIN_PAINTING_SIDE:
        raise ImageError(
            f"the style picture is too small ({w}x{h}); send one at least "
            f"{MIN_PAINTING_SIDE} pixels on each side"
        )
    if max(w, h) / min(w, h) > 20:
        raise ImageError(f"the style picture is a thin strip ({w}x{h}); send a painting")
    rgb = _rgb(image)
    extrema = rgb.getextrema()
    if all(lo == hi for lo, hi in extrema):
        raise ImageError("the style picture is a single flat colour: there is no style in it")
    return rgb


def _scaled(image: Image.Image, short_side: int) -> Image.Image:
    w, h = image.size
    s = short_side / min(w, h)
    size = (max(short_side, round(w * s)), max(short_side, round(h * s)))
    if max(w, h) > 4 * max(size):  # huge paintings: cheap integer reduction first
        image = image.reduce(max(1, min(w, h) // (2 * short_side)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def painting_crops(
    image: Image.Image, fit: str = PAINTING_FIT, side: int = PREDICTOR_SIZE
) -> Tensor:
    """(N,3,side,side) predictor inputs in [0, 1]; the style vector is their mean."""
    import torch

    return torch.from_numpy(painting_arrays(image, fit, side))


def painting_arrays(
    image: Image.Image, fit: str = PAINTING_FIT, side: int = PREDICTOR_SIZE
) -> np.ndarray:
    """`painting_crops` as a float32 numpy array: what the predictor's IR takes in
    `engine.coldpath`, made by the same code so both paths see the same crops."""
    image = check_painting(image)
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}")
    if fit == "squash":
        arrays = [_array(image.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=3.0))]
    elif fit == "pad":
        w, h = image.size
        s = side / max(w, h)
        small = image.resize(
            (max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR
        )
        a = _array(small)
        top, left = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
        pads = ((top, side - top - a.shape[0]), (left, side - left - a.shape[1]), (0, 0))
        # reflect the painting into the margins rather than paint them a flat colour
        arrays = [np.pad(a, pads, mode="symmetric")]
    else:
        a = _array(_scaled(image, side))
        h, w = a.shape[:2]
        if fit == "center" or (h == side and w == side):
            offsets = [((h - side) // 2, (w - side) // 2)]
        else:
            extra_h, extra_w = h - side, w - side
            offsets = [(extra_h * k // 2, extra_w * k // 2) for k in (0, 1, 2)]
        arrays = [a[t : t + side, x : x + side] for t, x in offsets]
    batch = np.stack(arrays).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch)


def predict_vector(predictor: nn.Module, crops: Tensor) -> list[float]:
    import torch

    with torch.inference_mode():
        vectors = predictor(crops)
    return [float(v) for v in vectors.mean(dim=0)]


def photo_image(photo: Tensor) -> Image.Image:
    """A (1,3,H,W) 0..255 tensor back to a PIL image (for the photo's own vector)."""
    import torch

    array = photo[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def check_vector(vector: Sequence[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    if v.size != STYLE_DIM or not np.isfinite(v).all():
        raise EngineError(f"a style vector must have {STYLE_DIM} finite numbers")
    return v


def mix_vectors(pairs: Iterable[tuple[Sequence[float], float]]) -> list[float]:
    """Weighted mean of style vectors (weights >= 0, normalised to sum 1)."""
    pairs = list(pairs)
    if not pairs:
        raise EngineError("an own style needs at least one painting")
    if len(pairs) > MAX_WEIGHTS:
        raise EngineError(f"at most {MAX_WEIGHTS} paintings can be mixed")
    weights = np.asarray([float(w) for _, w in pairs])
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise EngineError("painting weights must be non-negative and not all zero")
    weights = weights / weights.sum()
    mixed = sum(w * check_vector(v) for (v, _), w in zip(pairs, weights, strict=True))
    return [float(x) for x in mixed]


def with_photo(style: Sequence[float], photo: Sequence[float], strength: float) -> list[float]:
    """Magenta's strength: ``(1 - s) * b_photo + s * b_style``."""
    check_strength(strength)
    s, p = check_vector(style), check_vector(photo)
    return [float(x) for x in (1.0 - strength) * p + strength * s]


def check_strength(strength: float) -> None:
    if not (isinstance(strength, (int, float)) and math.isfinite(strength)):
        raise EngineError("style strength must be a number between 0 and 1")
    if not 0.0 <= float(strength) <= 1.0:
        raise EngineError("style strength must be between 0 and 1")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise EngineError(f"unknown own-style engine {engine!r} (use {' or '.join(ENGINES)})")
    return engine


def load_painting(path: Path | str) -> Image.Image:
    """A painting file as a checked RGB image (the engine's safe decoder)."""
    return check_painting(load_image(path))


# --- networks for an OwnStyle (the Stylizer's `style_vector` and `own_style_network`) ---


def style_vector(networks: OwnStyleNetworks, painting: Image.Image) -> list[float]:
    """The painting's Magenta style vector (what the bot stores per user)."""
    crops = painting_crops(painting)
    return predict_vector(networks.predictor(), crops)


def engine_of(style: OwnStyle, default: str = DEFAULT_ENGINE) -> str:
    """The engine an OwnStyle runs on (see `OwnStyle.engine`); `default` is the
    operator's choice for paintings."""
    if style.engine is not None:
        return check_engine(style.engine)
    if not style.paintings:
        return "magenta"  # vectors are Magenta's own
    return check_engine(default)


def build_network(networks: OwnStyleNetworks, style: OwnStyle, photo: Tensor) -> nn.Module:
    """A `forward(x) -> y` module for an OwnStyle (bound to `photo` for strength < 1)."""
    engine = engine_of(style, networks.default_engine)
    check_strength(style.style_strength)
    if engine == "msgnet":
        return _msgnet_network(networks, style, photo)
    pairs: list[tuple[Sequence[float], float]] = [(v, w) for v, w in style.vectors]
    pairs += [(style_vector(networks, p), w) for p, w in style.paintings]
    vector = mix_vectors(pairs)
    if style.style_strength < 1.0:
        own = predict_vector(networks.predictor(), painting_crops(photo_image(photo)))
        vector = with_photo(vector, own, style.style_strength)
    return networks.bound(vector)


def _msgnet_network(networks: OwnStyleNetworks, style: OwnStyle, photo: Tensor) -> nn.Module:
    if style.vectors and not style.paintings:
        raise EngineError(
            "MSG-Net paints from the painting itself: this own style only has Magenta vectors"
        )
    if not style.paintings:
        raise EngineError("an own style needs at least one painting")
    from totoshka.engine.models import msgnet

    net = networks.msgnet_network()
    weights = [w for _, w in style.paintings]
    mix_vectors([([0.0] * STYLE_DIM, w) for w in weights])  # same weight rules
    paintings = [check_painting(p) for p, _ in style.paintings]
    target = msgnet.mixed_target(net, paintings, weights)
    if style.style_strength < 1.0:
        # MSG-Net's counterpart of Magenta's recipe: mix in the photo's own Gram target
        own = msgnet.mixed_target(net, [photo_image(photo)], [1.0])
        target = style.style_strength * target + (1.0 - style.style_strength) * own
    return msgnet.BoundMSGNet(net, target)


# --- painting presets: a painting's vector stored as an operator style ----------------


def add_painting_style(
    style_id: str,
    painting_path: Path | str,
    *,
    catalog: Catalog,
    store: ModelStore,
    title_en: str | None = None,
    title_ru: str | None = None,
    credit: str = "",
    license: str = "",
    data_dir: Path | str | None = None,
) -> Style:
    """`totoshka styles add NAME --painting FILE`: compute the painting's vector once
    (Magenta's predictor from `catalog` and `store`) and register it as an operator
    style of the `magenta` model in `data_dir` (default: the store's), the painting
    becoming its preview. Returns the registered `catalog.Style`."""
    painting = load_painting(painting_path)
    vector = style_vector(OwnStyleNetworks(catalog, store), painting)
    title_en = title_en or style_id.replace("_", " ").replace("-", " ").title()
    style = Style(
        id=style_id,
        model=MAGENTA_MODEL,
        title={"en": title_en, "ru": title_ru or title_en},
        credit=credit or f"painting {Path(painting_path).name}, added by the operator",
        license=license or "unknown",
        vector=tuple(vector),
        preview=str(painting_path),
    )
    return add_operator_style(style, data_dir=store.data_dir if data_dir is None else data_dir)
