"""`totoshka doctor` (issue 10): what it shows on this machine, and with OpenVINO absent.

Real models from the mirror in a fresh cache (so the paths are converted and
calibrated here), a real emulator for the Bot API check, the machine's own Redis
and RabbitMQ for the service checks.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from totoshka.cli.main import app
from totoshka.engine.backends import expected_path
from totoshka.engine.backends.hardware import cpu_info

TOKEN = "424242:doctor-sEcReT-token"
REDIS_URL = "redis://127.0.0.1:6379/15"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
FAMILIES = {"ml5", "magenta"}


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def doctor_env(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh cache with ml5 wave and Magenta, shared by this module's tests."""
    cache = tmp_path_factory.mktemp("doctor") / "models"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOTOSHKA_MODEL_MIRROR", str(shared_dir / "models"))
        mp.setenv("TOTOSHKA_CACHE_DIR", str(cache))
        mp.setenv("TOTOSHKA_DATA_DIR", str(cache.parent / "data"))
        for name in ("TOTOSHKA_BOT_TOKEN", "TOTOSHKA_REDIS_URL", "TOTOSHKA_JOBS_BACKEND"):
            mp.delenv(name, raising=False)
        result = run("models", "pull", "ml5-wave", "magenta")
        assert result.exit_code == 0, result.stderr
        yield cache


@pytest.fixture
def emulator_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "totoshka", "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # a bound on waiting, never an assertion on time
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no emulator"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def family(report: dict, name: str) -> dict:
    return next(f for f in report["inference"]["families"] if f["family"] == name)


def test_doctor_on_this_machine(
    doctor_env: Path, emulator_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOTOSHKA_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TOTOSHKA_API_URL", emulator_url)
    monkeypatch.setenv("TOTOSHKA_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TOTOSHKA_JOBS_BACKEND", "celery")
    monkeypatch.setenv("TOTOSHKA_BROKER_URL", AMQP_URL)
    result = run("doctor", "--json")
    assert result.exit_code == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    report = json.loads(result.stdout)

    env = report["environment"]
    assert env["python"] == platform.python_version()
    assert env["torch"] == torch.__version__
    assert env["openvino"] is not None and env["cpu"] == cpu_info().model
    assert ("amx_bf16" in env["cpu_flags"]) == ("amx_bf16" in cpu_info().flags)

    inference = report["inference"]
    assert inference["expected"] == expected_path()
    if cpu_info().fast_bf16:
        assert inference["expected"] == "openvino-bf16"
    assert {f["family"] for f in inference["families"]} == FAMILIES
    for name in FAMILIES:
        fam = family(report, name)
        assert fam["error"] is None and fam["warning"] is None, fam
        assert fam["served_by"] == inference["expected"], fam
        assert fam["ms"] > 0 and fam["eager_ms"] > 0
        assert fam["psnr_db"] >= 35.0, fam
        serving = [p for p in fam["paths"] if p["status"] == "serves"]
        assert [p["path"] for p in serving] == [inference["expected"]]

    present = {m["id"] for m in report["models"] if m["present"]}
    assert present == {"ml5-wave", "magenta"}
    assert "ml5-udnie" in {m["id"] for m in report["models"] if not m["present"]}

    services = report["services"]
    assert services["bot_api"]["ok"] is True and "@" in services["bot_api"]["detail"]
    assert services["redis"] == {"url": REDIS_URL, "ok": True, "detail": "PONG"}
    assert services["broker"]["ok"] is True and "AMQP" in services["broker"]["detail"]
    settings = report["settings"]
    assert settings["bot_token"] == "**********"
    assert settings["api_url"] == emulator_url and settings["jobs_backend"] == "celery"


def test_doctor_reports_services_that_do_not_answer(
    doctor_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("TOTOSHKA_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TOTOSHKA_API_URL", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("TOTOSHKA_REDIS_URL", f"redis://127.0.0.1:{dead}/0")
    result = run("doctor", "--json", "--no-quality")
    assert result.exit_code == 0, result.stderr
    assert TOKEN not in result.stdout
    services = json.loads(result.stdout)["services"]
    assert services["bot_api"]["ok"] is False and services["redis"]["ok"] is False
    assert "broker" not in services  # embedded jobs: no broker to check


def test_doctor_without_openvino_says_what_to_install(
    doctor_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    result = run("doctor", "--json", "--no-quality")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["environment"]["openvino"] is None
    expected = report["inference"]["expected"]
    assert expected.startswith("openvino-")  # what the machine supports, installed or not
    for name in FAMILIES:
        fam = family(report, name)
        assert not fam["served_by"].startswith("openvino"), fam
        missing = [p for p in fam["paths"] if p["status"] == "unavailable"]
        assert expected in [p["path"] for p in missing]
        assert all("install OpenVINO" in p["fix"] for p in missing)
        assert fam["warning"].startswith(f"inference falls back to {fam['served_by']}")
        assert "install OpenVINO" in fam["warning"]

    screen = run("doctor", "--no-quality")
    assert screen.exit_code == 0, screen.stderr
    text = " ".join(screen.stdout.split())  # the console wraps long lines
    assert "OpenVINO not installed" in text
    assert f"{expected} unavailable" in text and "fix: install OpenVINO" in text
    assert "warning: inference falls back" in text


def test_recalibrate_forgets_the_verdicts(doctor_env: Path) -> None:
    verdicts = doctor_env / "compiled" / "verdicts.json"
    first = run("doctor", "--json", "--no-quality")
    assert first.exit_code == 0 and verdicts.exists()
    before = json.loads(verdicts.read_text())["verdicts"]
    assert before
    again = run("doctor", "--json", "--no-quality", "--recalibrate")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["recalibrated"] == len(before)
    after = json.loads(verdicts.read_text())["verdicts"]
    newest = max(v["at"] for v in before.values())
    assert after and all(v["at"] > newest for v in after.values())  # measured, not recalled


def test_worker_start_line_comes_from_a_child(doctor_env: Path, shared_dir: Path) -> None:
    """`totoshka worker` prints the line of `python -m totoshka.engine.diagnose`."""
    proc = subprocess.run(
        [sys.executable, "-m", "totoshka.engine.diagnose", "--cache-dir", str(doctor_env)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        env={**os.environ, "TOTOSHKA_MODEL_MIRROR": str(shared_dir / "models")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("inference: ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"inference: {expected_path()} (")
    assert "ml5" in lines[0] and "at 1280x960" in lines[0]
    assert "warning" not in proc.stderr
