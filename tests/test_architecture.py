"""The dependency rules of docs/ARCHITECTURE.md, enforced on the source itself.

The import graph is read from the code (every ``import`` statement, inside
functions too — an import inside a function is still a dependency, often one
that hides a cycle), not from what happens to be imported at run time.
Imports under ``if TYPE_CHECKING:`` are types only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Packages slow to import or optional (torch alone takes seconds): a module may import
#: them — or a project module that imports them — inside a function, to stay light.
HEAVY = frozenset(
    {"torch", "torchvision", "openvino", "onnx", "onnxruntime", "celery", "kombu", "redis"}
    | {"aiogram", "aiohttp", "av", "cv2", "atheris"}
    # a tenth of a second each: commands that paint nothing (`styles list`) skip them
    | {"numpy", "PIL"}
)


@dataclass
class Module:
    name: str
    path: Path
    top: dict[str, int] = field(default_factory=dict)  # project module -> line
    lazy: dict[str, int] = field(default_factory=dict)  # imported inside a function
    top_external: set[str] = field(default_factory=set)  # third-party roots
    lazy_external: set[str] = field(default_factory=set)


def _modules() -> dict[str, Module]:
    found = {}
    for path in sorted((SRC / "totoshka").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = Module(".".join(parts), path)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import with whether it runs at import time (False: inside a function)."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, top)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.append((child, top))
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            visit(child, inner)

    visit(tree, True)
    return out


def _graph() -> dict[str, Module]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for mod in modules.values():
        package = mod.name if mod.path.name == "__init__.py" else mod.name.rpartition(".")[0]
        tree = ast.parse(mod.path.read_text(encoding="utf-8"))
        for node, top in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
                if not base.startswith("totoshka"):
                    targets = [base]
            for target in targets:
                if target.startswith("totoshka"):
                    resolved = resolve(target)
                    if resolved and resolved != mod.name:
                        (mod.top if top else mod.lazy).setdefault(resolved, node.lineno)
                else:
                    root = target.split(".")[0]
                    (mod.top_external if top else mod.lazy_external).add(root)
    return modules


GRAPH = _graph()


def _heavy_at_import(name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether importing the module loads a heavy package (directly or through the project)."""
    mod = GRAPH[name]
    if mod.top_external & HEAVY:
        return True
    return any(_heavy_at_import(dep, seen | {name}) for dep in mod.top if dep not in seen | {name})


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in {**GRAPH[v].top, **GRAPH[v].lazy}:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            connect(name)
    return found


def _deps(name: str) -> dict[str, int]:
    return {**GRAPH[name].top, **GRAPH[name].lazy}


def _in(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_graph_is_read() -> None:
    # a parser that found nothing would pass every rule below
    assert len(GRAPH) > 80
    assert "totoshka.bot.job" in GRAPH["totoshka.bot.job_handler"].top
    assert "torch" in GRAPH["totoshka.engine.stylizer"].top_external
    assert _heavy_at_import("totoshka.engine.stylizer")
    assert not _heavy_at_import("totoshka.engine.catalog")


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    assert _cycles() == []


def test_imports_inside_functions_are_only_heavy_ones() -> None:
    """A project import inside a function is allowed only to defer a heavy package;
    anything else there is a cycle being held apart, or a hidden dependency."""
    offenders = [
        f"{mod.path.relative_to(SRC)}:{line} imports {dep}"
        for mod in GRAPH.values()
        for dep, line in mod.lazy.items()
        if dep not in mod.top and not _heavy_at_import(dep)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        # pictures in, pictures out: nothing of Telegram, queues or commands
        ("totoshka.engine", ("totoshka.bot", "totoshka.jobs", "totoshka.cli", "totoshka.config")),
        # generic jobs: nothing of Telegram, nothing of tensors
        ("totoshka.jobs", ("totoshka.bot", "totoshka.engine", "totoshka.cli", "totoshka.config")),
        ("totoshka.bot", ("totoshka.cli", "totoshka.playground")),
        # metrics and log context, shared by bot and jobs: a leaf
        ("totoshka.observability", ("totoshka.bot", "totoshka.jobs", "totoshka.engine")),
        ("totoshka.observability", ("totoshka.cli", "totoshka.config", "totoshka.emulator")),
    ],
)
def test_layers_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    offenders = [
        f"{name} imports {dep}"
        for name in GRAPH
        if _in(name, layer)
        for dep in _deps(name)
        if _in(dep, *forbidden)
    ]
    assert offenders == []


def test_the_emulator_imports_nothing_of_the_project() -> None:
    offenders = [
        f"{name} imports {dep}"
        for name in GRAPH
        if _in(name, "totoshka.emulator")
        for dep in _deps(name)
        if not _in(dep, "totoshka.emulator")
    ]
    assert offenders == []


def test_bot_and_jobs_never_import_torch_themselves() -> None:
    offenders = [
        name
        for name, mod in GRAPH.items()
        if _in(name, "totoshka.bot", "totoshka.jobs")
        and {"torch", "torchvision", "openvino"} & (mod.top_external | mod.lazy_external)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "module",
    [
        "totoshka.bot.app",
        "totoshka.bot.wiring",
        "totoshka.jobs",
        "totoshka.jobs.celery_mode",
        "totoshka.config",
        "totoshka.engine.factory",
        "totoshka.cli.main",
    ],
)
def test_importing_loads_no_torch(module: str) -> None:
    """Checked in a fresh interpreter: what an import really pulls in, transitively."""
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('torch', 'openvino') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"
