"""Which cached OpenVINO IR a catalog model's files became, found without torch.

The runner keys its IR folders by `openvino.weights_key(net)`, a hash of the loaded
network's state dict: right (two checkpoints with the same weights share an IR),
but only computable after torch has loaded the checkpoint, which is most of a cold
CLI process's time and memory (issue 13). This index maps a key computed from the
catalog alone (`source_key`: the family and the sha256 of every file, the
catalog's or the one recorded at first download) to what the torch path computed
for that network:

- ``ir``: the IR folder under `<compiled>/openvino/` (``v<FORMAT_VERSION>-<key>``);
- ``verdict``: the weights key `auto` files its calibration verdicts under;
- ``style``: how a style-bound network's style input is made from a catalog vector
  (``"magenta"`` or ``"dumoulin"``; None where the style is in the weights);
- ``file`` (Magenta's style predictor only, under `predictor_key`): the IR file in
  the folder, ``predictor.xml``; its ``verdict`` is None, as it is never calibrated:
  the torch path runs it in eager fp32, and so does (in OpenVINO f32) the cold path.

The torch path writes an entry after the network served through OpenVINO
(`openvino.remember_source`); `engine.coldpath` reads it. The old keys stay the
keys of the IRs and verdicts themselves, so nothing made before is converted or
calibrated again: the index only adds a way in. Like the verdicts, the file
belongs to one environment (`verdicts.environment()`) and is dropped when any
package changes, so an entry never outlives the code that made its IR.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from totoshka.engine import paths
from totoshka.engine.backends.verdicts import environment

if TYPE_CHECKING:
    from totoshka.engine.catalog import Model, Style
    from totoshka.engine.store import ModelStore

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"  # the IR folders' layout (`openvino.OpenVinoRunner.folder`)
INDEX_FORMAT = 1
INDEX_FILE = "sources.json"
# families whose network is a function of their files (and of the style record's
# member or vector) only; MSG-Net's catalog styles are painted from a preview picture
FAMILIES = frozenset({"ml5", "pytorch", "magenta", "dumoulin"})


def ir_root(compiled_dir: Path) -> Path:
    """Where the IR folders (and this index) live: `<compiled>/openvino`."""
    return compiled_dir / "openvino"


def source_key(store: ModelStore, model: Model, style: Style) -> str | None:
    """A key for the network `style` gets, from the catalog and the store alone; None
    when a file's sha256 is unknown (not in the catalog, not yet recorded) or the
    family's network depends on more than its files."""
    # a style bound to a vector shares its network (and IR) with its kin: the vector
    # is an input; a style that is a member of an archive is a network of its own
    member = style.member if style.vector is None else None
    return _key(store, model, {"member": member})


def shared_key(store: ModelStore, model: Model) -> str | None:
    """The key of the network every vector of a style-bound family shares (Magenta's
    transfer network): a catalog preset's `source_key`, and an own style's, whose
    vector comes from a painting rather than from the catalog."""
    return _key(store, model, {"member": None})


def predictor_key(store: ModelStore, model: Model) -> str | None:
    """The key of Magenta's style predictor (painting -> style vector) in `model`'s
    files. A network of its own beside the transfer network, so a key of its own."""
    if model.family != "magenta":
        return None
    return _key(store, model, {"member": None, "network": "predictor"})


def _key(store: ModelStore, model: Model, extra: dict[str, Any]) -> str | None:
    if model.family not in FAMILIES:
        return None
    files = []
    for f in model.files:
        digest = store.expected_sha256(model, f)
        if digest is None:
            return None
        files.append([f.path, digest.lower()])
    spec = {"ir": FORMAT_VERSION, "family": model.family, "files": files, **extra}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


class SourceIndex:
    """`<compiled>/openvino/sources.json`: source key -> ``{"ir", "verdict", "style"}``."""

    def __init__(self, compiled_dir: Path, *, env: dict[str, str | None] | None = None) -> None:
        self.path = ir_root(compiled_dir) / INDEX_FILE
        self.env = env if env is not None else environment()
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or data.get("format") != INDEX_FORMAT
            or data.get("env") != self.env
        ):
            return {}  # another layout or another environment: the torch path fills it again
        sources = data.get("sources")
        return dict(sources) if isinstance(sources, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._read().get(key)
        return found if isinstance(found, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Add or replace one entry (read, change, atomic replace, under a file lock:
        two processes recording two models keep both)."""
        try:
            with self._lock, paths.file_lock(self.path.with_name(f".{INDEX_FILE}.lock")):
                sources = self._read()
                if sources.get(key) == record:
                    return
                sources[key] = record
                data = {"format": INDEX_FORMAT, "env": self.env, "sources": sources}
                tmp = self.path.with_name(f".{INDEX_FILE}.{os.getpid()}.{threading.get_ident()}")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
                os.replace(tmp, self.path)
        except OSError as exc:  # a read-only cache only costs the next process its speed
            log.warning("cannot record the IR of %s: %s", key, exc)
