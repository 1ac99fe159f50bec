"""Message text as Telegram measures and marks it up.

Telegram counts lengths and entity offsets in UTF-16 code units, parses
``parse_mode=HTML`` into plain text plus ``MessageEntity`` objects (so the bot
reads back text without tags, as from the real API), and marks ``/commands`` in
users' messages with ``bot_command`` entities, which aiogram's ``Command`` filter
relies on.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from totoshka.emulator.errors import bad_request

_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "span": "spoiler",  # only <span class="tg-spoiler"> is allowed
}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    """``bot_command`` entities for each ``/command`` (optionally ``@botname``) in ``text``."""
    entities = []
    for match in _COMMAND.finditer(text):
        entities.append(
            {
                "type": "bot_command",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group()),
            }
        )
    return entities


class _HtmlToEntities(HTMLParser):
    """Telegram's HTML subset → (text, entities); unsupported tags fail like Telegram."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.text: list[str] = []
        self.length = 0
        self.open: list[tuple[str, int, dict[str, Any]]] = []
        self.entities: list[dict[str, Any]] = []

    def _offset(self) -> int:
        line, column = self.getpos()
        lines = self.source.split("\n")
        return len("\n".join(lines[: line - 1]).encode()) + (line > 1) + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise bad_request(
                f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset '
                f"{self._offset()}"
            )
        extra: dict[str, Any] = {}
        values = dict(attrs)
        if tag == "a":
            extra["url"] = values.get("href") or ""
        if tag == "code" and self.open and self.open[-1][0] == "pre":
            language = (values.get("class") or "").removeprefix("language-")
            if language:
                self.open[-1][2]["language"] = language
            self.open.append((tag, -1, {}))  # merged into the <pre> entity
            return
        if tag == "tg-emoji":
            extra["custom_emoji_id"] = values.get("emoji-id") or ""
        self.open.append((tag, self.length, extra))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1][0] != tag:
            raise bad_request(
                f"can't parse entities: Unmatched end tag at byte offset {self._offset()}, "
                f'expected "</{self.open[-1][0] if self.open else ""}>", found "</{tag}>"'
            )
        name, start, extra = self.open.pop()
        if start < 0 or self.length == start:
            return
        entity = {"type": _HTML_TAGS[name], "offset": start, "length": self.length - start}
        entity.update(extra)
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.length += utf16_len(data)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    parser = _HtmlToEntities(source)
    parser.feed(source)
    parser.close()
    if parser.open:
        raise bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \""
            f'{parser.open[-1][0]}"'
        )
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parser.text), entities


_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Checks MarkdownV2 escaping (the classic bot bug) and strips markup.

    Entities are not reconstructed; the text is what a user would read.
    """
    out: list[str] = []
    i = 0
    markers = {"*", "_", "~", "|", "`"}
    while i < len(source):
        char = source[i]
        if char == "\\" and i + 1 < len(source):
            out.append(source[i + 1])
            i += 2
            continue
        if char in markers:
            i += 1
            continue
        if char in _MD2_RESERVED and char not in "[]()":
            raise bad_request(
                f"can't parse entities: Character '{char}' is reserved and must be escaped "
                f"with the preceding '\\'"
            )
        out.append(char)
        i += 1
    return "".join(out), []


def parse_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    """Apply ``parse_mode`` (or take explicit ``entities``) as Telegram does."""
    if entities:
        return text, entities
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return re.sub(r"[*_`]", "", text), []
    raise bad_request("unsupported parse_mode")
