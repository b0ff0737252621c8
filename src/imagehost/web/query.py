"""Bounded whole numbers from the query string (a bad one is a 400) and from form fields (a 422):
the client's mistake, never a 500."""

from __future__ import annotations

from typing import Any

from imagehost.errors import BadQueryParameter, InvalidParameter

# Far beyond any real catalogue, and small enough that its OFFSET stays a PostgreSQL bigint.
LARGEST_PAGE = 10_000_000


def _whole(text: str, low: int, high: int) -> int | None:
    """`text` as an int in [low, high], else None. int() takes "1_000", "+5" and 4,300 digits; a
    plain, short run of digits is all a parameter needs."""
    text = text.strip()
    if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 12):
        return None
    number = int(text)
    return number if low <= number <= high else None


def whole_number(name: str, raw: str | None, *, low: int, high: int, default: int) -> int:
    """A query parameter as an int in [low, high]; absent or empty gives `default`; else a 400."""
    if raw is None or not raw.strip():
        return default
    number = _whole(raw, low, high)
    if number is None:
        raise BadQueryParameter(name=name, value=raw[:40], low=low, high=high)
    return number


def form_whole_number(form: Any, field: str, *, low: int, high: int) -> int | None:
    """A form field as an int in [low, high]; absent or empty gives None; else a 422 (a field of the
    body, not of the address)."""
    raw = form.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    number = _whole(str(raw), low, high)
    if number is None:
        raise InvalidParameter(field=field, reason=f"must be a whole number from {low} to {high}")
    return number


def page_number(raw: str | None) -> int:
    return whole_number("page", raw, low=1, high=LARGEST_PAGE, default=1)
