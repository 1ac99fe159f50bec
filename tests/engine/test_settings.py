"""`EngineSettings` (the operator's TOTOSHKA_* variables, read once at the edge) and the
factory that builds catalog, store and Stylizer from them (`open_engine`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest
from pydantic import ValidationError

from totoshka.engine.factory import open_engine, runner_for
from totoshka.engine.settings import EngineSettings

# every engine variable an operator may have set, with a value that is not the default
ENGINE_ENV = {
    "TOTOSHKA_CACHE_DIR": "cache-from-env",
    "TOTOSHKA_DATA_DIR": "data-from-env",
    "TOTOSHKA_MODEL_MIRROR": "https://mirror.example/models/",
    "TOTOSHKA_MEMORY_BUDGET_MB": "4096",
    "TOTOSHKA_OWN_STYLE_ENGINE": "msgnet",
    "TOTOSHKA_BACKEND": "eager-fp32",
    "TOTOSHKA_CONVERT_IN_PROCESS": "1",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No engine variable from the developer's shell, and no .env in the working dir."""
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_operators_variables_are_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in ENGINE_ENV.items():
        clean_env.setenv(name, value)
    s = EngineSettings()
    assert s.cache_dir == Path("cache-from-env")
    assert s.data_dir == Path("data-from-env")
    assert s.model_mirror == "https://mirror.example/models/"
    assert s.memory_budget_mb == 4096.0
    assert s.own_style_engine == "msgnet"
    assert s.backend == "eager-fp32"
    assert s.convert_in_process is True


def test_a_dotenv_file_is_read_too(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOTOSHKA_MEMORY_BUDGET_MB=2500\nTOTOSHKA_BOT_TOKEN=x:y\n")
    assert EngineSettings().memory_budget_mb == 2500.0  # and the bot's variables are ignored


def test_defaults_and_the_platform_folders(clean_env: pytest.MonkeyPatch) -> None:
    from totoshka.engine.backends.eager import DEFAULT_MEMORY_BUDGET_MB

    s = EngineSettings()
    assert (s.cache_dir, s.data_dir, s.model_mirror) == (None, None, None)
    assert s.memory_budget_mb == DEFAULT_MEMORY_BUDGET_MB  # the one number, in two modules
    assert (s.own_style_engine, s.backend, s.convert_in_process) == ("magenta", "auto", False)
    assert s.cache_path() == platformdirs.user_cache_path("totoshka") / "models"
    assert s.data_path() == platformdirs.user_data_path("totoshka")
    assert s.compiled_path() == s.cache_path() / "compiled"
    home = EngineSettings(cache_dir=Path("~/c"), data_dir=Path("~/d"))
    assert home.cache_path() == Path("~/c").expanduser()
    assert home.data_path() == Path("~/d").expanduser()


def test_an_empty_variable_is_unset(clean_env: pytest.MonkeyPatch) -> None:
    for name in ENGINE_ENV:
        clean_env.setenv(name, "")
    defaults = {name: field.default for name, field in EngineSettings.model_fields.items()}
    assert EngineSettings().model_dump() == defaults


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOTOSHKA_MEMORY_BUDGET_MB", "0"),
        ("TOTOSHKA_MEMORY_BUDGET_MB", "lots"),
        ("TOTOSHKA_OWN_STYLE_ENGINE", "vangogh"),
        ("TOTOSHKA_BACKEND", "warp-drive"),
        ("TOTOSHKA_CONVERT_IN_PROCESS", "maybe"),
    ],
)
def test_a_bad_value_is_refused_at_start(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        EngineSettings()


def test_open_engine_builds_catalog_and_store_from_the_settings(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    s = EngineSettings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d", model_mirror=str(mirror))
    engine = open_engine(s)
    assert engine.settings is s
    assert engine.store.catalog is engine.catalog
    assert engine.store.cache_dir == tmp_path / "c"
    assert engine.store.data_dir == tmp_path / "d"
    assert engine.store.mirror == mirror
    assert "wave" in engine.catalog
    # a local mirror without the files: only the styles whose files come inside a wheel
    # (the user's pip brings those where no mirror has them); a URL mirror: everything
    wheel_models = {m.id for m in engine.catalog.models() if any(f.package for f in m.files)}
    assert wheel_models == {"dumoulin26"}
    expected = {s.id for s in engine.catalog.styles() if s.model in wheel_models}
    assert {sid for sid, _ in engine.offered_styles()} == expected
    online = open_engine(s.model_copy(update={"model_mirror": "https://mirror.example/"}))
    offered = dict(online.offered_styles())
    assert set(offered) == {style.id for style in online.catalog.styles()}
    assert offered["wave"]["en"]
    assert engine.previews_dir() == tmp_path / "c" / "previews"
    models = open_engine(EngineSettings(cache_dir=tmp_path / "x" / "models"))
    assert models.previews_dir() == tmp_path / "x" / "previews"


def test_opening_an_engine_loads_no_torch(shared_dir: Path, tmp_path: Path) -> None:
    """What the bot and `styles list` do before the first photo, in a fresh interpreter."""
    code = (
        "import sys; from totoshka.engine.factory import open_engine; "
        "from totoshka.engine.settings import EngineSettings; "
        "e = open_engine(EngineSettings()); styles = e.offered_styles(); "
        "assert styles, 'no style offered'; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {
        **os.environ,
        "TOTOSHKA_MODEL_MIRROR": str(shared_dir / "models"),
        "TOTOSHKA_CACHE_DIR": str(tmp_path / "cache"),
        "TOTOSHKA_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_stylizer_is_built_once_with_the_settings_runner(tmp_path: Path) -> None:
    s = EngineSettings(cache_dir=tmp_path / "c", backend="eager-fp32", memory_budget_mb=4000)
    engine = open_engine(s)
    stylizer = engine.stylizer()
    assert engine.stylizer() is stylizer
    assert stylizer.catalog is engine.catalog and stylizer.store is engine.store
    assert stylizer.runner.name == "eager-fp32"
    assert stylizer.runner.max_pixels == runner_for(s).max_pixels  # type: ignore[attr-defined]
    smaller = runner_for(EngineSettings(backend="eager-fp32", memory_budget_mb=1500))
    assert stylizer.runner.max_pixels > smaller.max_pixels  # type: ignore[attr-defined]
    assert stylizer.own_styles.default_engine == "magenta"
    auto = runner_for(s, "auto")
    assert auto.verdicts.path == tmp_path / "c" / "compiled" / "verdicts.json"  # type: ignore[attr-defined]


def test_the_bench_carries_engine_settings_only() -> None:
    """A benchmark row's child gets the engine's settings, never a bot's secrets."""
    from totoshka.engine.bench import RowSpec, row_settings

    class BotSettings(EngineSettings):
        bot_token: str = "123:secret"

    carried = row_settings(BotSettings(memory_budget_mb=3000, cache_dir=Path("/c")))
    assert set(carried) == set(EngineSettings.model_fields)
    assert "secret" not in str(carried)
    spec = RowSpec("ml5", "wave", 8, 8, "eager-fp32", 1, 0, "out.npy", settings=carried)
    assert EngineSettings(**spec.settings) == EngineSettings(
        memory_budget_mb=3000, cache_dir=Path("/c")
    )
