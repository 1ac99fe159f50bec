"""Upstream PyTorch checkpoints into the engine's networks (TransformerNet, MSG-Net).

`torch.load` and `load_state_dict` already find what is wrong with a file (not a
checkpoint, keys missing or left over, shapes that differ); the families' loaders
only turn what they report into the engine's one-line `ModelFormatError`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from totoshka.engine.errors import ModelFormatError

Net = TypeVar("Net", bound=nn.Module)


def read_state_dict(path: Path, member: str | None = None) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, or of `member` inside a zip (saved_models.zip).

    Only tensors are unpickled (`weights_only`); a `{"state_dict": ...}` wrapper is
    opened.
    """
    try:
        if member is None:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFormatError(path, "file is missing") from None
    except KeyError:
        raise ModelFormatError(path, f"no {member} inside the archive") from None
    except Exception as exc:  # truncated zip, a pickle with code, not a torch file...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"cannot be read as a PyTorch state dict ({first[:200]})"
        raise ModelFormatError(path, reason) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFormatError(path, "not a state dict of tensors")
    return state


def load_state(net: Net, state: dict[str, Tensor], path: Path) -> Net:
    """`net` holding exactly `state` (as float32), ready for inference.

    `strict=False` hands back the missing and unexpected keys as lists (strict
    mode words them in one long text); shapes that differ raise either way.
    """
    try:
        found = net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except RuntimeError as exc:  # "size mismatch for <key>: ...", a line per tensor
        lines = [line.strip() for line in str(exc).splitlines()[1:]]
        raise ModelFormatError(path, "; ".join(lines[:3])) from None
    wrong = [
        f"{what} keys {', '.join(keys[:3])}" + (" ..." if len(keys) > 3 else "")
        for what, keys in (("missing", found.missing_keys), ("unexpected", found.unexpected_keys))
        if keys
    ]
    if wrong:
        raise ModelFormatError(path, "; ".join(wrong) + f" (expected {type(net).__name__})")
    return net.eval().requires_grad_(False)
