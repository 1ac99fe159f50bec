"""The CLI's own-style options end to end, against the real Magenta files from the
mirror (../shared/models): `stylize --style-image`, `--mix`, `--style-strength`,
and `styles add NAME --painting FILE`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from totoshka.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _mirror(mirror_env: Path) -> None:
    """../shared/models as the mirror, fresh cache and data dirs (tests/conftest.py)."""


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code: int, contains: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    text = result.stderr.strip()
    assert "Traceback" not in text + result.stdout
    if code == 1:
        assert len(text.splitlines()) == 1, text
    assert contains in text, text


@pytest.fixture
def photo(shared_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "boat.jpg"
    Image.open(shared_dir / "images" / "content" / "venice-boat.jpg").resize((160, 100)).save(path)
    return path


def test_stylize_with_a_painting(photo, styles_dir, tmp_path) -> None:
    result = run("stylize", photo, "--style-image", styles_dir / "the_scream.jpg",
                 "-d", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out" / "boat.the_scream.jpg"
    assert out.is_file() and Image.open(out).size == (160, 100)


def test_stylize_with_two_paintings_mixed_and_weaker(photo, styles_dir, tmp_path) -> None:
    result = run("stylize", photo, "--style-image", styles_dir / "the_scream.jpg",
                 "--style-image", styles_dir / "wave.jpg", "--mix", "0.3",
                 "--style-strength", "0.6", "-o", tmp_path / "mixed.png")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert Image.open(tmp_path / "mixed.png").size == (160, 100)


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--style", "wave"], 2, "either --style or --style-image"),
        (["--mix", "0.3"], 2, "--mix needs two"),
        (["--own-style-engine", "vangogh"], 1, "unknown own-style engine"),
    ],
)
def test_bad_option_mixes(photo, styles_dir, extra, code, message) -> None:
    result = run("stylize", photo, "--style-image", styles_dir / "wave.jpg", *extra)
    one_line_error(result, code, message)


def test_no_style_at_all(photo) -> None:
    one_line_error(run("stylize", photo), 2, "--style NAME or --style-image")


def test_strength_without_a_painting(photo) -> None:
    one_line_error(run("stylize", photo, "--style", "wave", "--style-strength", "0.5"), 2,
                   "--style-strength goes with --style-image")  # fmt: skip


def test_unusable_paintings(photo, tmp_path) -> None:
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (10, 10), "red").save(tiny)
    one_line_error(run("stylize", photo, "--style-image", tiny), 1, "too small")
    one_line_error(run("stylize", photo, "--style-image", tmp_path / "nope.jpg"), 1, "no such file")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture")
    one_line_error(run("stylize", photo, "--style-image", junk), 1, "junk.jpg")


def test_styles_add_painting_then_list_and_stylize(photo, styles_dir, tmp_path) -> None:
    result = run("styles", "add", "my_wave", "--painting", styles_dir / "wave.jpg",
                 "--title-en", "My Wave", "--title-ru", "Моя волна")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "my_wave" in run("styles", "list", "--plain").stdout.split()
    result = run("stylize", photo, "--style", "my_wave", "-d", tmp_path / "o")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "o" / "boat.my_wave.jpg").is_file()
    one_line_error(run("styles", "add", "x", "--painting", styles_dir / "wave.jpg", "--model",
                       styles_dir / "wave.jpg"), 2, "either --model")  # fmt: skip
