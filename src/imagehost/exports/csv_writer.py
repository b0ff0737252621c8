"""CSV as Excel opens it: UTF-8 with a BOM (so Cyrillic is read right), `,` or `;` (Russian-locale
Excel splits on `;`), every cell made inert (cells.py). Made row by row: nothing waits in memory."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from imagehost.exports.cells import inert

BOM = "\ufeff"
DELIMITERS = (",", ";")
CHUNK = 64 * 1024


class _Line:
    """csv.writer's file: keeps the one line it was just given."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


async def csv_bytes(
    header: Sequence[str], rows: AsyncIterable[Sequence[str | int | None]], delimiter: str
) -> AsyncIterator[bytes]:
    line = _Line()
    writer = csv.writer(line, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")

    def encoded(cells: Sequence[str | int | None]) -> bytes:
        line.text = ""
        writer.writerow(["" if cell is None else inert(cell) if isinstance(cell, str) else cell for cell in cells])
        return line.text.encode("utf-8")

    # Lines go out in chunks of about CHUNK bytes: one send per row would cost more than the row.
    pending = [BOM.encode("utf-8") + encoded(header)]
    size = len(pending[0])
    async for row in rows:
        pending.append(encoded(row))
        size += len(pending[-1])
        if size >= CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
