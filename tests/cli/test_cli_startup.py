"""Commands that paint nothing start fast (issue 13): the root group imports a
command's module only when that command runs, and what `totoshka --help` lists
comes from a table that must match the commands themselves.

Import checks run in a fresh interpreter (what a real `totoshka` process loads);
nothing here measures time, which would only make the suite flaky.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import typer
from typer._click import Command
from typer.testing import CliRunner

from totoshka.cli.group import LazyCommand, RootGroup
from totoshka.cli.main import COMMANDS, app

runner = CliRunner()
NAMES = [entry.name for entry in COMMANDS]

#: Never loaded by `--help`, or by `styles list`, which lists the catalog and its cache.
HEAVY = ["torch", "openvino", "av", "cv2", "aiogram", "aiohttp", "celery", "redis"]
BOT = ["totoshka.bot", "totoshka.config", "totoshka.jobs", "totoshka.engine.stylizer"]


def loaded_by(*args: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Run the CLI's `app` with `args` in a fresh interpreter; which modules it loaded."""
    code = (
        "import json, sys; from typer.testing import CliRunner; from totoshka.cli.main import app\n"
        f"result = CliRunner().invoke(app, {list(args)!r}, env={env!r}, prog_name='totoshka')\n"
        "assert result.exit_code == 0, (result.stdout, result.stderr)\n"
        "print(json.dumps({'stdout': result.stdout, 'modules': sorted(sys.modules)}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _present(modules: list[str], names: list[str]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def _commands_imported(modules: list[str]) -> list[str]:
    """The cli modules loaded beyond the root's own (main and group)."""
    root = {"totoshka.cli.main", "totoshka.cli.group"}
    return [m for m in modules if m.startswith("totoshka.cli.") and m not in root]


# --- what the light commands load ------------------------------------------------------


def test_help_imports_no_command_and_nothing_heavy() -> None:
    run = loaded_by("--help")
    assert _commands_imported(run["modules"]) == []
    assert _present(run["modules"], [*HEAVY, "numpy", "PIL", "pydantic", *BOT]) == []
    engine = [m for m in run["modules"] if m.startswith("totoshka.engine.")]
    assert engine == ["totoshka.engine.errors"]  # for the one-line error policy


def test_help_lists_every_command() -> None:
    stdout = loaded_by("--help")["stdout"]
    listed = [line.split()[1] for line in stdout.splitlines() if line.startswith("│ ")]
    assert [name for name in listed if name in NAMES] == NAMES


def test_styles_list_imports_only_styles() -> None:
    run = loaded_by("styles", "list", "--plain")
    assert run["stdout"].split()  # the catalog's ids
    assert _present(run["modules"], [*HEAVY, *BOT]) == []
    imported = {m.removeprefix("totoshka.cli.") for m in _commands_imported(run["modules"])}
    assert imported <= {"styles", "common", "own_style", "table"}, imported


def test_the_listings_draw_their_tables_without_rich() -> None:
    """rich costs a listing ≈ 0.1 s (issue 13: `styles list` ≤ 0.3 s); a plain table."""
    for command in (("styles", "list"), ("models", "list")):
        run = loaded_by(*command)
        assert "cached" in run["stdout"].splitlines()[1], run["stdout"]
        assert [m for m in run["modules"] if m == "rich" or m.startswith("rich.")] == []


def test_completing_a_command_name_imports_no_command() -> None:
    env = {"_TOTOSHKA_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "totoshka st"}
    run = loaded_by(env=env)
    assert "stylize" in run["stdout"] and "styles" in run["stdout"]
    assert "Repaint photos" in run["stdout"]  # with the table's help
    assert _commands_imported(run["modules"]) == []


# --- the table against the commands it stands for ---------------------------------------


def _first_paragraph(command: Command) -> str:
    return inspect.cleandoc(command.help or "").split("\n\n")[0].strip()


@pytest.mark.parametrize("entry", COMMANDS, ids=NAMES)
def test_table_help_is_the_commands_own(entry: LazyCommand) -> None:
    command = entry.load()
    assert command.name == entry.name
    assert _first_paragraph(command) == entry.help, "update the table in cli/main.py"


def test_names_are_unique() -> None:
    assert len(set(NAMES)) == len(NAMES)


def _eager_app() -> typer.Typer:
    """The app as it was before the table: every command registered up front."""
    eager = typer.Typer(
        name="totoshka",
        cls=RootGroup,
        help="Totoshka: repaint photos in the style of a painting.",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    eager.callback()(app.registered_callback.callback)  # type: ignore[union-attr]
    for entry in COMMANDS:
        module_name, _, attribute = entry.target.partition(":")
        target = getattr(__import__(module_name, fromlist=[attribute]), attribute)
        if isinstance(target, typer.Typer):
            eager.add_typer(target, name=entry.name)
        else:
            eager.command(entry.name)(target)
    return eager


@pytest.mark.parametrize(
    "args",
    [["--help"], ["-h"], [], ["--version"], ["stylze"], ["styles"], ["styles", "lst"],
     *([name, "--help"] for name in NAMES)],
    ids=lambda args: " ".join(args) or "no-args",
)  # fmt: skip
def test_same_output_as_eager_registration(args: list[str]) -> None:
    eager = runner.invoke(_eager_app(), args, prog_name="totoshka", env={"COLUMNS": "100"})
    lazy = runner.invoke(app, args, prog_name="totoshka", env={"COLUMNS": "100"})
    assert (lazy.exit_code, lazy.stdout, lazy.stderr) == (
        eager.exit_code,
        eager.stdout,
        eager.stderr,
    )


def test_a_typo_is_still_matched_against_every_command() -> None:
    result = runner.invoke(app, ["stylze"], prog_name="totoshka")
    assert result.exit_code == 2
    assert result.stderr.startswith("totoshka: error: No such command 'stylze'.")
    assert "Did you mean 'stylize'" in result.stderr
