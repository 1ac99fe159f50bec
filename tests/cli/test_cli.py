"""The `totoshka` CLI end to end: real photos, real ml5 styles from the mirror."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from totoshka.cli.main import app
from totoshka.engine.models.transformer_net import TransformerNet

runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code: int = 1, contains: str = "") -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("totoshka: error: ")
    assert contains in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def amber(shared_dir: Path) -> Path:
    return shared_dir / "images" / "content" / "amber.jpg"


def random_pth(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) * 0.05 for k, v in TransformerNet().state_dict().items()}
    torch.save(state, path)
    return path


# --- help and version ----------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("totoshka ")


@pytest.mark.parametrize(
    "command",
    [[], ["stylize"], ["styles"], ["styles", "list"], ["styles", "add"], ["styles", "remove"],
     ["models"], ["models", "pull"], ["models", "list"], ["models", "verify"], ["emulator"]],
)  # fmt: skip
def test_help_everywhere(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


# --- stylize ---------------------------------------------------------------------------


def test_stylize_real_photo_with_real_style(mirror_env: Path, amber: Path, tmp_path: Path):
    out = tmp_path / "painted.jpg"
    result = run("stylize", amber, "--style", "wave", "--max-side", "96", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    img = Image.open(out)
    assert img.format == "JPEG" and max(img.size) == 96
    assert (mirror_env / "ml5" / "wave" / "manifest.json").is_file()  # pulled on demand


def test_stylize_batch_default_names(mirror_env: Path, amber: Path, shared_dir: Path, tmp_path):
    boat = shared_dir / "images" / "content" / "venice-boat.jpg"
    out_dir = tmp_path / "out"
    result = run(
        "stylize", amber, boat, "-s", "udnie", "--out-dir", out_dir, "--max-side", "64",
        "--format", "png", "--preserve-colors", "--strength", "0.8",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["amber.udnie.png", "venice-boat.udnie.png"]
    assert Image.open(out_dir / "amber.udnie.png").format == "PNG"


def test_stylize_errors_are_one_line(mirror_env: Path, amber: Path, tmp_path: Path) -> None:
    assert_one_line_error(run("stylize", amber, "-s", "nope"), 1, "unknown style 'nope'")
    assert_one_line_error(run("stylize", tmp_path / "missing.jpg", "-s", "wave"), 1, "no such")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    assert_one_line_error(
        run("stylize", text, "-s", "wave", "-o", tmp_path / "x.jpg"), 1, "not an image"
    )
    assert not (tmp_path / "x.jpg").exists()
    assert_one_line_error(run("stylize", amber, amber, "-s", "wave", "-o", "x.jpg"), 2)
    assert_one_line_error(run("stylize", amber, "-s", "wave", "--strength", "3"), 2)
    assert_one_line_error(run("stylize", amber, "-s", "wave", "--format", "gif"), 2)
    assert_one_line_error(run("stylize", amber), 2, "--style")


def test_stylize_without_model_or_mirror(
    amber: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOTOSHKA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOTOSHKA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TOTOSHKA_MODEL_MIRROR", str(tmp_path / "empty-mirror"))
    result = run("stylize", amber, "-s", "wave", "-o", tmp_path / "x.jpg")
    assert_one_line_error(result, 1, "totoshka models pull ml5-wave")


def test_errors_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "totoshka.cli.main", "stylize", str(tmp_path / "no.jpg"),
         "-s", "wave"],
        capture_output=True, text=True, encoding="utf-8", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"totoshka: error: {tmp_path / 'no.jpg'}: no such file"
    ]


# --- models -------------------------------------------------------------------------------


def test_models_pull_list_verify(shared_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOTOSHKA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOTOSHKA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TOTOSHKA_MODEL_MIRROR", raising=False)
    result = run("models", "pull", "ml5-wave", "ml5-scream", "--mirror", shared_dir / "models")
    assert result.exit_code == 0, result.stderr
    assert "ml5-wave: ok" in result.stdout and "ml5-scream: ok" in result.stdout
    listing = run("models", "list")
    assert listing.exit_code == 0 and "ml5-wave" in listing.stdout
    assert run("styles", "list", "--plain").stdout.split()[:2] == ["la_muse", "mathura"]
    verify = run("models", "verify", "ml5-wave")
    assert verify.exit_code == 0 and "ml5-wave: ok" in verify.stdout
    victim = tmp_path / "cache" / "ml5" / "wave" / "Variable_5"
    victim.write_bytes(b"\0" * victim.stat().st_size)
    bad = run("models", "verify")
    assert bad.exit_code == 1
    assert "ml5/wave/Variable_5: mismatch" in bad.stdout
    assert "ml5-scream: ok" in bad.stdout
    assert_one_line_error(bad, 1, "failed verification")
    assert_one_line_error(run("models", "pull", "no-such-model"), 1, "unknown model")


def test_models_pull_from_a_mirror_without_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOTOSHKA_CACHE_DIR", str(tmp_path / "cache"))
    result = run("models", "pull", "msgnet", "--mirror", tmp_path / "empty")
    assert_one_line_error(result, 1, "msgnet")


# --- operator styles -------------------------------------------------------------------


def test_styles_add_use_remove(mirror_env: Path, amber: Path, tmp_path: Path) -> None:
    pth = random_pth(tmp_path / "mine.pth")
    result = run(
        "styles", "add", "my-style", "--model", pth, "--title-en", "Mine",
        "--title-ru", "Мой", "--credit", "me", "--license", "CC0", "--preview", amber,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "data" / "previews" / "my-style.jpg").is_file()
    listing = run("styles", "list")
    assert "my-style" in listing.stdout and "Мой" in listing.stdout
    out = tmp_path / "mine.jpg"
    assert run("stylize", amber, "-s", "my-style", "--max-side", "48", "-o", out).exit_code == 0
    assert Image.open(out).size == (48, 48)
    assert_one_line_error(run("styles", "add", "my-style", "--model", pth), 1, "already exists")
    assert_one_line_error(run("styles", "add", "wave", "--model", pth), 1, "already exists")
    assert run("styles", "remove", "my-style").exit_code == 0
    assert "my-style" not in run("styles", "list", "--plain").stdout.split()
    data = tmp_path / "data"
    assert not (data / "models" / "user" / "my-style").exists()
    assert not (data / "previews" / "my-style.jpg").exists()
    assert_one_line_error(run("styles", "remove", "wave"), 1, "built-in")


def test_styles_add_ml5_folder(mirror_env: Path, shared_dir: Path) -> None:
    folder = shared_dir / "models" / "ml5" / "udnie"
    result = run("styles", "add", "udnie2", "--model", folder)
    assert result.exit_code == 0, result.stderr
    assert "udnie2" in run("styles", "list", "--plain").stdout.split()


def test_styles_add_refuses_broken_models(mirror_env: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = random_pth(tmp_path / "good.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[: len(good) // 2])
    assert_one_line_error(
        run("styles", "add", "cut", "--model", tmp_path / "cut.pth"), 1, "not a valid model file"
    )
    state = {k: v for k, v in TransformerNet().state_dict().items() if "res5" not in k}
    buf = io.BytesIO()
    torch.save(state, buf)
    (tmp_path / "partial.pth").write_bytes(buf.getvalue())
    assert_one_line_error(
        run("styles", "add", "partial", "--model", tmp_path / "partial.pth"), 1, "missing keys"
    )
    (tmp_path / "photo.jpg").write_bytes(b"jpeg?")
    assert_one_line_error(run("styles", "add", "x", "--model", tmp_path / "photo.jpg"), 1)
    assert_one_line_error(run("styles", "add", "Bad Name", "--model", tmp_path / "good.pth"), 1)
    assert not (data / "models" / "user" / "cut").exists()
    assert not (data / "models" / "user" / "partial").exists()
    assert "cut" not in run("styles", "list", "--plain").stdout.split()


def test_emulator_busy_port_is_a_one_line_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("emulator", "--port", str(port))
    assert_one_line_error(result, 1, f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("env", "module"),
    [
        ({"TOTOSHKA_JOBS_BACKEND": "celery"}, "celery"),
        ({"TOTOSHKA_REDIS_URL": "redis://127.0.0.1:6379/9"}, "redis"),
    ],
)
@pytest.mark.parametrize("command", ["run", "worker"])
def test_scale_out_without_its_packages_is_one_line(
    env: dict[str, str], module: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default install has no Celery or Redis client: say which command installs them."""
    monkeypatch.setenv("TOTOSHKA_BOT_TOKEN", "123:abc")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(sys.modules, module, None)
    result = run(command)
    assert_one_line_error(result, 1, f"needs the {module} package")
    assert "bash scripts/setup.sh scale" in result.stderr


def test_commands_that_paint_nothing_load_no_torch() -> None:
    """`totoshka --help`, `styles list`, `models list`: the CLI imports torch (and
    OpenVINO) only in the commands that build or run a network."""
    code = (
        "import sys; from typer.testing import CliRunner; from totoshka.cli.main import app\n"
        "for args in (['--help'], ['styles', 'list'], ['models', 'list'], ['bench', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print(sorted(m for m in ('torch', 'openvino') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
