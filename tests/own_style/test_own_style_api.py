"""The own-style API the bot and the CLI use: `Stylizer.style_vector`, `OwnStyle`
(vectors, mixing, strength), painting presets, and awkward style pictures."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from totoshka.engine import own_style
from totoshka.engine.catalog import load_catalog
from totoshka.engine.errors import EngineError, ImageError
from totoshka.engine.stylizer import OwnStyle, Stylizer
from totoshka.engine.stylizer import to_tensor as tensor_of

SMALL = (96, 64)


@pytest.fixture(scope="module")
def photo(photos_dir: Path) -> Image.Image:
    return Image.open(photos_dir / "venice-boat.jpg").convert("RGB").resize(SMALL)


@pytest.fixture(scope="module")
def vectors(stylizer: Stylizer, styles_dir: Path) -> dict[str, list[float]]:
    return {
        name: stylizer.style_vector(Image.open(styles_dir / f"{name}.jpg"))
        for name in ("the_scream", "wave")
    }


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def test_style_vector_is_100_floats_and_deterministic(stylizer, styles_dir, vectors) -> None:
    again = stylizer.style_vector(Image.open(styles_dir / "the_scream.jpg"))
    assert len(again) == 100 and all(isinstance(v, float) for v in again)
    assert again == vectors["the_scream"]
    assert np.linalg.norm(np.subtract(vectors["the_scream"], vectors["wave"])) > 1.0


def test_own_style_vector_and_the_same_as_a_preset_vector(stylizer, photo, vectors) -> None:
    own = stylizer.stylize(photo, OwnStyle(vectors=((tuple(vectors["wave"]), 1.0),)))
    assert own.size == photo.size
    assert np.abs(arr(own) - arr(photo)).mean() > 20  # repainted, not the photo


def test_mixing_two_paintings(stylizer, photo, vectors) -> None:
    scream, wave = tuple(vectors["the_scream"]), tuple(vectors["wave"])
    only_scream = stylizer.stylize(photo, OwnStyle(vectors=((scream, 1.0),)))
    weight_zero = stylizer.stylize(photo, OwnStyle(vectors=((scream, 2.0), (wave, 0.0))))
    assert np.array_equal(arr(only_scream), arr(weight_zero))
    half = stylizer.stylize(photo, OwnStyle(vectors=((scream, 0.5), (wave, 0.5))))
    only_wave = stylizer.stylize(photo, OwnStyle(vectors=((wave, 1.0),)))
    d = lambda a, b: np.abs(arr(a) - arr(b)).mean()  # noqa: E731
    assert d(half, only_scream) > 3 and d(half, only_wave) > 3
    mixed = own_style.mix_vectors([(scream, 3.0), (wave, 1.0)])
    assert np.allclose(mixed, 0.75 * np.array(scream) + 0.25 * np.array(wave))


def test_style_strength_mixes_in_the_photos_own_vector(stylizer, photo, vectors) -> None:
    scream = tuple(vectors["the_scream"])
    full = stylizer.stylize(photo, OwnStyle(vectors=((scream, 1.0),)))
    weak = stylizer.stylize(photo, OwnStyle(vectors=((scream, 1.0),), style_strength=0.3))
    # the recipe itself: (1 - s) * b_photo + s * b_style
    b_photo = own_style.predict_vector(
        stylizer.own_styles.predictor(), own_style.painting_crops(photo)
    )
    expected = 0.7 * np.array(b_photo) + 0.3 * np.array(scream)
    assert np.allclose(own_style.with_photo(scream, b_photo, 0.3), expected)
    net = stylizer.own_style_network(
        OwnStyle(vectors=((scream, 1.0),), style_strength=0.3), tensor_of(photo)
    )
    assert np.allclose(net.style.numpy()[0], expected, atol=1e-5)
    # weaker style: closer to the photo's colours than the full style
    assert np.abs(arr(weak) - arr(photo)).mean() < np.abs(arr(full) - arr(photo)).mean()


def test_paintings_in_the_own_style_equal_their_vectors(stylizer, photo, styles_dir, vectors):
    painting = Image.open(styles_dir / "the_scream.jpg")
    by_image = stylizer.stylize(photo, OwnStyle(paintings=((painting, 1.0),)))
    by_vector = stylizer.stylize(photo, OwnStyle(vectors=((tuple(vectors["the_scream"]), 1.0),)))
    assert np.array_equal(arr(by_image), arr(by_vector))


def test_own_styles_load_their_networks_once(stylizer, photo, vectors, monkeypatch) -> None:
    """The Stylizer's LRU holds Magenta's two networks: a photo reuses them (no per-model
    cache of the model modules does it for the Stylizer)."""
    from totoshka.engine.models import magenta

    x = tensor_of(photo)
    first = stylizer.own_style_network(OwnStyle(vectors=((tuple(vectors["wave"]), 1.0),)), x)
    predictor = stylizer.own_styles.predictor()

    def no_loading(*args: object) -> None:
        raise AssertionError("a network was loaded again")

    monkeypatch.setattr(magenta, "load_predictor", no_loading)
    monkeypatch.setattr(magenta, "load_transfer", no_loading)
    weak = OwnStyle(vectors=((tuple(vectors["the_scream"]), 1.0),), style_strength=0.5)
    second = stylizer.own_style_network(weak, x)  # needs the predictor too (the photo's)
    assert second.transfer is first.transfer  # one transfer network, two bindings
    assert stylizer.own_styles.predictor() is predictor
    assert len(stylizer.style_vector(photo)) == 100  # the predictor, from the cache


@pytest.mark.parametrize(
    ("style", "message"),
    [
        (OwnStyle(), "at least one painting"),
        (OwnStyle(vectors=(((1.0, 2.0), 1.0),)), "100 finite numbers"),
        (OwnStyle(vectors=(((float("nan"),) * 100, 1.0),)), "100 finite numbers"),
        (OwnStyle(vectors=(((0.0,) * 100, 0.0),)), "not all zero"),
        (OwnStyle(vectors=(((0.0,) * 100, -1.0),)), "non-negative"),
        (OwnStyle(vectors=(((0.0,) * 100, 1.0),), style_strength=1.5), "between 0 and 1"),
        (OwnStyle(vectors=(((0.0,) * 100, 1.0),), engine="vangogh"), "unknown own-style engine"),
    ],
)
def test_bad_own_styles_are_one_line_errors(stylizer, photo, style, message) -> None:
    with pytest.raises(EngineError, match=message) as info:
        stylizer.stylize(photo, style)
    assert "\n" not in str(info.value)


# --- awkward style pictures ---------------------------------------------------------


def _gif_bytes(frames: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def test_awkward_paintings_give_sane_vectors(stylizer, styles_dir, vectors) -> None:
    scream = Image.open(styles_dir / "the_scream.jpg").convert("RGB")
    ref = np.array(vectors["the_scream"])

    def close(image: Image.Image) -> float:
        v = np.array(stylizer.style_vector(image))
        assert v.shape == (100,) and np.isfinite(v).all()
        return float(np.linalg.norm(v - ref) / np.linalg.norm(ref))

    assert close(scream.resize((6000, 7640))) < 0.1  # huge: same style as the original
    assert close(scream.resize((48, 61))) < 1.0  # tiny but usable: upscaled, still a style
    gray = scream.convert("L")
    close(gray)
    rgba = scream.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0).point(lambda _: 128))
    close(rgba)
    la = scream.convert("LA")
    close(la)
    close(scream.convert("P", palette=Image.Palette.ADAPTIVE))
    wave = Image.open(styles_dir / "wave.jpg").convert("RGB")
    frames = [scream.resize((200, 254)), wave.resize((200, 254))]
    gif = Image.open(io.BytesIO(_gif_bytes(frames)))
    gif.seek(1)  # even when left on a later frame, the first frame is the painting
    first = np.array(stylizer.style_vector(gif))
    wave_vector = np.array(vectors["wave"])
    assert np.linalg.norm(first - ref) < 0.5 * np.linalg.norm(first - wave_vector)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (Image.new("RGB", (16, 16), (200, 10, 10)), "too small"),
        (Image.new("RGB", (4000, 100), (200, 10, 10)), "thin strip"),
        (Image.new("RGB", (300, 300), (200, 10, 10)), "single flat colour"),
    ],
)
def test_unusable_paintings_are_one_line_image_errors(stylizer, image, message) -> None:
    with pytest.raises(ImageError, match=message) as info:
        stylizer.style_vector(image)
    assert "\n" not in str(info.value)


def test_a_photo_as_the_style_works(stylizer, photos_dir, photo) -> None:
    flowers = Image.open(photos_dir / "flowers.jpg")
    out = stylizer.stylize(photo, OwnStyle(paintings=((flowers, 1.0),)))
    assert out.size == photo.size


# --- painting presets -------------------------------------------------------------------


def test_painting_preset_lists_and_stylizes_like_a_builtin(
    shared_dir, styles_dir, tmp_path, photo, vectors
) -> None:
    from own_style_helpers import make_stylizer

    data = tmp_path / "data"
    first = make_stylizer(tmp_path, shared_dir / "models")
    style = own_style.add_painting_style(
        "my_scream",
        styles_dir / "the_scream.jpg",
        catalog=first.catalog,
        store=first.store,
        title_en="My Scream",
        title_ru="Мой крик",
        data_dir=data,
    )
    assert style.vector is not None and len(style.vector) == 100
    assert np.allclose(style.vector, vectors["the_scream"])
    catalog = load_catalog(data)
    listed = catalog.style("my_scream")
    assert listed.title["ru"] == "Мой крик" and catalog.model(listed.model).family == "magenta"
    assert listed.preview and Path(listed.preview).is_file()
    second = make_stylizer(tmp_path, shared_dir / "models")
    by_name = second.stylize(photo, "my_scream")
    by_vector = second.stylize(photo, OwnStyle(vectors=((tuple(vectors["the_scream"]), 1.0),)))
    assert np.abs(arr(by_name) - arr(by_vector)).max() <= 1
    with pytest.raises(EngineError, match="already exists"):
        own_style.add_painting_style("my_scream", styles_dir / "wave.jpg", catalog=first.catalog,
                                     store=first.store, data_dir=data)  # fmt: skip
