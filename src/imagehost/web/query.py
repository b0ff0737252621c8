"""Whole numbers from the query string, bounded: a bad one is the client's mistake (400), never a 500."""

from __future__ import annotations

from imagehost.errors import BadQueryParameter

# Far beyond any real catalogue, and small enough that its OFFSET stays a PostgreSQL bigint.
LARGEST_PAGE = 10_000_000


def whole_number(name: str, raw: str | None, *, low: int, high: int, default: int) -> int:
    """`raw` as an int in [low, high]; absent or empty gives `default`."""
    if raw is None or not raw.strip():
        return default
    text = raw.strip()
    # int() takes "1_000" and 4,300 digits; a plain, short run of digits is all a parameter needs.
    if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 12):
        raise BadQueryParameter(name=name, value=raw[:40], low=low, high=high)
    number = int(text)
    if not low <= number <= high:
        raise BadQueryParameter(name=name, value=raw[:40], low=low, high=high)
    return number


def page_number(raw: str | None) -> int:
    return whole_number("page", raw, low=1, high=LARGEST_PAGE, default=1)
