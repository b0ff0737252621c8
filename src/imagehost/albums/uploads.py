"""What POST /upload takes from the albums: a ZIP sent there, and single images put into an album.

A ZIP is unpacked through the same job path as POST /api/upload, within that route's own limit
(MAX_UPLOAD_BYTES); larger archives belong to /api/upload. The upload controller asks
`archive_part` and hands the archive over.

Single images (one or several `file` parts) name their place with `album_name` and, optionally,
`article_name`; without an article each file's article comes from its name, as for a file at an
archive's album level (`SKU3_2.jpg` -> `SKU3`). The image and its place are stored in one
transaction, after the article's last photo.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from litestar import Request, Response
from litestar.datastructures import UploadFile

from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.principal import Principal
from imagehost.albums.archive import human_bytes
from imagehost.albums.controllers import submitted_response
from imagehost.albums.mapping import photo_number
from imagehost.albums.names import catalogue_name
from imagehost.albums.service import AlbumService
from imagehost.errors import AlbumExists, ArchiveTooLargeForPage, MissingParameter
from imagehost.images.links import Links
from imagehost.images.service import ImageService, IncomingFile, clean_original_name

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def file_parts(form: Any) -> list[UploadFile]:
    """Every `file` part of the form, in the order sent."""
    return _parts(form, "file")


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
        outcome = await albums.intake.submit_archive(
            field.file,
            field.filename,
            principal_of_request(request),
            album_name=album_name if isinstance(album_name, str) and album_name.strip() else None,
            mode=mode if isinstance(mode, str) else None,
        )
    finally:
        await field.close()
    return submitted_response(request, outcome, Links(request, images))


@dataclass(frozen=True)
class Destination:
    """The album (and article, or None: each file's own from its name) single uploads go into."""

    album: str
    article: str | None
    # Shared by the request's files: the album it found, or the one its first stored file created
    # (so an anonymous uploader's second file goes into the album the first one made).
    job: dict[str, int | None]

    async def link(self, albums: AlbumService, incoming: IncomingFile, principal: Principal) -> Any:
        """The `link` ImageService.upload runs in the image's transaction. An article taken from
        the file's name that breaks the name rule refuses this file (InvalidName), not the others."""
        article = self.article or catalogue_name(photo_number(clean_original_name(incoming.original_name))[0])
        # Up to MAX_UPLOAD_BYTES: hashed off the event loop, as the ZIP path reads its entries.
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(incoming.content).hexdigest())
        return albums.linker(self.album, principal, article, None, digest, self.job)


async def destination(albums: AlbumService, form: Any, principal: Principal) -> Destination | None:
    """The form's `album_name` / `article_name`, checked before any file is read: names, and that an
    anonymous uploader creates a new album rather than adding to someone else's (409)."""
    album_name, article_name = _text(form, "album_name"), _text(form, "article_name")
    if album_name is None:
        if article_name is not None:
            raise MissingParameter(name="album_name")
        return None
    albums.policy.require_upload(principal)
    album = catalogue_name(album_name)
    article = catalogue_name(article_name) if article_name is not None else None
    existing = await albums.find_album(album)
    if existing is not None and not albums.policy.may_add_to_album(principal):
        raise AlbumExists(name=album)
    return Destination(album, article, {"album_id": existing.id if existing else None})
