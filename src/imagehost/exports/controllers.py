"""HTTP for exports. Thin: read the parameters (JSON body or query string), ask ExportService for
the rows, pick a layout (sheets.py) and a writer (delivery.py), answer as a download."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from litestar import Controller, Request, get, post
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType

from imagehost.accounts.identity import principal_of_request
from imagehost.api.openapi import binary, form_body
from imagehost.errors import N_, InvalidParameter
from imagehost.exports import sheets
from imagehost.exports.csv_writer import csv_bytes
from imagehost.exports.delivery import (
    HeldStream,
    cells_as_text,
    header_widths,
    stream_and_remove,
    write_xlsx,
    zip_bytes,
)
from imagehost.exports.service import CatalogueQuery, ExportService, LinkSheetQuery
from imagehost.exports.slots import ExportSlot
from imagehost.exports.xlsx_writer import SheetWriter
from imagehost.exports.zip_names import FolderNames, safe_component
from imagehost.images.controllers import content_disposition
from imagehost.images.links import Links
from imagehost.images.service import ImageService
from imagehost.web.bodies import json_object

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
ZIP = "application/zip"
ERRORS = (400, 401, 403, 404, 422, 503)
THUMBNAIL = N_("Thumbnail")
NOTES = N_("Notes")
THUMBNAILS_LEFT_OUT = N_(
    "Thumbnails are in the first {limit} rows only (EXPORT_THUMBNAIL_ROWS): the other {omitted} rows have none."
)
THUMBNAIL_COLUMN_WIDTH = 11  # characters: a PICTURE_BOX-pixel picture and its margin

_TEXT = Schema(type=OpenAPIType.STRING)
LinkSheetBody = form_body(
    required=("album_name",),
    media_types=("application/json",),
    album_name=_TEXT,
    article_name=Schema(type=OpenAPIType.STRING, description="One article; all when left out"),
    export_type=Schema(type=OpenAPIType.STRING, enum=["in_row", "in_cell"], description="Default in_row"),
    separator=Schema(type=OpenAPIType.STRING, description='in_cell: between links, default ", "; "\\n" for lines'),
    delimiter=Schema(type=OpenAPIType.STRING, enum=[",", ";"], description="CSV only; default ,"),
)


def gettext_of(request: Request) -> sheets.Gettext:
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    return translator.gettext


async def body_values(request: Request) -> Mapping[str, object]:
    """PicHosting's clients send JSON; a form or an empty body reads as the query string."""
    if "json" in request.headers.get("content-type", ""):
        return await json_object(request)
    form = await request.form()
    return {**query_values(request), **{key: value for key, value in form.items() if isinstance(value, str)}}


def query_values(request: Request) -> dict[str, object]:
    return {key: value for key, value in request.query_params.items()}


def link_sheet_name(sheet_album: str, article: str | None, extension: str) -> str:
    return f"links_{sheet_album}{f'_{article}' if article else ''}.{extension}"


def held(slot: ExportSlot, chunks: AsyncIterator[bytes], media_type: str, filename: str, **headers: str) -> HeldStream:
    return HeldStream(
        chunks,
        slot=slot,
        media_type=media_type,
        headers={"Content-Disposition": content_disposition(filename), **headers},
    )


def yes_or_no(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in {"", "0", "false", "no", "off"}:
        return False
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    raise InvalidParameter(field=name, reason="1 or 0")


async def logged_after(
    chunks: AsyncIterator[bytes], log: Any, what: str, principal: Any, tally: list[int]
) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk
    log(what, principal, tally[0])


class LinkSheetController(Controller):
    """PicHosting's link sheets: one row per article, its images' direct links in photo order."""

    path = "/api"

    async def _xlsx(self, request: Request, exports: ExportService, images: ImageService, values: Any) -> HeldStream:
        query = LinkSheetQuery.parse(values)
        principal = principal_of_request(request)
        sheet = await exports.link_sheet(query, principal)
        header = sheets.link_sheet_header(sheet, query.export_type, gettext_of(request))
        in_cell = query.export_type == "in_cell"
        widths = [24, 100] if in_cell else [24, *[60] * (len(header) - 1)]
        rows = sheets.link_sheet_rows(sheet, query.export_type, query.separator, Links(request, images))
        slot = exports.start(f"xlsx links of {sheet.album}", principal)
        try:
            path, writer = await write_xlsx(
                rows,
                lambda target: SheetWriter(
                    target,
                    header[1] if in_cell else header[0],
                    header,
                    header_widths(header, widths),
                    (1,) if in_cell else (),
                ),
            )
        except BaseException:
            slot.release()
            raise
        exports.log_export(f"xlsx links of {sheet.album}", principal, writer.rows, f" ({query.export_type})")
        return held(slot, stream_and_remove(path), XLSX, link_sheet_name(sheet.album, sheet.article, "xlsx"))

    async def _csv(self, request: Request, exports: ExportService, images: ImageService, values: Any) -> HeldStream:
        query = LinkSheetQuery.parse(values)
        principal = principal_of_request(request)
        sheet = await exports.link_sheet(query, principal)
        header = sheets.link_sheet_header(sheet, query.export_type, gettext_of(request))
        tally = [0]
        rows = cells_as_text(
            sheets.link_sheet_rows(sheet, query.export_type, query.separator, Links(request, images)), tally
        )
        what = f"csv links of {sheet.album} ({query.export_type})"
        chunks = logged_after(csv_bytes(header, rows, query.delimiter), exports.log_export, what, principal, tally)
        slot = exports.start(what, principal)
        return held(slot, chunks, CSV, link_sheet_name(sheet.album, sheet.article, "csv"))

    @post(
        "/export-xlsx",
        status_code=200,
        operation_class=LinkSheetBody,
        responses=binary(200, XLSX, "The link sheet", *ERRORS),
    )
    async def post_xlsx(self, request: Request, exports: ExportService, images: ImageService) -> HeldStream:
        return await self._xlsx(request, exports, images, await body_values(request))

    @get("/export-xlsx", responses=binary(200, XLSX, "The link sheet", *ERRORS))
    async def get_xlsx(
        self,
        request: Request,
        exports: ExportService,
        images: ImageService,
        album_name: str | None = None,
        article_name: str | None = None,
        export_type: str | None = None,
        separator: str | None = None,
    ) -> HeldStream:
        """album_name, article_name (one article), export_type in_row | in_cell, separator (in_cell)."""
        return await self._xlsx(request, exports, images, query_values(request))

    @post(
        "/export-csv",
        status_code=200,
        operation_class=LinkSheetBody,
        responses=binary(200, CSV, "The link sheet", *ERRORS),
    )
    async def post_csv(self, request: Request, exports: ExportService, images: ImageService) -> HeldStream:
        return await self._csv(request, exports, images, await body_values(request))

    @get("/export-csv", responses=binary(200, CSV, "The link sheet", *ERRORS))
    async def get_csv(
        self,
        request: Request,
        exports: ExportService,
        images: ImageService,
        album_name: str | None = None,
        article_name: str | None = None,
        export_type: str | None = None,
        separator: str | None = None,
        delimiter: str | None = None,
    ) -> HeldStream:
        """UTF-8 with a BOM; delimiter `,` (default) or `;` for Russian-locale Excel."""
        return await self._csv(request, exports, images, query_values(request))


class CatalogueExportController(Controller):
    """The catalogue as a spreadsheet, one row per image (not under /images/: nginx keeps that for files)."""

    path = "/export"

    def _rows(self, request: Request, exports: ExportService, images: ImageService) -> tuple[Any, ...]:
        values = query_values(request)
        principal = principal_of_request(request)
        available = sheets.catalogue_columns(images.settings.thumbnail_sizes)
        wanted = values.get("columns")
        columns = sheets.chosen_columns(
            available, wanted if isinstance(wanted, str) else None, exports.policy.sees_uploaders(principal)
        )
        gettext = gettext_of(request)
        header = [gettext(column.label).format(size=column.name.removeprefix("thumbnail_")) for column in columns]
        return CatalogueQuery.parse(values), principal, columns, header

    @get("/images.csv", responses=binary(200, CSV, "One row per image", *ERRORS))
    async def images_csv(
        self,
        request: Request,
        exports: ExportService,
        images: ImageService,
        album_name: str | None = None,
        article_name: str | None = None,
        uploader: str | None = None,
        format: str | None = None,
        columns: str | None = None,
        delimiter: str | None = None,
    ) -> HeldStream:
        """Filters album_name, article_name, uploader (admins), format, from, to (ISO 8601); columns=;
        delimiter `,` (default) or `;`."""
        query, principal, chosen, header = self._rows(request, exports, images)
        delimiter = delimiter or ","
        if delimiter not in (",", ";"):
            raise InvalidParameter(field="delimiter", reason="`,` or `;`")
        found = await exports.catalogue(query, principal)
        tally = [0]
        rows = cells_as_text(sheets.catalogue_rows(found, chosen, Links(request, images)), tally)
        chunks = logged_after(csv_bytes(header, rows, delimiter), exports.log_export, "csv catalogue", principal, tally)
        return held(exports.start("csv catalogue", principal), chunks, CSV, "images.csv")

    @get("/images.xlsx", responses=binary(200, XLSX, "One row per image", *ERRORS))
    async def images_xlsx(
        self,
        request: Request,
        exports: ExportService,
        images: ImageService,
        album_name: str | None = None,
        article_name: str | None = None,
        uploader: str | None = None,
        format: str | None = None,
        columns: str | None = None,
        with_thumbnails: str | None = None,
    ) -> HeldStream:
        """Frozen header, column widths, clickable links (65,530 a sheet), a new sheet past 1,048,576 rows.
        with_thumbnails=1: a first column with a small picture, in the first EXPORT_THUMBNAIL_ROWS rows."""
        query, principal, chosen, header = self._rows(request, exports, images)
        pictures = yes_or_no(with_thumbnails, "with_thumbnails")
        gettext = gettext_of(request)
        widths = header_widths(header, [c.width for c in chosen])
        limit = images.settings.export_thumbnail_rows if pictures else 0
        if pictures:
            header, widths = [gettext(THUMBNAIL), *header], [THUMBNAIL_COLUMN_WIDTH, *widths]
        found = await exports.catalogue(query, principal)
        thumbnails = sheets.Thumbnails(images.files, limit) if pictures else None
        rows = sheets.catalogue_rows(found, chosen, Links(request, images), thumbnails)
        title = gettext("Images")

        def note_what_was_left_out(writer: SheetWriter) -> None:
            if pictures and writer.rows > limit:
                note = gettext(THUMBNAILS_LEFT_OUT).format(limit=f"{limit:,}", omitted=f"{writer.rows - limit:,}")
                writer.add_note(gettext(NOTES), [note])

        slot = exports.start("xlsx catalogue", principal)
        try:
            path, writer = await write_xlsx(
                rows, lambda target: SheetWriter(target, title, header, widths), finish=note_what_was_left_out
            )
        except BaseException:
            slot.release()
            raise
        detail = f", {writer.pictures} picture(s)" if pictures else ""
        exports.log_export("xlsx catalogue", principal, writer.rows, detail)
        headers = {}
        if pictures:
            headers = {
                "X-Export-Thumbnail-Rows": str(limit),
                "X-Export-Thumbnails-Omitted": str(max(writer.rows - limit, 0)),
            }
        return held(slot, stream_and_remove(path), XLSX, "images.xlsx", **headers)


class AlbumDownloadController(Controller):
    """An album (or one article) as one ZIP: `<article>/<original name>`, the stored bytes."""

    path = "/download/album"

    @get(["/{album:str}", "/{album:str}/{article:str}"], responses=binary(200, ZIP, "The album's images", *ERRORS))
    async def album_zip(
        self, request: Request, exports: ExportService, images: ImageService, album: str, article: str | None = None
    ) -> HeldStream:
        principal = principal_of_request(request)
        name, articles = await exports.album_images(album, article, principal)
        tally = [0]

        async def members() -> AsyncIterator[tuple[str, Path | bytes, datetime]]:
            async for found in articles:
                folder = safe_component(found.code, "article")
                names = FolderNames()
                for position, image in enumerate(found.images, 1):
                    source = await images.files.archived(image.stored_name)
                    if source is None:  # deleted while the archive goes out
                        continue
                    # The last part of the original name (a row may hold `../../x`), with the real extension.
                    last = image.original_name.replace("\\", "/").rsplit("/", 1)[-1]
                    named = replace(image, original_name=last or f"{position}").download_name
                    member = names.unique(safe_component(named, f"{position}.{image.extension}"))
                    tally[0] += 1
                    yield f"{folder}/{member}", source, image.uploaded_at

        what = f"zip of album {name}"
        chunks = logged_after(zip_bytes(members()), exports.log_export, what, principal, tally)
        return held(exports.start(what, principal), chunks, ZIP, f"{name}.zip")
