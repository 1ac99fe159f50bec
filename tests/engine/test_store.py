"""ModelStore and download: offline mirrors, checksums, interruptions, trust on first use."""

from __future__ import annotations

import hashlib
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from totoshka.engine.catalog import Model, ModelFile, load_builtin_catalog
from totoshka.engine.download import ChecksumMismatchError, DownloadError
from totoshka.engine.errors import ModelNotAvailableError
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings
from totoshka.engine.store import FileCheck, ModelStore


def configured_store() -> ModelStore:
    """The store a command builds from the operator's settings (here: `mirror_env`'s)."""
    return open_engine(EngineSettings()).store


def verify(store: ModelStore, model: Model) -> list[FileCheck]:
    """Every file of the model re-hashed, as `totoshka models verify` does."""
    return [store.check_file(model, f) for f in model.files]


def visible_files(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def partials(root: Path) -> list[Path]:
    return list(root.rglob("*.partial")) if root.exists() else []


@pytest.fixture(scope="module")
def wave() -> Model:
    return load_builtin_catalog().model("ml5-wave")


class MirrorServer:
    """A tiny HTTP mirror on 127.0.0.1; `cut_after` makes it hang up mid-file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut_after: int | None = None
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                path = server.root / urllib.parse.unquote(self.path.lstrip("/"))
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.cut_after is not None and len(data) > server.cut_after:
                    self.wfile.write(data[: server.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_mirror(shared_dir: Path) -> Iterator[MirrorServer]:
    server = MirrorServer(shared_dir / "models")
    yield server
    server.close()


# --- mirrors ------------------------------------------------------------------------


def test_pull_from_folder_mirror_offline(mirror_env: Path, wave: Model) -> None:
    store = configured_store()
    assert store.cache_dir == mirror_env
    assert not store.is_present(wave)
    store.fetch(wave)
    assert store.is_present(wave)
    folder = store.ensure(wave)
    assert folder == mirror_env / "ml5" / "wave"
    assert (folder / "manifest.json").is_file()
    assert len(list(folder.iterdir())) == 49
    checks = verify(store, wave)
    assert len(checks) == 49 and all(c.status == "ok" for c in checks)
    assert not partials(mirror_env)


def test_ensure_fetches_missing_files_only(mirror_env: Path, wave: Model) -> None:
    store = configured_store()
    store.fetch(wave)
    (mirror_env / "ml5" / "wave" / "Variable_7").unlink()
    assert store.missing(wave) == [f for f in wave.files if f.name == "Variable_7"]
    store.ensure(wave)
    assert store.is_present(wave)


def test_file_url_mirror(shared_dir: Path, tmp_path: Path, wave: Model) -> None:
    store = ModelStore(tmp_path / "c", mirror=(shared_dir / "models").as_uri())
    store.fetch(wave)
    assert store.is_present(wave)


def test_http_mirror(http_mirror: MirrorServer, tmp_path: Path, wave: Model) -> None:
    store = ModelStore(tmp_path / "c", mirror=http_mirror.url + "/")
    store.fetch(wave)
    assert store.is_present(wave)
    assert "/ml5/wave/manifest.json" in http_mirror.requests


# --- refusals leave nothing behind ---------------------------------------------------


def corrupt_mirror(shared_dir: Path, tmp_path: Path, name: str = "Variable_3") -> Path:
    mirror = tmp_path / "bad-mirror"
    shutil.copytree(shared_dir / "models" / "ml5" / "wave", mirror / "ml5" / "wave")
    victim = mirror / "ml5" / "wave" / name
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    victim.write_bytes(bytes(data))
    return mirror


def test_checksum_mismatch_refused_nothing_left(
    shared_dir: Path, tmp_path: Path, wave: Model
) -> None:
    cache = tmp_path / "cache"
    store = ModelStore(cache, mirror=corrupt_mirror(shared_dir, tmp_path))
    with pytest.raises(ChecksumMismatchError, match="Variable_3") as info:
        store.fetch(wave)
    assert "ml5-wave" in str(info.value)
    assert not (cache / "ml5" / "wave" / "Variable_3").exists()
    assert not partials(cache)
    assert not store.is_present(wave)


def test_ensure_names_the_model_and_how_to_pull(tmp_path: Path, wave: Model) -> None:
    store = ModelStore(tmp_path / "cache", mirror=tmp_path / "empty-mirror")
    with pytest.raises(ModelNotAvailableError) as info:
        store.ensure(wave)
    message = str(info.value)
    assert "ml5-wave" in message and "totoshka models pull ml5-wave" in message
    assert "\n" not in message
    assert visible_files(tmp_path / "cache" / "ml5") == []


def test_interrupted_http_download_leaves_no_model_then_resumes(
    http_mirror: MirrorServer, tmp_path: Path, wave: Model
) -> None:
    cache = tmp_path / "cache"
    store = ModelStore(cache, mirror=http_mirror.url)
    big = next(f for f in wave.files if f.size and f.size > 100_000)
    http_mirror.cut_after = 50_000  # every file bigger than this is cut mid-way
    with pytest.raises(DownloadError):
        store.fetch(wave)
    assert not (cache / big.path).exists()
    assert not partials(cache)
    assert not store.is_present(wave)
    http_mirror.cut_after = None  # the connection is back: a re-run completes cleanly
    store.fetch(wave)
    assert store.is_present(wave)
    assert all(c.ok for c in verify(store, wave))


def test_exception_in_progress_callback_leaves_nothing(mirror_env: Path, wave: Model) -> None:
    store = configured_store()
    big = next(f for f in wave.files if f.size and f.size > 500_000)

    class Boom(Exception):
        pass

    def progress(model: Model, f: ModelFile, done: int, total: int | None) -> None:
        if f.path == big.path and done > 0:
            raise Boom

    with pytest.raises(Boom):
        store.fetch(wave, progress=progress)
    assert not (mirror_env / big.path).exists()
    assert not partials(mirror_env)
    store.fetch(wave)  # and a re-run is clean
    assert store.is_present(wave)


def test_concurrent_pulls_of_the_same_model(mirror_env: Path, wave: Model) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            configured_store().fetch(wave, force=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(c.status == "ok" for c in verify(configured_store(), wave))
    assert not partials(mirror_env)


# --- trust on first use ----------------------------------------------------------------


def tofu_model() -> Model:
    f = ModelFile(
        path="tofu/weights.bin",
        url="https://example.invalid/weights.bin",
        sha256=None,
        size=None,
        note="sha256 recorded at the first download (trust on first use)",
    )
    return Model(id="tofu", family="pytorch", files=(f,), credit="test", license="MIT")


def test_tofu_recorded_then_enforced(tmp_path: Path) -> None:
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    (mirror / "tofu").mkdir(parents=True)
    original = b"first bytes ever seen" * 1000
    (mirror / "tofu" / "weights.bin").write_bytes(original)
    model = tofu_model()
    store = ModelStore(cache, mirror=mirror)
    store.fetch(model)
    record = cache / "tofu" / "weights.bin.sha256"
    assert record.read_text().split()[0] == hashlib.sha256(original).hexdigest()
    assert [c.status for c in verify(store, model)] == ["ok"]

    # upstream changes its bytes: a fresh pull is refused against the record
    (mirror / "tofu" / "weights.bin").write_bytes(b"swapped behind our back" * 1000)
    (cache / "tofu" / "weights.bin").unlink()
    with pytest.raises(ChecksumMismatchError):
        store.fetch(model)
    assert not (cache / "tofu" / "weights.bin").exists()
    assert not partials(cache)

    # the cached copy is damaged: verify says so
    (mirror / "tofu" / "weights.bin").write_bytes(original)
    store.fetch(model)
    (cache / "tofu" / "weights.bin").write_bytes(original[:-1] + b"!")
    assert [c.status for c in verify(store, model)] == ["mismatch"]


def test_known_size_mismatch_refused(tmp_path: Path) -> None:
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    (mirror / "tofu").mkdir(parents=True)
    (mirror / "tofu" / "weights.bin").write_bytes(b"x" * 10)
    model = tofu_model()
    model = replace(model, files=(replace(model.files[0], size=11),))
    with pytest.raises(ChecksumMismatchError, match="11"):
        ModelStore(cache, mirror=mirror).fetch(model)
    assert visible_files(cache / "tofu") == []
