"""Logging set-up that never lets the bot token through.

The token is part of every Bot API URL (``/bot<token>/method``), and aiohttp and
aiogram put URLs into exception texts (connection errors, timeouts, bad
responses) that end up in log records and tracebacks. Filtering at one handler
would miss handlers added later, so the redaction sits in the log record
factory: every record, from any logger, is cleaned when it is created — its
message, its arguments and its formatted traceback.

``TOTOSHKA_LOG_FORMAT=json`` swaps the line format for one JSON object per line
(`JsonFormatter`) for log collectors; the records it formats are the same
cleaned records, and it redacts its own output once more, since it also writes
what no record factory saw (a traceback formatted late, a stack).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from totoshka.observability import JOB_ID, USER_ID

REDACTED = "<token>"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _wanted(secrets: tuple[str, ...]) -> tuple[str, ...]:
    wanted = tuple(s for s in secrets if s)
    # The token's secret half (after ':') alone is enough to redact, and also covers
    # URL-quoted forms where ':' became '%3A'.
    return wanted + tuple(s.split(":", 1)[1] for s in wanted if ":" in s)


def install_redaction(*secrets: str) -> None:
    """Wrap the record factory so records carry no ``secrets`` (idempotent per secret)."""
    wanted = _wanted(secrets)
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


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, and where known ``job_id`` and ``user_id`` (from ``extra=`` or the
    context a worker or the update middleware set), ``exc`` for a traceback."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = _wanted(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("job_id", JOB_ID), ("user_id", USER_ID)):
            value = getattr(record, key, None) or var.get()
            if value is not None:
                entry[key] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # the token's characters (digits, letters, ':', '-', '_') are never escaped
        return redact(json.dumps(entry, ensure_ascii=False, default=str), self.secrets)


def setup_logging(level: str, *secrets: str, fmt: str = "text") -> logging.Handler:
    """Root logging to stderr, as text or JSON lines (``fmt``); the token redacted.
    Returns the handler, for loggers that do not propagate to the root."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(*secrets))
        logging.captureWarnings(True)  # a library's warning is a JSON line too
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    install_redaction(*secrets)
    return handler
