"""Reading Bot API parameters the way Telegram does, whatever the request's encoding.

Telegram takes parameters from the query string and from a JSON, form-encoded or
multipart body alike. In forms every value is a string, so objects
(``reply_markup``, ``media``, ``entities``...) arrive as JSON text; in a JSON body
they may be objects or JSON text. Uploaded files are multipart parts, referred to
either by the parameter's own name or as ``attach://<part name>`` (aiogram always
uses the latter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from totoshka.emulator.errors import bad_request, entity_too_large

ATTACH = "attach://"


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


def json_field(value: Any, what: str) -> Any:
    """A value that is JSON text in forms and may be an object already in JSON bodies."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {what} JSON object") from None
    return value


class Params:
    """Typed access to a call's parameters with Telegram's errors for bad values."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload]) -> None:
        self.values = values
        self.uploads = uploads

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "") or name in self.uploads

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str, default: float | None = None) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("true", "1", "yes", "on")

    def json_value(self, name: str, what: str) -> Any:
        """A JSON-valued parameter; ``what`` names it in the error, as Telegram does."""
        return json_field(self.values.get(name), what)

    def file(self, reference: Any) -> Upload | str | None:
        """Resolve a file parameter value: an upload, ``attach://`` part, or a file_id/URL."""
        if isinstance(reference, Upload):
            return reference
        if not isinstance(reference, str) or not reference:
            return None
        if reference.startswith(ATTACH):
            return self.uploads.get(reference[len(ATTACH) :])
        return reference

    def file_param(self, name: str) -> Upload | str | None:
        if name in self.uploads:
            return self.uploads[name]
        return self.file(self.values.get(name))


async def read_multipart(
    reader: MultipartReader,
    values: dict[str, Any],
    uploads: dict[str, Upload],
    max_upload_bytes: int,
) -> None:
    """Fields into ``values``, file parts into ``uploads``; 413 past the upload limit."""
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = await part.read()
        total += len(data)
        if total > max_upload_bytes + (1 << 20):
            raise entity_too_large()
        if part.filename is not None:
            uploads[part.name] = Upload(
                bytes(data), part.filename, part.headers.get("Content-Type")
            )
        else:
            values[part.name] = data.decode("utf-8", errors="replace")


async def read_params(request: web.Request, max_upload_bytes: int) -> Params:
    """Collect parameters from the query string and any body (JSON, form or multipart)."""
    values: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.method not in ("POST", "PUT") or not request.can_read_body:
        return Params(values, uploads)
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON object")
        values.update(body)
    elif content_type == "multipart/form-data":
        await read_multipart(await request.multipart(), values, uploads, max_upload_bytes)
    else:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                values[key] = value
            else:
                uploads[key] = Upload(value.file.read(), value.filename, value.content_type)
    return Params(values, uploads)
