"""A ZIP sent to the upload page's route (POST /upload): unpacked there through the same job path as
POST /api/upload, within that route's own limit (MAX_UPLOAD_BYTES); larger archives belong to
/api/upload. The upload controller asks `archive_part` and hands the archive over."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.datastructures import UploadFile

from imagehost.accounts.identity import principal_of_request
from imagehost.albums.archive import human_bytes
from imagehost.albums.controllers import submitted_response
from imagehost.albums.service import AlbumService
from imagehost.errors import ArchiveTooLargeForPage
from imagehost.images.links import Links
from imagehost.images.service import ImageService

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def _parts(form: Any, name: str) -> list[UploadFile]:
    try:
        values = form.getall(name)
    except KeyError:
        return []
    return [value for value in values if isinstance(value, UploadFile)]


async def archive_part(form: Any) -> UploadFile | None:
    """The one ZIP of the form: a `zipfile` part, or a single `file` part whose bytes are a ZIP."""
    if zipped := _parts(form, "zipfile"):
        return zipped[0]
    files = _parts(form, "file")
    if len(files) != 1:
        return None
    await files[0].seek(0)
    head = await files[0].read(4)
    await files[0].seek(0)
    return files[0] if head.startswith(ZIP_SIGNATURES) else None


async def upload_archive_from_page(
    request: Request, form: Any, field: UploadFile, albums: AlbumService, images: ImageService
) -> Response:
    try:
        size = field.file.seek(0, 2)
        field.file.seek(0)
        limit = images.settings.max_upload_bytes
        if size > limit:
            raise ArchiveTooLargeForPage(filename=field.filename, limit=human_bytes(limit))
        album_name, mode = form.get("album_name"), form.get("mode")
        outcome = await albums.submit_archive(
            field.file,
            field.filename,
            principal_of_request(request),
            album_name=album_name if isinstance(album_name, str) and album_name.strip() else None,
            mode=mode if isinstance(mode, str) else None,
        )
    finally:
        await field.close()
    return submitted_response(request, outcome, Links(request, images))
