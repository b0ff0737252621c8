"""The layouts: which cells each row of a link sheet or of the catalogue holds. The header labels
are translated by the caller (`gettext`); the links come from a Links (images/links.py)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from imagehost.errors import N_, InvalidParameter
from imagehost.exports.service import CatalogueRow, LinkSheet
from imagehost.exports.thumbnails import sheet_picture
from imagehost.exports.xlsx_writer import MAX_COLUMNS, Cell, Picture
from imagehost.images.links import Links
from imagehost.storage.files import ImageFiles

ARTICLE = N_("Article")
LINK_NUMBER = N_("Link {number}")
LINKS = N_("Links")

Gettext = Callable[[str], str]


def link_sheet_header(sheet: LinkSheet, export_type: str, gettext: Gettext) -> list[str]:
    if export_type == "in_cell":
        return [gettext(ARTICLE), gettext(LINKS)]
    if sheet.widest + 1 > MAX_COLUMNS:
        raise InvalidParameter(
            field="export_type", reason=f"an article has more than {MAX_COLUMNS - 1} images: use in_cell"
        )
    return [gettext(ARTICLE), *(gettext(LINK_NUMBER).format(number=n) for n in range(1, sheet.widest + 1))]


async def link_sheet_rows(
    sheet: LinkSheet, export_type: str, separator: str, links: Links
) -> AsyncIterator[list[Cell]]:
    """in_row: the code, then one hyperlink per image; in_cell: the code and the links joined."""
    async for article in sheet.articles:
        urls = [links.image(image) for image in article.images]
        if export_type == "in_cell":
            yield [Cell(article.code), Cell(separator.join(urls))]
        else:
            yield [
                Cell(article.code),
                *(Cell(url, link=True) for url in urls),
                *[Cell("")] * (sheet.widest - len(urls)),
            ]


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    value: Callable[[CatalogueRow, Links], Cell]
    width: float = 18


def catalogue_columns(thumbnail_sizes: Sequence[int]) -> dict[str, Column]:
    columns = [
        Column("album", N_("Album"), lambda row, links: Cell(row.album_name)),
        Column("article", N_("Article"), lambda row, links: Cell(row.article_code)),
        Column("original_name", N_("Original name"), lambda row, links: Cell(row.image.original_name), 30),
        Column("stored_name", N_("Stored name"), lambda row, links: Cell(row.image.stored_name), 30),
        Column("url", N_("Direct link"), lambda row, links: Cell(links.image(row.image), link=True), 60),
        Column("page_url", N_("Image page"), lambda row, links: Cell(links.page(row.image), link=True), 60),
    ]
    for size in thumbnail_sizes:
        columns.append(
            Column(
                f"thumbnail_{size}",
                N_("Thumbnail {size}"),
                lambda row, links, size=size: Cell(links.thumbnail(row.image, size), link=True),
                60,
            )
        )
    columns += [
        Column("size_bytes", N_("Size in bytes"), lambda row, links: Cell(row.image.size_bytes), 14),
        Column("width", N_("Width"), lambda row, links: Cell(row.image.width), 10),
        Column("height", N_("Height"), lambda row, links: Cell(row.image.height), 10),
        Column("format", N_("Format"), lambda row, links: Cell(row.image.extension), 10),
        Column("uploader", N_("Uploader"), lambda row, links: Cell(row.image.uploader_name or row.image.uploader_sub)),
        Column(
            "uploaded_at",
            N_("Upload time"),
            lambda row, links: Cell(row.image.uploaded_at.isoformat(timespec="seconds")),
            26,
        ),
    ]
    return {column.name: column for column in columns}


def chosen_columns(available: dict[str, Column], wanted: str | None, sees_uploaders: bool) -> list[Column]:
    """`columns=a,b,c` chooses and orders them; the uploader only for those who may see it."""
    if not sees_uploaders:
        available = {name: column for name, column in available.items() if name != "uploader"}
    if not wanted or not wanted.strip():
        return list(available.values())
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise InvalidParameter(field="columns", reason="a comma-separated list of " + ", ".join(available))
    return [available[name] for name in dict.fromkeys(names)]


# Thumbnails read at once for the picture column: a bucket's latency is paid READ_AHEAD at a time.
READ_AHEAD = 8


@dataclass
class Thumbnails:
    """The picture column of a catalogue XLSX: the image's smallest stored thumbnail, read through
    `files` (the folder or the bucket), in the first `limit` rows (EXPORT_THUMBNAIL_ROWS); an image
    smaller than every thumbnail size has none."""

    files: ImageFiles
    limit: int
    rows: int = 0

    def wanted(self, row: CatalogueRow, links: Links) -> tuple[int, str] | None:
        """The next row's thumbnail (its size, its stored name), or None when the row has no picture."""
        self.rows += 1
        sizes = links.sizes_for(row.image)
        if self.rows > self.limit or not sizes:
            return None
        return min(sizes), row.image.stored_name

    async def cell(self, wanted: tuple[int, str] | None) -> Cell:
        if wanted is None:
            return Cell(None)
        size, stored_name = wanted
        jpeg = await sheet_picture(self.files, size, stored_name)
        if jpeg is None:  # removed meanwhile, or not a thumbnail of ours
            return Cell(None)
        return Cell(None, picture=Picture(jpeg, f"{stored_name}.jpg"))


async def catalogue_rows(
    rows: AsyncIterator[CatalogueRow], columns: Sequence[Column], links: Links, thumbnails: Thumbnails | None = None
) -> AsyncIterator[list[Cell]]:
    """With `thumbnails`, each row's picture is read while the next READ_AHEAD rows' are; rows keep
    their order, and at most READ_AHEAD pictures are in memory beside the writer's."""
    if thumbnails is None:
        async for row in rows:
            yield [column.value(row, links) for column in columns]
        return
    pending: deque[tuple[asyncio.Task[Cell], list[Cell]]] = deque()
    try:
        async for row in rows:
            cells = [column.value(row, links) for column in columns]
            pending.append((asyncio.ensure_future(thumbnails.cell(thumbnails.wanted(row, links))), cells))
            if len(pending) >= READ_AHEAD:
                picture, cells = pending.popleft()
                yield [await picture, *cells]
        while pending:
            picture, cells = pending.popleft()
            yield [await picture, *cells]
    finally:
        for picture, _ in pending:  # an export that failed or was abandoned: nothing left reading
            if picture.done() and not picture.cancelled():
                picture.exception()  # its failure is the export's (already raised), not a stray warning
            picture.cancel()
