"""Logging set-up that never lets the bot token through.

The token is part of every Bot API URL (``/bot<token>/method``), and aiohttp and
aiogram put URLs into exception texts (connection errors, timeouts, bad
responses) that end up in log records and tracebacks. Filtering at one handler
would miss handlers added later, so the redaction sits in the log record
factory: every record, from any logger, is cleaned when it is created — its
message, its arguments and its formatted traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

REDACTED = "<token>"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def install_redaction(*secrets: str) -> None:
    """Wrap the record factory so records carry no ``secrets`` (idempotent per secret)."""
    wanted = tuple(s for s in secrets if s)
    # The token's secret half (after ':') alone is enough to redact, and also covers
    # URL-quoted forms where ':' became '%3A'.
    wanted += tuple(s.split(":", 1)[1] for s in wanted if ":" in s)
    if not wanted:
        return
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if getattr(previous, "_totoshka_secrets", None) == wanted:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return record
        if any(s in message for s in wanted):
            record.msg = redact(message, wanted)
            record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text, wanted)
        return record

    factory._totoshka_secrets = wanted  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def setup_logging(level: str, *secrets: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_redaction(*secrets)
