"""Reading request parameters the way Telegram does, whatever the request's encoding.

Telegram takes parameters from the query string and from a JSON, form-encoded or
multipart body alike. In forms every value is a string, so numbers arrive as text
and objects (``reply_markup``, ``media``, ``entities``...) as JSON text; in a JSON
body they may be numbers and objects already. Uploaded files are multipart parts,
referred to either by the parameter's own name or as ``attach://<part name>``
(aiogram always uses the latter).

:class:`Params` is the one reader for the Bot API methods and the control API
alike: typed values go through pydantic's lax coercion (``"42"`` → 42, JSON text
→ a list or a model) and a value that does not fit is a 400 worded by the caller's
``reject`` (Telegram's ``Bad Request: ...`` for the Bot API).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from pydantic import Json, TypeAdapter, ValidationError

from totoshka.emulator.errors import BotApiError, bad_request, entity_too_large

ATTACH = "attach://"
ANY_JSON: Any = Json[Any] | list[Any] | dict[str, Any]
T = TypeVar("T")
_TRUE = ("true", "1", "yes", "on")


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


class Params:
    """A request's parameters, read as typed values; bad ones fail with ``reject(reason)``."""

    def __init__(
        self,
        values: dict[str, Any],
        uploads: dict[str, Upload] | None = None,
        reject: Callable[[str], BotApiError] = bad_request,
    ) -> None:
        self.values = values
        self.uploads = uploads if uploads is not None else {}
        self.reject = reject

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "") or name in self.uploads

    def get(
        self, name: str, kind: type[T], default: T | None = None, *, error: str | None = None
    ) -> T | None:
        """``name`` as ``kind`` (int, float, a model...); ``default`` when absent or empty.

        A value that does not fit fails "invalid <name> specified" (or ``error``).
        """
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return _adapter(kind).validate_python(value)
        except ValidationError:
            raise self.reject(error or f"invalid {name} specified") from None

    def json_value(self, name: str, what: str, kind: Any = None) -> Any:
        """A JSON-valued parameter, as ``kind`` if given; ``what`` names it in the error."""
        schema = ANY_JSON if kind is None else Json[kind] | kind
        return self.get(name, schema, error=f"can't parse {what} JSON object")

    def string(self, name: str, default: str | None = None) -> str | None:
        """Text as Telegram reads it: JSON ``true`` is "true", numbers are their digits."""
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def flag(self, name: str, default: bool = False) -> bool:
        """A Boolean as Telegram reads it: true/1/yes/on is true, anything else false."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE

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
        return self.uploads.get(name) or self.file(self.values.get(name))


async def read_multipart(reader: MultipartReader, params: Params, max_upload_bytes: int) -> None:
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
            upload = Upload(bytes(data), part.filename, part.headers.get("Content-Type"))
            params.uploads[part.name] = upload
        else:
            params.values[part.name] = data.decode("utf-8", errors="replace")


async def read_params(
    request: web.Request,
    max_upload_bytes: int,
    reject: Callable[[str], BotApiError] = bad_request,
) -> Params:
    """The query string plus any body: multipart, form-encoded, or else JSON."""
    params = Params(dict(request.query), reject=reject)
    if request.content_type == "multipart/form-data":
        await read_multipart(await request.multipart(), params, max_upload_bytes)
    elif request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        params.values.update((k, v) for k, v in form.items() if isinstance(v, str))
    elif request.can_read_body:  # JSON, whatever the declared type (a browser's text/plain)
        try:
            body = await request.json()
        except ValueError:
            raise reject("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise reject("can't parse JSON object")
        params.values.update(body)
    return params
