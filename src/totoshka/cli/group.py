"""The root `totoshka` command: subcommands imported only when they run, and
expected failures printed as one line.

Every command module pulls in what its command needs (numpy, pydantic settings, the
engine, the bot...), and importing all of them costs most of a second. A person who
types `totoshka --help` or `totoshka styles list` should not wait for the bot, so the
root group knows each command only by a `LazyCommand` (name, where it lives, its
one-line help) and imports the module when that command is resolved: run, or asked
for its own ``--help``. Listing the commands (``--help``, shell completion) reads the
table and imports nothing.

The one-line error policy lives here, not in `common`, for the same reason: the root
group must be importable without what the commands share. Errors a user can cause
(an `EngineError`, a missing file, a bad option) print ``totoshka: error: ...`` on
stderr and exit 1 (2 for usage errors), with no traceback; commands just raise.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import typer
from typer._click import Command, Context
from typer._click.exceptions import ClickException
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import Abort
from typer.main import get_command_from_info, get_group_from_info

from totoshka.engine.errors import EngineError

if TYPE_CHECKING:
    from pydantic import ValidationError

PROG = "totoshka"


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand the root group imports only when it is used.

    `target` is ``"package.module:attribute"``: a command function (registered as
    `app.command(name)` would) or a `typer.Typer` sub-app (as `app.add_typer(sub,
    name=name)` would). `help` is the first paragraph of the command's own help, the
    text `totoshka --help` lists; tests/cli/test_cli_startup.py checks it against the
    command itself, so it cannot drift unseen.
    """

    name: str
    target: str
    help: str

    def load(self) -> Command:
        """The real click command, built exactly as an eager registration builds it
        (through a throwaway Typer, so every default is Typer's own)."""
        module_name, _, attribute = self.target.partition(":")
        obj = getattr(importlib.import_module(module_name), attribute)
        holder = typer.Typer()
        if isinstance(obj, typer.Typer):
            holder.add_typer(obj, name=self.name)
            return get_group_from_info(
                holder.registered_groups[0],
                pretty_exceptions_short=holder.pretty_exceptions_short,
                rich_markup_mode=holder.rich_markup_mode,
                suggest_commands=holder.suggest_commands,
            )
        holder.command(self.name)(obj)
        return get_command_from_info(
            holder.registered_commands[0],
            pretty_exceptions_short=holder.pretty_exceptions_short,
            rich_markup_mode=holder.rich_markup_mode,
        )

    def placeholder(self) -> Command:
        """What a listing needs of the command (name and help), without importing it."""
        return TyperCommand(self.name, help=self.help)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def settings_problem(exc: ValidationError) -> str:
    """A settings error in one line, naming the variables (values are never echoed)."""
    problems = "; ".join(
        f"TOTOSHKA_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
    )
    return f"bad configuration: {problems}"


def fail(message: object, code: int = 1) -> NoReturn:
    # rich only on the way out: `--version` and a command's own output never need it
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"{PROG}: error: {one_line(message)}", markup=False)
    raise SystemExit(code)


class RootGroup(TyperGroup):
    """The root command. Subclass it with `lazy_commands` set (Typer builds the group
    itself, so the table cannot be a constructor argument); commands registered the
    usual way (`app.command`) still work and are listed after the table's."""

    lazy_commands: ClassVar[tuple[LazyCommand, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._lazy = {entry.name: entry for entry in self.lazy_commands}
        self._listing = False
        # Its keys are every name, the table's too: TyperGroup's "Did you mean ...?"
        # reads `self.commands.keys()`, and that must import nothing either.
        self._commands = _LazyCommands(self.commands, self._lazy)
        self.commands = self._commands

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if self._listing and cmd_name in self._lazy and not self._commands.loaded(cmd_name):
            return self._lazy[cmd_name].placeholder()
        return self._commands.get(cmd_name)

    @contextmanager
    def _listing_only(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def format_help(self, ctx: Context, formatter: Any) -> None:
        with self._listing_only():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Context, incomplete: str) -> list[Any]:
        with self._listing_only():
            return super().shell_complete(ctx, incomplete)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name or PROG, complete_var, False, **extra)
        except ClickUsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except Abort:
            fail("aborted", 1)
        except EngineError as exc:
            fail(exc.message, 1)
        except FileNotFoundError as exc:
            fail(f"{exc.filename or exc}: no such file", 1)
        except PermissionError as exc:
            fail(f"{exc.filename or exc}: permission denied", 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        sys.exit(rv if isinstance(rv, int) else 0)


class _LazyCommands(MutableMapping[str, Command]):
    """The group's commands: those registered eagerly, and the lazy ones, each
    imported on its first lookup and kept. Iterating yields every name (the table's
    first, in its order) and imports nothing; only looking a command up does."""

    def __init__(self, eager: MutableMapping[str, Command], lazy: dict[str, LazyCommand]) -> None:
        self._loaded = dict(eager)
        self._lazy = dict(lazy)

    def loaded(self, name: str) -> bool:
        return name in self._loaded

    def __getitem__(self, name: str) -> Command:
        if name not in self._loaded:
            self._loaded[name] = self._lazy[name].load()  # KeyError: no such command
        return self._loaded[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._loaded.pop(name, None)
        self._lazy.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        yield from self._lazy
        yield from (name for name in self._loaded if name not in self._lazy)

    def __len__(self) -> int:
        return sum(1 for _ in self)
