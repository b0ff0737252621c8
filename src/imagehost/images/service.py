"""Image rules: validate, store, list, find and delete. Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.columns.combination import WhereRaw

from imagehost.accounts.policy import Policy
from imagehost.accounts.principal import ANONYMOUS, Principal
from imagehost.errors import (
    DeleteForbidden,
    FileTooLarge,
    ImageNotFound,
    ImageProcessingFailed,
    NoFileGiven,
    ServiceStopping,
    StorageFull,
    StorageUnavailable,
)
from imagehost.images.formats import BY_NAME
from imagehost.images.inspection import CONTENT_TYPES, EXTENSIONS
from imagehost.images.pipeline import ProcessedImage, convert_for_api, process_upload, sizes_below
from imagehost.images.storage import ImageStore, new_stored_name
from imagehost.images.tables import LARGEST_IMAGE_ID, Image
from imagehost.images.workers import ThreadRunner, WorkerFailed
from imagehost.logging import action_log
from imagehost.metrics import instruments
from imagehost.paging import Paged
from imagehost.settings import Settings
from imagehost.storage.files import ImageFiles
from imagehost.storage.local import LocalFiles

MAX_ORIGINAL_NAME = 255
# Runs inside an upload's transaction with the new image's id (albums/service.py links it there).
Link = Callable[[int], Awaitable[None]]


def human_size(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.0f} KB"


def clean_original_name(name: str | None) -> str:
    """Keep the client's name as metadata only: no folders, no control characters, bounded length."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    return name[:MAX_ORIGINAL_NAME] or "upload"


def hash_key(delete_key: str) -> str:
    return hashlib.sha256(delete_key.encode()).hexdigest()


async def lock_stored_name(stored_name: str) -> None:
    """A transaction-long lock on one stored name, so that settling an interrupted upload or delete
    waits for a transaction of it that the server may still be finishing (see finish_interrupted)."""
    key = int.from_bytes(hashlib.sha256(stored_name.encode()).digest()[:8], "big", signed=True)
    await Image.raw("SELECT pg_advisory_xact_lock({})", key)


@dataclass(frozen=True)
class IncomingFile:
    original_name: str
    content: bytes


@dataclass(frozen=True)
class StoredImage:
    id: int
    stored_name: str
    original_name: str
    size_bytes: int
    file_format: str
    sha256: str
    uploaded_at: datetime
    width: int | None = None
    height: int | None = None
    source_format: str | None = None
    quality: int | None = None
    uploader_sub: str | None = None
    uploader_name: str | None = None

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.file_format].lstrip(".")

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.file_format]

    @property
    def download_name(self) -> str:
        """The original name's stem with the real format's extension: `report.html` holding a PNG
        downloads as `report.png`, so no program opens it as anything but an image."""
        stem, dot, extension = self.original_name.rpartition(".")
        image_format = BY_NAME[self.file_format]
        if dot and stem and extension.lower() in (image_format.extension, *image_format.name_extensions):
            return self.original_name
        return f"{stem if dot and stem else self.original_name}.{self.extension}"

    @property
    def size_kb(self) -> int:
        return max(1, round(self.size_bytes / 1024)) if self.size_bytes else 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredImage:
        return cls(
            id=row["id"],
            stored_name=row["stored_name"],
            original_name=row["original_name"],
            size_bytes=row["size_bytes"],
            file_format=row["file_format"],
            sha256=row["sha256"],
            uploaded_at=row["uploaded_at"],
            width=row["width"],
            height=row["height"],
            source_format=row["source_format"],
            quality=row["quality"],
            uploader_sub=row["uploader_sub"],
            uploader_name=row["uploader_name"],
        )


@dataclass(frozen=True)
class UploadResult:
    image: StoredImage
    delete_key: str


@dataclass(frozen=True)
class CataloguePage(Paged):
    images: list[StoredImage]
    page: int
    total_items: int
    page_size: int

    @property
    def per_page(self) -> int:
        return self.page_size


@dataclass(frozen=True)
class DeleteCredentials:
    """What the requester offers: delete keys (from the URL or their browser's cookie), operator status."""

    keys: tuple[str, ...] = ()
    operator: bool = False
    principal: Principal = ANONYMOUS
    # Set when a rule outside this service allowed the delete (albums: an admin or the album's
    # creator removes its images); the log names this instead of the operator.
    granted_by: str = ""


_COLUMNS = (
    Image.id,
    Image.stored_name,
    Image.original_name,
    Image.size_bytes,
    Image.file_format,
    Image.sha256,
    Image.uploaded_at,
    Image.width,
    Image.height,
    Image.source_format,
    Image.quality,
    Image.uploader_sub,
    Image.uploader_name,
)


async def album_count(album_name: str, article_name: str | None = None) -> int | None:
    """An album's (or article's) images, from the counts its triggers keep (migration
    albums_0003_image_counts): the same cost for an album of a million images as of ten. None: no
    album (or article) of that name."""
    album = unicodedata.normalize("NFC", album_name).strip()
    if article_name is None:
        rows = await Image.raw("SELECT image_count FROM albums WHERE name = {}", album)
    else:
        rows = await Image.raw(
            "SELECT ar.image_count FROM articles ar JOIN albums al ON al.id = ar.album"
            " WHERE al.name = {} AND ar.code = {}",
            album,
            unicodedata.normalize("NFC", article_name).strip(),
        )
    return int(rows[0]["image_count"]) if rows else None


def in_album(album_name: str, article_name: str | None = None) -> WhereRaw:
    """Images placed in this album (and article), read through album_images' (album, image) and
    (article, image) indexes. Names as the albums store them (NFC); an unknown one matches nothing."""
    album = unicodedata.normalize("NFC", album_name).strip()
    if article_name is None:
        return WhereRaw(
            "id IN (SELECT ai.image FROM album_images ai JOIN albums al ON al.id = ai.album WHERE al.name = {})",
            album,
        )
    return WhereRaw(
        "id IN (SELECT ai.image FROM album_images ai JOIN articles ar ON ar.id = ai.article"
        " JOIN albums al ON al.id = ar.album WHERE al.name = {} AND ar.code = {})",
        album,
        unicodedata.normalize("NFC", article_name).strip(),
    )


class ImageService:
    def __init__(
        self, settings: Settings, store: ImageStore, workers: Any = None, files: ImageFiles | None = None
    ) -> None:
        self.settings = settings
        self.store = store  # the local folder: IMAGES_DIR, its staging area (ZIP spools) and the operator tools
        # Where the images' files live: that folder (the default) or a bucket (STORAGE=s3, storage/bucket.py).
        self.files: ImageFiles = files or LocalFiles(store)
        self.workers = workers or ThreadRunner()
        self.policy = Policy(settings)
        # Uploads read into memory and processed at once: about two per worker. The others wait
        # with their bodies still spooled to disk by Litestar, so memory stays bounded under load.
        self.intake_size = 2 * max(settings.worker_processes, 2)
        self.intake = asyncio.Semaphore(self.intake_size)
        self.log = action_log()

    async def upload(
        self,
        incoming: IncomingFile | None,
        principal: Principal = ANONYMOUS,
        link: Link | None = None,
        convert_from: tuple[str, ...] = (),
    ) -> UploadResult:
        """One upload, counted in the metrics (stored or refused, its format, time and size)."""
        name, size = (incoming.original_name, len(incoming.content)) if incoming else ("", 0)
        with instruments.timed_upload(name, size) as timer:
            result = await self._upload(incoming, principal, link, convert_from)
            timer.stored(result.image.file_format)
        return result

    async def _upload(
        self,
        incoming: IncomingFile | None,
        principal: Principal = ANONYMOUS,
        link: Link | None = None,
        convert_from: tuple[str, ...] = (),
    ) -> UploadResult:
        """`link` (albums) runs inside the transaction that stores the image, with its id: the image
        and its place in an album are committed together or not at all. A file in one of
        `convert_from` (ZIP entries with ZIP_CONVERT_FORMATS) is stored as the PNG or JPEG the worker
        makes of it, under its original name with that format's extension."""
        self.policy.require_upload(principal)
        if incoming is None:
            raise NoFileGiven()
        name = clean_original_name(incoming.original_name)
        if len(incoming.content) > self.settings.max_upload_bytes:
            raise FileTooLarge(filename=name, limit=human_size(self.settings.max_upload_bytes))
        settings = self.settings
        processed = await self._process(
            name,
            process_upload,
            incoming.content,
            name,
            settings.allowed_formats,
            settings.max_pixels,
            settings.strip_metadata,
            settings.thumbnail_sizes,
            convert_from,
            settings.max_upload_bytes,
        )
        if convert_from and processed.source_format:
            name = f"{name.rpartition('.')[0] or name}{EXTENSIONS[processed.file_format]}"
        return await self._store(name, processed, principal, link)

    async def convert(
        self,
        incoming: IncomingFile | None,
        quality: int,
        box: tuple[int | None, int | None],
        principal: Principal = ANONYMOUS,
    ) -> UploadResult:
        """The conversion API: store the given image as a progressive JPEG fitted into `box`."""
        self.policy.require_upload(principal)
        if incoming is None:
            raise NoFileGiven()
        name = clean_original_name(incoming.original_name)
        if len(incoming.content) > self.settings.api_max_upload_bytes:
            raise FileTooLarge(filename=name, limit=human_size(self.settings.api_max_upload_bytes))
        processed = await self._process(
            name,
            convert_for_api,
            incoming.content,
            name,
            self.settings.max_pixels,
            quality,
            box,
            self.settings.thumbnail_sizes,
        )
        return await self._store(name, processed, principal)

    async def _process(self, name: str, function: Any, *args: Any) -> ProcessedImage:
        try:
            return await self.workers.run(function, *args)
        except WorkerFailed as failure:
            if failure.reason == "closed":
                raise ServiceStopping(filename=name) from None
            raise ImageProcessingFailed(filename=name, reason=failure.reason) from None

    async def _store(
        self, name: str, processed: ProcessedImage, principal: Principal, link: Link | None = None
    ) -> UploadResult:
        """The row first (no file is written while the database is down), then the files, then COMMIT.

        The files are in place before the row can be seen, and a marker in the staging folder ties
        them to the row until the outcome is known (storage.py): a crash at any point leaves either
        both or, once finish_interrupted has run, neither.
        """
        content = processed.content
        stored_name = new_stored_name(EXTENSIONS[processed.file_format])
        delete_key = secrets.token_urlsafe(16)
        files = None
        committing = False
        try:
            async with Image._meta.db.transaction():
                await lock_stored_name(stored_name)
                # INSERT ... RETURNING the image's columns: no second round trip to read it back.
                new_row = Image(
                    stored_name=stored_name,
                    original_name=name,
                    size_bytes=len(content),
                    file_format=processed.file_format,
                    sha256=processed.sha256,
                    delete_key_hash=hash_key(delete_key),
                    width=processed.width,
                    height=processed.height,
                    source_format=processed.source_format,
                    quality=processed.quality,
                    uploader_sub=principal.sub if principal.signed_in else None,
                    uploader_name=principal.name if principal.signed_in else None,
                )
                row = (await Image.insert(new_row).returning(*_COLUMNS))[0]
                if link is not None:
                    await link(row["id"])
                files = await self.files.write_provisional(stored_name, content, processed.thumbnails)
                committing = True
        except BaseException:
            if files is not None and committing:
                # The COMMIT's answer was lost: the row may or may not be there. The marker stays
                # for finish_interrupted, which asks the database once it answers again.
                await files.leave()
            elif files is not None:
                await files.discard()  # rolled back: no file outlives it
            raise
        await files.keep()
        instruments.record_thumbnails(len(processed.thumbnails))
        image = StoredImage.from_row(row)
        made = f", converted from {processed.source_format}" if processed.source_format else ""
        by = f" by {principal.name}" if principal.signed_in else ""
        self.log.info(f"image {stored_name} uploaded{by} ({name}, {len(content)} bytes{made}).", action="Success")
        return UploadResult(image=image, delete_key=delete_key)

    async def finish_interrupted(self) -> int:
        """Settle the uploads and deletes a crash (or a lost COMMIT answer) left undecided: the files
        stay if their row is there and go if it is not. Runs at start and whenever the database
        comes back. Returns how many were settled."""
        undecided = await self.files.interrupted()
        settled = 0
        try:
            while undecided:
                files = undecided[0]
                async with Image._meta.db.transaction():
                    await lock_stored_name(files.stored_name)  # waits out a COMMIT still in progress
                    row_exists = await Image.exists().where(Image.stored_name == files.stored_name)
                await (files.keep() if row_exists else files.discard())
                undecided.pop(0)
                settled += 1
                outcome = "kept, its row is there" if row_exists else "removed, it has no row"
                self.log.warning(
                    f"interrupted upload or delete of {files.stored_name} settled: files {outcome}.", action="Storage"
                )
        finally:
            for files in undecided:  # the database went away again: next time
                await files.leave()
        return settled

    async def regenerate_thumbnails(
        self, *, only_missing: bool = True, first_id: int = 1, last_id: int = LARGEST_IMAGE_ID
    ) -> tuple[int, int]:
        """Make the thumbnails missing (after a restore or a change of THUMBNAIL_SIZES) of the images
        with ids first_id to last_id; with only_missing=False, remake them all. A batch of the queue's
        `thumbnails` task (images/thumbnail_jobs.py).

        Returns (images looked at, images given new thumbnails).
        """
        from imagehost.images.pipeline import thumbnails_for_stored

        wanted = self.settings.thumbnail_sizes
        looked = made = 0
        after = first_id - 1
        while True:
            rows = await (
                Image.select(Image.id, Image.stored_name, Image.original_name, Image.width, Image.height)
                .where((Image.id > after) & (Image.id <= last_id))
                .order_by(Image.id)
                .limit(500)
            )
            if not rows:
                break
            for row in rows:
                after = row["id"]
                looked += 1
                present = set(await self.files.thumbnail_sizes_present(row["stored_name"]))
                due = sizes_below(wanted, row["width"], row["height"]) if row["width"] else wanted
                missing = tuple(size for size in due if not only_missing or size not in present)
                if not missing:
                    continue
                content = await self.files.read(row["stored_name"])  # None for a row naming no stored file
                if content is None:
                    continue
                try:
                    thumbnails = await self.workers.run(
                        thumbnails_for_stored, content, row["stored_name"], self.settings.max_pixels, missing
                    )
                except Exception as error:  # one bad file must not stop the others; it is logged
                    self.log.error(
                        f"thumbnails for {row['stored_name']} failed: {type(error).__name__}.", action="Thumbnails"
                    )
                    continue
                await self.files.write_thumbnails(row["stored_name"], thumbnails)
                made += 1
        return looked, made

    async def get(self, image_id: int) -> StoredImage:
        if not 1 <= image_id <= LARGEST_IMAGE_ID:
            raise ImageNotFound(name=f"#{image_id}")
        row = await Image.select(*_COLUMNS).where(Image.id == image_id).first()
        if row is None:
            raise ImageNotFound(name=f"#{image_id}")
        return StoredImage.from_row(row)

    async def view(self, image_id: int, principal: Principal = ANONYMOUS) -> StoredImage:
        """An image for someone who wants to see or download it."""
        self.policy.require_browse(principal)
        return await self.get(image_id)

    async def find_by_name(self, stored_name: str, principal: Principal = ANONYMOUS) -> StoredImage:
        self.policy.require_browse(principal)
        row = await Image.select(*_COLUMNS).where(Image.stored_name == stored_name).first()
        if row is None:
            raise ImageNotFound(name=stored_name)
        return StoredImage.from_row(row)

    async def some(self, image_ids: Iterable[int]) -> list[StoredImage]:
        """The images among these ids that still exist, newest first."""
        ids = list({int(image_id) for image_id in image_ids if 1 <= int(image_id) <= LARGEST_IMAGE_ID})
        if not ids:
            return []
        rows = await (
            Image.select(*_COLUMNS).where(Image.id.is_in(ids)).order_by(Image.uploaded_at, Image.id, ascending=False)
        )
        return [StoredImage.from_row(row) for row in rows]

    async def count(
        self, uploader: str | None = None, album_name: str | None = None, article_name: str | None = None
    ) -> int:
        if album_name is not None and uploader is None:
            return await album_count(album_name, article_name) or 0
        if album_name is not None:
            query = Image.count().where(in_album(album_name, article_name))
            return await query.where(Image.uploader_sub == uploader)
        if uploader is not None:
            return await Image.count().where(Image.uploader_sub == uploader)
        # Kept by a trigger (see the migrations): a count(*) would scan the whole table on every page.
        rows = await Image.raw("SELECT total FROM image_totals WHERE id = 1")
        return int(rows[0]["total"]) if rows else 0

    async def page(
        self,
        page: int,
        principal: Principal = ANONYMOUS,
        uploader: str | None = None,
        album_name: str | None = None,
        article_name: str | None = None,
    ) -> CataloguePage:
        """One page of the catalogue, newest first; `uploader` narrows it to one person's images
        (anyone may list their own, only admins someone else's), `album_name` (and `article_name`)
        to one album's (or article's)."""
        self.policy.require_browse(principal)
        if uploader is not None and uploader != principal.sub:
            self.policy.require_admin(principal)
        size = self.settings.page_size
        total = await self.count(uploader, album_name, article_name)
        page = max(1, page)
        offset = (page - 1) * size

        def query(ascending: bool) -> Any:
            select = Image.select(*_COLUMNS).order_by(Image.uploaded_at, Image.id, ascending=ascending)
            if album_name is not None:
                select = select.where(in_album(album_name, article_name))
            return select.where(Image.uploader_sub == uploader) if uploader is not None else select

        if offset >= total:
            images: list[StoredImage] = []
        elif offset <= total // 2:
            rows = await query(ascending=False).limit(size).offset(offset)
            images = [StoredImage.from_row(row) for row in rows]
        else:
            # Pages past the middle are read from the other end of the index, so the last page
            # costs what the first one does.
            count = min(size, total - offset)
            rows = await query(ascending=True).limit(count).offset(max(0, total - offset - size))
            images = [StoredImage.from_row(row) for row in reversed(rows)]
        return CataloguePage(images=images, page=page, total_items=total, page_size=size)

    async def deletable(self, image_id: int, credentials: DeleteCredentials) -> StoredImage:
        """The image, when these credentials may delete it: the check a delete makes, without
        deleting (a delete link opened in a browser shows what it would delete)."""
        if not 1 <= image_id <= LARGEST_IMAGE_ID:
            raise ImageNotFound(name=f"#{image_id}")
        row = await Image.select(*_COLUMNS, Image.delete_key_hash).where(Image.id == image_id).first()
        if row is None:
            raise ImageNotFound(name=f"#{image_id}")
        image = StoredImage.from_row(row)
        has_key = any(hmac.compare_digest(hash_key(key), row["delete_key_hash"]) for key in credentials.keys if key)
        principal = credentials.principal
        allowed = credentials.granted_by or self.policy.may_delete(
            principal, image.uploader_sub, has_key=has_key, operator=credentials.operator
        )
        if not allowed:
            raise DeleteForbidden(name=image.stored_name, who=principal.name or "anonymous")
        return image

    async def delete(self, image_id: int, credentials: DeleteCredentials) -> StoredImage:
        image = await self.deletable(image_id, credentials)
        principal = credentials.principal
        # The marker first, then the row, then the files: never a row whose link is dead, and a crash
        # between the steps is settled by finish_interrupted (storage.py).
        files = await self.files.removal(image.stored_name)
        try:
            async with Image._meta.db.transaction():
                await lock_stored_name(image.stored_name)
                deleted = await Image.delete().where(Image.id == image_id).returning(Image.id)
        except BaseException:
            await files.leave()  # deleted or not: its row will tell
            raise
        if not deleted:
            await files.keep()
            raise ImageNotFound(name=f"#{image_id}")
        try:
            await files.discard()
        except (StorageFull, StorageUnavailable) as error:  # the row is gone; the files go at the next settling
            await files.leave()
            self.log.error(f"files of deleted image {image.stored_name} not removed: {error}.", action="Storage")
        if credentials.granted_by:
            who = credentials.granted_by
        elif credentials.operator:
            who = "the operator"
        elif principal.signed_in:
            who = principal.name
        else:
            who = "its uploader"
        self.log.info(f"image {image.stored_name} deleted by {who} ({image.original_name}).", action="Success")
        instruments.record_delete()
        return image

    def url_of(self, image: StoredImage, request_base: str) -> str:
        base = self.settings.images_base_url or self.settings.public_base_url or request_base.rstrip("/")
        return f"{base}/images/{image.stored_name}"

    async def readiness_problem(self) -> str | None:
        """Why the service cannot take uploads right now, or None when it can."""
        try:
            await Image.raw("SELECT 1")
        except Exception as error:  # any failure here means "not ready"; the reason says which
            return f"database unreachable: {type(error).__name__}"
        return await self.files.problem()
