"""What every `totoshka` command shares: error reporting, consoles, progress bars,
and the engine's settings.

Errors a user can cause (an `EngineError`, a missing file, a bad option) print one
line, `totoshka: error: ...`, on stderr and exit 1 (2 for usage errors), with no
traceback. That happens once, in `group.RootGroup.main`, so commands added by other
modules get it for free: they just raise `EngineError` or `UsageError`.

A command is where its process starts, so it is where the engine's configuration is
read: `engine_settings(...)` builds `EngineSettings` once (environment and .env,
then the command's own options such as ``--mirror`` on top) and the command hands
it, or the engine `open_engine` builds from it, to whatever it calls.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from typer._click.exceptions import UsageError as ClickUsageError

from totoshka.cli.group import PROG, one_line, settings_problem
from totoshka.engine.catalog import Model, ModelFile
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import Engine, open_engine
from totoshka.engine.settings import EngineSettings

if TYPE_CHECKING:  # rich is imported where something is drawn, not by listings
    from rich.console import Console
    from rich.progress import Progress


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    if stderr:
        return Console(stderr=True, highlight=False, soft_wrap=True)
    return Console()


def __getattr__(name: str) -> Console:
    """`console` and `err_console`, made on first use (PEP 562): importing rich costs
    ≈ 20 ms that the listing commands, which print plain text, need not pay."""
    if name in ("console", "err_console"):
        return _console(name == "err_console")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UsageError(ClickUsageError):
    """A bad combination of options; exit status 2."""


def print_error(message: object) -> None:
    _console(True).print(f"{PROG}: error: {one_line(message)}", markup=False)


def engine_settings(**options: Any) -> EngineSettings:
    """The engine's settings for this command: the operator's (``TOTOSHKA_*``, .env)
    with the command's options that were given (not None) on top, e.g.
    ``engine_settings(model_mirror=mirror)``. A bad value is one line, naming the
    variable."""
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return EngineSettings(**given)
    except ValidationError as exc:
        raise EngineError(settings_problem(exc)) from None


def command_engine(**options: Any) -> Engine:
    """`open_engine(engine_settings(**options))`: what a command that paints starts with."""
    return open_engine(engine_settings(**options))


@contextmanager
def download_progress(enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar per model; yields a `store.Progress` callback (or None)."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_console(True),
        transient=False,
        redirect_stdout=False,
    )
    tasks: dict[str, Any] = {}
    done_per_file: dict[tuple[str, str], int] = {}

    def callback(model: Model, file: ModelFile, done: int, total: int | None) -> None:
        if model.id not in tasks:
            tasks[model.id] = progress.add_task(model.id, total=model.size)
        task = tasks[model.id]
        key = (model.id, file.path)
        delta = done - done_per_file.get(key, 0)
        done_per_file[key] = done
        if model.size is None and total is not None and done == 0:
            # unknown model size: grow the total as each file announces its length
            current = progress.tasks[task].total or 0
            progress.update(task, total=current + total)
        progress.advance(task, delta)

    with progress:
        yield callback


def item_progress(total: int, label: str = "stylizing") -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
        console=_console(True),
        transient=False,
        redirect_stdout=False,
    )
