"""Calibration verdicts on disk, kept only while they can still be true.

A verdict says whether a fast path may serve a model ("passed", with its PSNR and
timings) or why not (an error, a PSNR under the floor, slower than fp32). Before,
every verdict was kept for good in one JSON file: a conversion that failed because
a package was missing (`packaging`, which OpenVINO's PyTorch front end imports)
kept the fast path off after the package was installed, and one slow timing on a
busy machine disabled a path for ever. So:

- the file belongs to one *environment*: Python, torch, OpenVINO, Totoshka and a
  hash of every installed distribution's name and version. Installing, removing
  or upgrading any package gives another fingerprint, and the old verdicts are
  dropped (they were measured with other code);
- a verdict that lets a path serve is kept while the environment stays the same;
- a rejection is kept for `REJECTION_TTL_S` only, then checked again: the machine
  may have been busy, or the failure transient;
- `clear()` (``totoshka doctor --recalibrate``) drops everything.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 2
REJECTION_TTL_S = 24 * 3600.0
# The floors and the speed rule a verdict is judged by. They live here, beside the
# verdicts and without torch, so that the cold path (`engine.coldpath`, a cached IR
# served without importing torch) judges a stored verdict exactly as `auto` does.
DEFAULT_FLOOR_DB = 35.0  # "auto": no visible difference on a phone screen
BEST_FLOOR_DB = 50.0  # "best": indistinguishable from fp32 even zoomed in
SLOWER_FACTOR = 1.5  # a candidate this much slower than fp32 (minimum against minimum) is out


def package_version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _name_version(dist: metadata.Distribution) -> str | None:
    """``name==version`` of one distribution, as its metadata's parsed headers give it.

    Parsing every METADATA file as an e-mail message (`Distribution.metadata`) took
    0.1 s of each process's start for 100 distributions, half of a cold CLI run's
    budget for everything but painting; the two header lines are read directly, and
    only a file where they are not plain lines goes through the full parser."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    name = version = None
    for line in (text or "").splitlines():
        if not line.strip():
            break  # the end of the headers
        if line[0] in " \t" or "=?" in line:
            name = version = None  # folded or encoded headers: let the parser read them
            break
        key, _, value = line.partition(":")
        if key == "Name" and name is None:
            name = value.strip()
        elif key == "Version" and version is None:
            version = value.strip()
    if name is not None and version is not None:
        return f"{name.lower()}=={version}"
    if dist.metadata is None:
        return None
    return f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"


def distributions_digest() -> str:
    """sha256 over the sorted ``name==version`` of every distribution on sys.path."""
    found = (_name_version(d) for d in metadata.distributions())
    names = sorted({n for n in found if n is not None})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


@functools.cache
def environment() -> dict[str, str | None]:
    """What the verdicts were measured with (computed once per process)."""
    return fingerprint()


def fingerprint() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "openvino": package_version("openvino"),
        "totoshka": package_version("totoshka"),
        "distributions": distributions_digest(),
    }


def rejected(verdict: dict[str, Any]) -> bool:
    """A verdict that may not hold for ever: the path failed, or timed slower than fp32.
    (A PSNR under a floor is the path's arithmetic, not the machine's mood.)"""
    return bool(verdict.get("rejected")) or "error" in verdict


def reason(verdict: dict[str, Any], floor_db: float) -> str | None:
    """Why `verdict` keeps its path from serving under `floor_db` (None: it serves)."""
    if "error" in verdict:
        return str(verdict["error"])
    if verdict["psnr"] < floor_db:
        return f"{verdict['psnr']:.1f} dB is under the {floor_db:.0f} dB floor"
    if verdict.get("s", 0.0) > SLOWER_FACTOR * verdict.get("fp32_s", float("inf")):
        return "slower than eager fp32 on this machine"
    return None


class VerdictStore:
    """Verdicts by key (weights hash / runner / variant) for one environment.

    `path` None keeps them in memory only. `env` and `now` are injectable so
    tests can change the environment or the clock without touching the machine.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        env: dict[str, str | None] | None = None,
        now: Callable[[], float] = time.time,
        rejection_ttl_s: float = REJECTION_TTL_S,
    ) -> None:
        self.path = path
        self.env = env if env is not None else environment()
        self.now = now
        self.rejection_ttl_s = rejection_ttl_s
        self._lock = threading.Lock()
        self._verdicts: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}  # an older layout (verdicts of unknown provenance): measure again
        if data.get("env") != self.env:
            log.info("environment changed since the last calibration: measuring paths again")
            return {}
        verdicts = data.get("verdicts")
        return dict(verdicts) if isinstance(verdicts, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._verdicts.get(key)
        if found is None:
            return None
        if rejected(found) and self.now() - float(found.get("at", 0.0)) > self.rejection_ttl_s:
            return None  # a rejection is not for ever: check again
        return found

    def put(self, key: str, verdict: dict[str, Any]) -> dict[str, Any]:
        verdict = {**verdict, "at": self.now()}
        with self._lock:
            self._verdicts[key] = verdict
            self._save()
        return verdict

    def items(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._verdicts)

    def clear(self) -> int:
        """Forget every verdict (here and on disk); returns how many there were."""
        with self._lock:
            count = len(self._verdicts)
            self._verdicts = {}
            if self.path is not None:
                self.path.unlink(missing_ok=True)
        return count

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"format": FORMAT, "env": self.env, "verdicts": self._verdicts}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save backend verdicts: %s", exc)
