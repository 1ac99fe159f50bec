"""What the tests read from the Fluent files themselves: ids, variables, literal words.

The bot only formats messages; these questions are the tests' (is every language
complete, does each message use the same variables), so they parse the files here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

from fluent.syntax import ast, parse
from fluent.syntax.serializer import serialize_element
from fluent.syntax.visitor import Visitor

from totoshka.bot.texts import SUFFIX


@cache
def messages(lang: str) -> dict[str, ast.Message]:
    """The messages with a value that ``lang``'s own file defines."""
    source = resources.files("totoshka.bot.texts").joinpath(lang + SUFFIX).read_text("utf-8")
    return {
        entry.id.name: entry
        for entry in parse(source).body
        if isinstance(entry, ast.Message) and entry.value is not None
    }


def message_ids(lang: str) -> frozenset[str]:
    return frozenset(messages(lang))


class _Variables(Visitor):
    """Collects the ``$variables`` a message uses, through the messages it references."""

    def __init__(self, known: Mapping[str, ast.Message]) -> None:
        super().__init__()
        self.known = known
        self.names: set[str] = set()
        self.seen: set[str] = set()

    def visit_VariableReference(self, node: ast.VariableReference) -> None:
        self.names.add(node.id.name)

    def visit_MessageReference(self, node: ast.MessageReference) -> None:
        name = node.id.name
        if name not in self.seen and name in self.known:
            self.seen.add(name)
            self.visit(self.known[name])

    def visit_TermReference(self, node: ast.TermReference) -> None:
        """Not descended into: a term never sees the caller's variables."""


def variables(lang: str, key: str) -> frozenset[str]:
    visitor = _Variables(messages(lang))
    visitor.visit(messages(lang)[key])
    return frozenset(visitor.names)


def source_text(lang: str, key: str) -> str:
    """The message's text with its placeables in braces (its words before the first
    placeable are what the end-to-end tests recognise it by)."""
    value = messages(lang)[key].value
    assert value is not None
    return "".join(serialize_element(element) for element in value.elements)
