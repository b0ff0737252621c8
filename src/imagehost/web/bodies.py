"""Request bodies that JSON clients send: a JSON object, or the client's mistake (422), never a 500."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from imagehost.errors import InvalidParameter


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; bytes that are no JSON, or JSON that is no object, are a 422."""
    try:
        values = await request.json()
    except (ValueError, SerializationException):  # Litestar's own, for bytes that are no JSON
        values = None
    if not isinstance(values, dict):
        raise InvalidParameter(field="body", reason="a JSON object")
    return values
