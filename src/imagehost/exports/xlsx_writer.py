"""XLSX in constant memory: XlsxWriter's constant_memory mode keeps one row in memory and writes
the rest to a temporary file, so rows must come in order. An XLSX is complete only when closed:
the caller writes it to a temporary file, then streams that file.

Every user string is written with write_string (never a formula, never an auto-detected link);
only our own URLs become hyperlinks, and at most Excel's 65,530 per sheet (plain text after that).
Past Excel's 1,048,576 rows a sheet continues on a new one, with the header again. A cell may
instead hold a picture: one of our own stored thumbnails, already turned into a small JPEG
(thumbnails.py); the workbook keeps those few kilobytes each until it is closed."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import xlsxwriter

from imagehost.exports.thumbnails import PICTURE_BOX

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
MAX_LINKS_PER_SHEET = 65_530
MAX_CELL_CHARACTERS = 32_767
# A row that holds a picture is this tall (points; 1 pt = 4/3 px), with a little room around it.
PICTURE_ROW_POINTS = (PICTURE_BOX + 6) * 3 / 4


def sheet_name(name: str) -> str:
    """Sheet names may not hold []:*?/\\ and are at most 31 characters."""
    return "".join("_" if c in "[]:*?/\\" else c for c in name)[:31]


@dataclass(frozen=True)
class Picture:
    """A small JPEG made from a stored thumbnail (thumbnails.sheet_picture), and its name in the workbook."""

    jpeg: bytes
    name: str


@dataclass(frozen=True)
class Cell:
    """Text, a number, (link=True) one of our own URLs written as a clickable hyperlink, or a picture."""

    value: str | int | None
    link: bool = False
    picture: Picture | None = None


class SheetWriter:
    """One workbook, written row by row; call from a worker thread (it does file I/O)."""

    def __init__(
        self,
        path: Path,
        title: str,
        header: Sequence[str],
        widths: Sequence[float] = (),
        wrap_columns: Sequence[int] = (),
        max_rows: int = MAX_ROWS,
        max_links: int = MAX_LINKS_PER_SHEET,
    ) -> None:
        self.workbook = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "tmpdir": str(path.parent),
            },
        )
        self.title = title[:25] or "Sheet"
        self.header = list(header)
        self.widths = list(widths)
        self.wrap_columns = set(wrap_columns)
        self.max_rows = max_rows
        self.max_links = max_links
        self.bold = self.workbook.add_format({"bold": True})
        self.wrapped = self.workbook.add_format({"text_wrap": True, "valign": "top"})
        self.sheets = 0
        self.rows = 0
        self.pictures = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheets += 1
        name = self.title if self.sheets == 1 else f"{self.title} ({self.sheets})"
        self.sheet = self.workbook.add_worksheet(sheet_name(name))
        for column, width in enumerate(self.widths):
            self.sheet.set_column(column, column, width)
        self.sheet.freeze_panes(1, 0)
        for column, label in enumerate(self.header):
            self.sheet.write_string(0, column, label, self.bold)
        self.row = 1
        self.links = 0

    def write_row(self, cells: Sequence[Cell]) -> None:
        if self.row >= self.max_rows:
            self._new_sheet()
        pictures = [(column, cell.picture) for column, cell in enumerate(cells[:MAX_COLUMNS]) if cell.picture]
        if pictures:  # constant_memory: a row's height is set before its cells
            self.sheet.set_row(self.row, PICTURE_ROW_POINTS)
        for column, picture in pictures:
            self._insert_picture(column, picture)
        for column, cell in enumerate(cells[:MAX_COLUMNS]):
            value = cell.value
            if value is None:
                continue
            if isinstance(value, int):
                self.sheet.write_number(self.row, column, value)
            elif cell.link and self.links < self.max_links:
                self.links += 1
                self.sheet.write_url(self.row, column, value, string=value)
            else:
                style = self.wrapped if column in self.wrap_columns else None
                self.sheet.write_string(self.row, column, value[:MAX_CELL_CHARACTERS], style)
        self.row += 1
        self.rows += 1

    def _insert_picture(self, column: int, picture: Picture) -> None:
        self.sheet.insert_image(
            self.row,
            column,
            picture.name,
            {"image_data": io.BytesIO(picture.jpeg), "x_offset": 3, "y_offset": 3, "object_position": 1},
        )
        self.pictures += 1

    def add_note(self, title: str, lines: Sequence[str]) -> None:
        """A last sheet with a few lines of explanation (what the export left out, and why)."""
        sheet = self.workbook.add_worksheet(sheet_name(title))
        sheet.set_column(0, 0, 100)
        for row, line in enumerate(lines):
            sheet.write_string(row, 0, line[:MAX_CELL_CHARACTERS])

    def write_rows(self, rows: Sequence[Sequence[Cell]]) -> None:
        for cells in rows:
            self.write_row(cells)

    def close(self) -> None:
        self.workbook.close()
