"""Bot API errors with Telegram's own status codes and descriptions.

A bot reacts to the *text* of an error as much as to its code (aiogram maps the
code to an exception class; bot code often matches ``"message is not modified"``),
so the descriptions here are Telegram's verbatim wording, as seen from
``api.telegram.org`` and the open-source ``telegram-bot-api`` server.
"""

from __future__ import annotations

from typing import Any


class BotApiError(Exception):
    """A failed Bot API call; rendered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{error_code} {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> BotApiError:
    """400 with Telegram's ``"Bad Request: "`` prefix."""
    return BotApiError(400, f"Bad Request: {reason}")


def too_many_requests(retry_after: int) -> BotApiError:
    """429 flood wait; aiogram raises ``TelegramRetryAfter`` from ``parameters.retry_after``."""
    return BotApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def unauthorized() -> BotApiError:
    return BotApiError(401, "Unauthorized")


def not_found() -> BotApiError:
    return BotApiError(404, "Not Found")


def conflict(reason: str) -> BotApiError:
    return BotApiError(409, f"Conflict: {reason}")


def forbidden(reason: str) -> BotApiError:
    return BotApiError(403, f"Forbidden: {reason}")


def entity_too_large() -> BotApiError:
    return BotApiError(413, "Request Entity Too Large")


# Descriptions that several methods share, spelled once.
CHAT_NOT_FOUND = "chat not found"
CHAT_ID_EMPTY = "chat_id is empty"
TEXT_EMPTY = "message text is empty"
TEXT_TOO_LONG = "message is too long"
CAPTION_TOO_LONG = "message caption is too long"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
MESSAGE_TO_EDIT_NOT_FOUND = "message to edit not found"
MESSAGE_TO_DELETE_NOT_FOUND = "message to delete not found"
MESSAGE_CANT_BE_EDITED = "message can't be edited"
NO_TEXT_TO_EDIT = "there is no text in the message to edit"
NO_CAPTION_TO_EDIT = "there is no caption in the message to edit"
WRONG_FILE_ID = "wrong file identifier/HTTP URL specified"
URL_CONTENT_FAILED = "failed to get HTTP URL content"
FILE_TOO_BIG = "file is too big"
BUTTON_DATA_INVALID = "BUTTON_DATA_INVALID"
PHOTO_INVALID_DIMENSIONS = "PHOTO_INVALID_DIMENSIONS"
IMAGE_PROCESS_FAILED = "IMAGE_PROCESS_FAILED"
VIDEO_NOTE_LENGTH = "wrong video note length"
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_ACTIVE = (
    "can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
OTHER_GET_UPDATES = (
    "terminated by other getUpdates request; make sure that only one bot instance is running"
)
