"""The shipped catalog keeps its promises; the registry refuses what breaks the rules."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from totoshka.engine.catalog import (
    OPERATOR,
    Catalog,
    CatalogError,
    Model,
    ModelFile,
    Style,
    builtin_catalog_data,
    catalog_from_dicts,
    load_builtin_catalog,
    load_catalog,
    to_json,
)
from totoshka.engine.errors import UnknownStyleError

ML5 = ["la_muse", "mathura", "matilde_perez", "matta", "rain_princess", "scream", "udnie",
       "wave", "wreck"]  # fmt: skip
ML5_COMMIT = "0612a3e7c51cbffdc5db701dff49d16d1ac26fa8"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_builtin_catalog()


def test_ids_unique_short_and_callback_safe() -> None:
    data = builtin_catalog_data()
    style_ids = [s["id"] for s in data["styles"]]
    model_ids = [m["id"] for m in data["models"]]
    assert len(style_ids) == len(set(style_ids))
    assert len(model_ids) == len(set(model_ids))
    for sid in style_ids:
        assert sid == sid.lower() and len(sid.encode()) <= 32 and sid.isascii()


def test_every_style_has_titles_credit_license(catalog: Catalog) -> None:
    assert len(catalog.styles()) >= 13
    for style in catalog.styles():
        assert style.title["en"].strip() and style.title["ru"].strip(), style.id
        assert any("\u0400" <= ch <= "\u04ff" for ch in style.title["ru"]), style.id
        assert style.credit and style.license, style.id


def test_every_file_has_url_and_hash_or_tofu_note(catalog: Catalog) -> None:
    for model in catalog.models():
        for f in model.files:
            assert f.url.startswith("https://"), f.path
            if f.sha256 is None:
                assert f.note and "first" in f.note, f.path
            else:
                assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0


def test_families_and_licenses(catalog: Catalog) -> None:
    expected = {"ml5-wave": ("ml5", "MIT"), "pytorch-examples": ("pytorch", "BSD-3-Clause"),
                "magenta": ("magenta", "Apache-2.0"), "msgnet": ("msgnet", "MIT")}  # fmt: skip
    for model_id, (family, license) in expected.items():
        model = catalog.model(model_id)
        assert (model.family, model.license) == (family, license)
    for name in ML5:
        assert catalog.style(name).model == f"ml5-{name}"
    for sid in ("pt-mosaic", "pt-candy", "pt-rain_princess", "pt-udnie"):
        style = catalog.style(sid)
        assert style.model == "pytorch-examples"
        assert style.member and style.member.startswith("saved_models/")
        assert style.member.endswith(".pth")
    assert catalog.model("pytorch-examples").files[0].path == "pytorch/saved_models.zip"
    assert catalog.model("msgnet").files[0].path == "msgnet/21styles.model"
    assert catalog.style("wave").title["ru"] == "Большая волна в Канагаве"
    assert catalog.style("scream").title["ru"] == "Крик"


def test_ml5_entries_match_the_mirror_bytes(catalog: Catalog, shared_dir) -> None:
    for name in ML5:
        model = catalog.model(f"ml5-{name}")
        assert len(model.files) == 49  # manifest + 48 variables
        for f in model.files:
            assert f.path.startswith(f"ml5/{name}/")
            assert f.url == (
                f"https://raw.githubusercontent.com/ml5js/ml5-data-and-models/{ML5_COMMIT}"
                f"/models/style-transfer/{name}/{f.name}"
            )
            data = (shared_dir / "models" / f.path).read_bytes()
            assert len(data) == f.size
            assert hashlib.sha256(data).hexdigest() == f.sha256


def test_magenta_entries_match_the_mirror_bytes(catalog: Catalog, shared_dir) -> None:
    model = catalog.model("magenta")
    assert len(model.files) == 2
    for f in model.files:
        data = (shared_dir / "models" / f.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)
        assert f.url.startswith("https://storage.googleapis.com/download.tensorflow.org/")


def test_unknown_ids(catalog: Catalog) -> None:
    with pytest.raises(UnknownStyleError, match="nope"):
        catalog.style("nope")
    with pytest.raises(UnknownStyleError):
        catalog.model("nope")


def _model(mid: str = "m1", **kw) -> Model:
    f = ModelFile(path=f"x/{mid}/w.pth", url="https://example.org/w.pth", sha256="a" * 64)
    return Model(id=mid, family="pytorch", files=(f,), credit="c", license="MIT", **kw)


def _style(sid: str = "s1", model: str = "m1", **kw) -> Style:
    return Style(id=sid, model=model, title={"en": "S", "ru": "С"}, credit="c", license="MIT",
                 **kw)  # fmt: skip


def test_registry_refuses_duplicates_and_bad_records() -> None:
    cat = Catalog()
    cat.add_model(_model())
    cat.add_style(_style())
    with pytest.raises(CatalogError, match="duplicate model"):
        cat.add_model(_model())
    with pytest.raises(CatalogError, match="duplicate style"):
        cat.add_style(_style())
    with pytest.raises(CatalogError, match="unknown model"):
        cat.add_style(_style("s2", model="m-missing"))
    with pytest.raises(CatalogError, match="ru title"):
        cat.add_style(replace(_style("s3"), title={"en": "only English"}))
    with pytest.raises(CatalogError, match="bad style id"):
        cat.add_style(_style("Has Spaces"))
    nohash = ModelFile(path="x/m2/w.pth", url="https://example.org/w", sha256=None)
    with pytest.raises(CatalogError, match="no sha256 and no note"):
        cat.add_model(replace(_model("m2"), files=(nohash,)))
    with pytest.raises(CatalogError, match="malformed"):
        cat.add_model(replace(_model("m3"), files=(replace(nohash, sha256="abc"),)))
    with pytest.raises(CatalogError, match="relative"):
        cat.add_model(replace(_model("m4"), files=(replace(nohash, path="../../etc/passwd"),)))


def test_load_catalog_merges_operator_styles(tmp_path) -> None:
    user = {
        "models": [],
        "styles": [
            {
                "id": "my-sunset",
                "model": "magenta",
                "title": {"en": "Sunset", "ru": "Закат"},
                "credit": "me",
                "license": "CC0",
                "vector": [0.5] * 100,
            },
        ],
    }
    (tmp_path / "catalog.json").write_text(json.dumps(user))
    cat = load_catalog(tmp_path)
    style = cat.style("my-sunset")
    assert style.origin == OPERATOR and style.vector == tuple([0.5] * 100)
    assert cat.style("wave").origin != OPERATOR

    user["styles"][0]["id"] = "wave"  # an operator cannot shadow a built-in style
    (tmp_path / "catalog.json").write_text(json.dumps(user))
    with pytest.raises(CatalogError, match="duplicate style id 'wave'"):
        load_catalog(tmp_path)


def test_entries_of_the_wrong_shape_are_refused_in_one_line() -> None:
    model = {"id": "m1", "family": "pytorch", "credit": "c", "license": "MIT"}
    with pytest.raises(CatalogError, match=r"^bad model entry 'm1': files: Field required$"):
        catalog_from_dicts([model], [])
    model["files"] = [{"path": "x/m1/w.pth", "url": "https://example.org/w", "sha256": "a" * 64}]
    style = {"id": "s1", "model": "m1", "title": {"en": "S", "ru": "С"}, "vector": ["x"]}
    with pytest.raises(CatalogError, match=r"^bad style entry 's1': vector\.0: [^\n]+$"):
        catalog_from_dicts([model], [style])


def test_records_round_trip_through_their_json() -> None:
    model, style = _model(), _style(vector=(0.5, 1.0), member="a/b.pth")
    assert to_json(style) == {"id": "s1", "model": "m1", "title": {"en": "S", "ru": "С"},
                              "credit": "c", "license": "MIT", "member": "a/b.pth",
                              "vector": [0.5, 1.0]}  # fmt: skip
    again = catalog_from_dicts([to_json(model)], [to_json(style)], origin=OPERATOR)
    assert again.model("m1") == replace(model, origin=OPERATOR)
    assert again.style("s1") == replace(style, origin=OPERATOR)
