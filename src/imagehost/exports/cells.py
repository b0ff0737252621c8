"""What a spreadsheet cell may hold when its text comes from users (album names, article codes,
original names): Excel runs a cell that starts with = + - @, a tab or a carriage return as a
formula, so CSV cells like that get a leading apostrophe (OWASP's advice). XLSX cells are written
as strings (xlsx_writer.py), which Excel never evaluates."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text
