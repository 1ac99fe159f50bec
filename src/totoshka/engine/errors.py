"""Errors the engine raises on purpose.

Every error a user can cause derives from `EngineError` and carries a one-line,
human message: the CLI prints it as is, the bot translates it by its `code`.
"""

from __future__ import annotations


class EngineError(Exception):
    """A failure with a message fit to show to the person who caused it."""

    code = "engine_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ModelFormatError(EngineError):
    """A checkpoint that is not what its loader expects (keys, shapes, truncation)."""

    code = "model_format"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: not a valid model file: {reason}")
        self.path = path
        self.reason = reason


class UnknownStyleError(EngineError):
    code = "unknown_style"


class ImageError(EngineError):
    """An input that is not a usable image (corrupt, empty, a bomb, too big...)."""

    code = "bad_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class ModelNotAvailableError(EngineError):
    """The weights a style needs are not in the cache and could not be fetched."""

    code = "model_missing"
