"""Albums and articles: ZIP batch uploads through the image pipeline, listings, counts, deletes.

Knows nothing of HTTP. Every image goes through ImageService.upload (the same checks, workers,
storage, crash safety and log as a single upload); its link to the album and article is written in
that upload's own transaction, so a crash leaves only whole images, each with its row and its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import anyio.to_thread
import asyncpg

from imagehost.accounts.principal import Principal
from imagehost.albums.archive import Archive, ArchiveLimits, open_archive
from imagehost.albums.jobs import EntryRow, JobBook, JobRow, job_id_of, job_key, new_job_id, ticket
from imagehost.albums.mapping import map_files
from imagehost.albums.names import catalogue_name, natural_key
from imagehost.albums.tables import Album, AlbumImage, Article
from imagehost.errors import (
    N_,
    OUTAGES,
    AlbumChangeForbidden,
    AlbumExists,
    AlbumForbidden,
    AlbumNameTaken,
    AlbumNotFound,
    ArticleCodeTaken,
    ArticleNotFound,
    ImageHostError,
    ImageNotInAlbum,
    InvalidParameter,
    JobInterrupted,
    JobsUnavailable,
    NoArchiveGiven,
    OrderMismatch,
    SameFileInArticle,
    StorageUnavailable,
)
from imagehost.images.formats import ARCHIVE_CONVERTIBLE_NAMES
from imagehost.images.service import DeleteCredentials, ImageService, IncomingFile, StoredImage
from imagehost.images.tables import LARGEST_IMAGE_ID
from imagehost.logging import action_log
from imagehost.metrics import instruments
from imagehost.storage import job_spools
from imagehost.tasks.queue import ATTEMPTS, UPLOADS, JobQueue, Run, TaskKind, worker_name

MODES = ("merge", "replace")
SYSTEM_FILE = N_("A system file or folder: skipped.")
DUPLICATE = N_("The same file is already in the article {article}: image {id}.")
DUPLICATE_IN_ARCHIVE = N_("The same file is already in this archive: {entry}.")


@dataclass(frozen=True)
class Note:
    """Why an entry was skipped (not an error): a translatable sentence and its values."""

    template: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EntryResult:
    entry: str
    status: Literal["stored", "refused", "skipped"]
    album_name: str
    article_number: str | None = None
    image: StoredImage | None = None
    delete_key: str | None = None
    reason: ImageHostError | Note | None = None


@dataclass
class ArchiveReport:
    album_name: str
    archive_name: str
    results: list[EntryResult]
    removed: int = 0  # earlier images `replace` removed

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def stored(self) -> int:
        return self.count("stored")

    @property
    def refused(self) -> int:
        return self.count("refused")

    @property
    def skipped(self) -> int:
        return self.count("skipped")


@dataclass(frozen=True)
class StartedJob:
    """A ZIP's job that goes on after the answer: its id is the uploader's to follow it by."""

    job_id: str


@dataclass
class JobReport:
    """A job as its URL shows it: its state and the report of the entries done so far."""

    job: JobRow
    report: ArchiveReport

    @property
    def done(self) -> int:
        return len(self.report.results)


class JobProgress:
    """Writes each entry's result to the job as the entry finishes."""

    def __init__(self, book: JobBook, job_id: str) -> None:
        self.book = book
        self.job_id = job_id

    async def entry_done(self, number: int, result: EntryResult) -> None:
        await self.book.record(self.job_id, number, result)

    def linked(self, number: int, result: EntryResult, link: Any) -> Any:
        """The album link, and the entry's job row in the same transaction as the image's row."""

        async def link_and_record(image_id: int) -> None:
            await link(image_id)
            await self.book.record(
                self.job_id,
                number,
                EntryResult(result.entry, "stored", result.album_name, result.article_number),
                image_id=image_id,
            )

        return link_and_record


@dataclass(frozen=True)
class AlbumFile:
    """An image as PicHosting's API lists it: with its album and article."""

    image: StoredImage
    album_name: str
    article_number: str


@dataclass(frozen=True)
class MovedImages:
    """What a move did: where the images went, how many moved, and the articles it left empty
    (deleted: an article without images does not linger)."""

    album_name: str
    article_number: str
    moved: int
    emptied: list[tuple[str, str]]  # (album, article) removed


@dataclass(frozen=True)
class FoundAlbum:
    id: int
    name: str
    created_by_sub: str | None


# The images columns StoredImage.from_row reads, for the queries that join album_images to images.
_SELECT_FILES = (
    "SELECT i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name, a.code"
    " FROM album_images ai JOIN images i ON i.id = ai.image JOIN articles a ON a.id = ai.article"
)
_SAME_FILE_IN_ARTICLE = (
    _SELECT_FILES + " WHERE a.album = {} AND a.code = {} AND (ai.source_sha256 = {} OR i.sha256 = {}) LIMIT 1"
)
# `a.album = ai.album` lets the planner read only the album's articles (articles_album_code), not all.
_ALBUM_FILES = _SELECT_FILES + " WHERE ai.album = {} AND a.album = ai.album ORDER BY ai.image DESC"
_ARTICLE_FILES = _SELECT_FILES + " WHERE ai.article = {} ORDER BY ai.image DESC"


# The images a move names, with where they are and their two digests (the duplicate test).
_MOVED_ROWS = (
    "SELECT ai.image, ai.article, ai.source_sha256, i.sha256, ar.code, al.id AS album_id, al.name AS album_name,"
    " al.created_by_sub FROM album_images ai JOIN images i ON i.id = ai.image JOIN articles ar ON ar.id = ai.article"
    " JOIN albums al ON al.id = ai.album WHERE ai.image = ANY({}) ORDER BY ai.image"
)
# The target article's images holding one of these files (as uploaded, or as stored).
_SAME_FILES_IN_ARTICLE = (
    "SELECT ai.image, ai.source_sha256, i.sha256 FROM album_images ai JOIN images i ON i.id = ai.image"
    " WHERE ai.article = {} AND NOT ai.image = ANY({}) AND (ai.source_sha256 = ANY({}) OR i.sha256 = ANY({})) LIMIT 1"
)
# Positions written in one statement: the n-th id gets base + n.
_SET_POSITIONS = (
    "UPDATE album_images ai SET album = {}, article = {}, position = {} + m.n"
    " FROM unnest({}::int[]) WITH ORDINALITY AS m(image, n) WHERE ai.image = m.image"
)
# Moves and reorders take their articles' rows first, in id order (no deadlock between two of them);
# NO KEY UPDATE lets uploads go on linking new images to them meanwhile.
_LOCK_ARTICLES = "SELECT id FROM articles WHERE id = ANY({}) ORDER BY id FOR NO KEY UPDATE"
MOST_MOVED = 1000  # image ids in one move
ZIP_TASK = "zip_upload"
JOB_POLL_SECONDS = 0.1  # how often a request waiting for its ZIP's job looks at it


def _result_of(row: EntryRow) -> EntryResult:
    return EntryResult(
        entry=row.entry,
        status=row.status,  # type: ignore[arg-type]
        album_name=row.album_name,
        article_number=row.article_number,
        image=StoredImage.from_row(row.image_row) if row.image_row else None,
        delete_key=row.delete_key,
        reason=Note(row.reason_template, row.reason_params) if row.reason_template else None,
    )


async def _run_zip_job(run: Run, **arguments: Any) -> None:
    albums: AlbumService = run.services["albums"]
    await albums.run_job(run, **arguments)


# The queue's task of a ZIP batch (tasks/queue.py): any instance's worker runs it.
ZIP_JOB = TaskKind(name=ZIP_TASK, run=_run_zip_job, queue=UPLOADS)


@dataclass(frozen=True)
class _Checked:
    name: str
    files: list[Any]
    mapping: Any
    existing: FoundAlbum | None


class AlbumService:
    def __init__(self, images: ImageService) -> None:
        self.images = images
        self.settings = images.settings
        self.policy = images.policy
        self.log = action_log()
        self.jobs = JobBook(job_spools(images.files, images.store))
        self.queue: JobQueue | None = None  # set by the app once its queue is open

    # --- ZIP batch upload --------------------------------------------------------------------------

    async def upload_archive(
        self,
        source: BinaryIO | None,
        archive_name: str,
        principal: Principal,
        album_name: str | None = None,
        mode: str | None = None,
    ) -> ArchiveReport:
        """Store every image of the archive into its album and article (albums/mapping.py).

        Archive-level refusals (not a ZIP, a limit, overlapping entries, a bad album name, an
        existing album for an anonymous uploader) raise before anything is stored; an entry's
        refusal is its own result and never stops the others. Runs to the end before it answers
        (no job table yet)."""
        self.policy.require_upload(principal)
        mode = (mode or "merge").strip().lower()
        if mode not in MODES:
            raise InvalidParameter(field="mode", reason="merge or replace")
        if source is None:
            raise NoArchiveGiven()
        limits = ArchiveLimits.from_settings(self.settings)
        archive = await anyio.to_thread.run_sync(open_archive, source, archive_name, limits)
        try:
            return await self._store_archive(archive, archive_name, principal, album_name, mode)
        finally:
            await anyio.to_thread.run_sync(archive.close)

    async def submit_archive(
        self,
        source: BinaryIO | None,
        archive_name: str,
        principal: Principal,
        album_name: str | None = None,
        mode: str | None = None,
        wait: float | None = None,
    ) -> ArchiveReport | StartedJob:
        """upload_archive as a job: archive-level refusals raise here, before the job exists; the
        job is then a task of the queue, run by whichever instance's worker takes it (run_job), from
        a copy of the archive in the store (the request's file goes with the request). Its report
        when it ends within `wait` seconds (ZIP_WAIT_SECONDS), else the job's id; GET
        /api/jobs/<id> (read_job) shows it."""
        self.policy.require_upload(principal)
        mode = (mode or "merge").strip().lower()
        if mode not in MODES:
            raise InvalidParameter(field="mode", reason="merge or replace")
        if source is None:
            raise NoArchiveGiven()
        limits = ArchiveLimits.from_settings(self.settings)
        archive = await anyio.to_thread.run_sync(open_archive, source, archive_name, limits)
        try:
            album = (await self._check_album(archive, archive_name, principal, album_name, mode)).name
            total = len(archive.entries)
        finally:
            await anyio.to_thread.run_sync(archive.close)
        job_id = new_job_id()
        await self.jobs.create(job_id, principal, archive_name, album, mode, total)
        try:
            await self.jobs.spool(job_id, source)
        except (OSError, StorageUnavailable) as error:
            await self.jobs.fail(job_id, JobInterrupted())
            if isinstance(error, StorageUnavailable):
                raise
            raise InvalidParameter(field="zipfile", reason=f"cannot keep the archive: {error}") from None
        if self.queue is None:
            raise JobsUnavailable()
        task_id = await self.queue.defer(
            ZIP_TASK,
            key=job_key(job_id),
            ticket=ticket(self.settings.secret_key, job_id),
            principal=principal.as_arguments(),
            archive_name=archive_name,
            album_name=album_name,
            mode=mode,
        )
        await self.jobs.queued(job_id, task_id)
        wait = self.settings.zip_wait_seconds if wait is None else wait
        deadline = asyncio.get_running_loop().time() + wait
        while wait > 0:
            state = await self.jobs.state(job_id)  # one short query a poll; the report once, at the end
            if state == "done":
                return (await self.read_job(job_id, principal)).report
            if state == "failed" or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(JOB_POLL_SECONDS)
        return StartedJob(job_id)

    async def run_job(
        self,
        run: Run,
        key: str,
        ticket: str,
        principal: dict[str, Any],
        archive_name: str,
        album_name: str | None,
        mode: str,
    ) -> None:
        """A ZIP job's attempt, in whichever instance's worker took it: its entries not recorded by
        an earlier attempt are stored from the archive's copy. A refusal of the whole archive ends
        the job failed; a cut (shutdown, the database lost) leaves it for the next attempt, or ends
        it failed when this was the last one. The archive's copy goes when the job has ended."""
        job_id = job_id_of(self.settings.secret_key, key, ticket)
        if job_id is None:
            self.log.error(
                f"upload job of {archive_name} cannot be run here: its ticket does not open with this"
                " instance's SECRET_KEY (every instance needs the same one).",
                action="Jobs",
            )
            raise JobsUnavailable()  # tried again, perhaps by an instance with the right key
        who = Principal.from_arguments(principal)
        if not await self.jobs.started(job_id, worker_name(self.settings)):
            await self.jobs.remove_spool(job_id)
            return  # ended already (failed by a read while no worker had it)
        ended = True
        try:
            async with self.jobs.spooled(job_id) as source:
                if source is None:
                    raise JobInterrupted()  # the archive's copy is lost: nothing can go on
                limits = ArchiveLimits.from_settings(self.settings)
                archive = await anyio.to_thread.run_sync(open_archive, source, archive_name, limits)
                try:
                    done = await self._recorded_results(job_id)
                    await self._store_archive(
                        archive, archive_name, who, album_name, mode, progress=JobProgress(self.jobs, job_id), done=done
                    )
                finally:
                    await anyio.to_thread.run_sync(archive.close)
            await self.jobs.finish(job_id)
        except BaseException as error:
            # An outage (the store, the database) is not the archive's fault: the next attempt goes on.
            outage = error if isinstance(error, OUTAGES) else None
            if isinstance(error, ImageHostError) and outage is None:
                await self._job_failed(job_id, archive_name, error)  # the archive refused: the job has ended
                return
            ended = run.last
            if ended:
                await self._job_failed(job_id, archive_name, outage or JobInterrupted())
            else:
                if outage is not None:
                    self.log.warning(
                        f"upload job of {archive_name} was cut by an outage ({outage.log_line()}):"
                        f" queued again for attempt {run.attempt + 2} of {ATTEMPTS}.",
                        action="Jobs",
                    )
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.jobs.requeued(job_id))
            raise
        finally:
            if ended:
                with contextlib.suppress(Exception):  # finish_interrupted removes what is left
                    await asyncio.shield(self.jobs.remove_spool(job_id))

    async def _job_failed(self, job_id: str, archive_name: str, failure: ImageHostError) -> None:
        try:
            await asyncio.shield(self.jobs.fail(job_id, failure))
        except Exception as lost:  # the next start marks it failed
            self.log.error(f"upload job of {archive_name} failed and cannot say so: {lost}.", action="Database")

    async def _recorded_results(self, job_id: str) -> dict[int, EntryResult]:
        """What earlier attempts of the job finished, by entry number."""
        return {row.number: _result_of(row) for row in await self.jobs.recorded(job_id)}

    async def finish_interrupted(self) -> int:
        return await self.jobs.finish_interrupted()

    async def read_job(self, job_id: str, principal: Principal) -> JobReport:
        job, entries = await self.jobs.read(job_id, principal)
        results = [_result_of(row) for row in entries]
        return JobReport(job=job, report=ArchiveReport(job.album_name, job.archive_name, results))

    async def _check_album(
        self,
        archive: Archive,
        archive_name: str,
        principal: Principal,
        album_name: str | None,
        mode: str,
        ours: int | None = None,
    ) -> Any:
        """The archive's album by the mapping rule, and whether this principal may add to (or
        replace) it. Returns the mapping and the existing album (None for a new one). `ours`: the
        album an earlier attempt of this job stored into (created by it, for an anonymous upload)."""
        files = [entry for entry in archive.entries if entry.verdict == "file"]
        mapping = map_files([entry.parts for entry in files], archive_name, album_name)
        album = mapping.album
        existing = await self.find_album(album)
        if existing is not None and existing.id != ours and not self.policy.may_add_to_album(principal):
            raise AlbumExists(name=album)
        if (
            existing is not None
            and mode == "replace"
            and not self.policy.may_manage_album(principal, existing.created_by_sub)
        ):
            raise AlbumForbidden(name=album, action="replace", who=principal.name or "anonymous")
        return _Checked(album, files, mapping, existing)

    async def _store_archive(
        self,
        archive: Archive,
        archive_name: str,
        principal: Principal,
        album_name: str | None,
        mode: str,
        progress: JobProgress | None = None,
        done: dict[int, EntryResult] | None = None,
    ) -> ArchiveReport:
        """`done`: the entries an earlier attempt of this job finished, by number: kept as they are."""
        done = done or {}
        ours = await self._album_of(
            result.image.id for result in done.values() if result.status == "stored" and result.image
        )
        checked = await self._check_album(archive, archive_name, principal, album_name, mode, ours=ours)
        album, files, mapping, existing = checked.name, checked.files, checked.mapping, checked.existing
        placements = dict(zip(map(id, files), mapping.placements, strict=True))
        job: dict[str, int | None] = {"album_id": existing.id if existing else None}
        first_position = await self._next_positions(existing)
        results: list[EntryResult] = []
        seen: dict[tuple[str, str], EntryResult] = {}
        # At most this many entries are in memory (read, waiting for a worker, or in one) at once: as
        # many as the uploads the service takes in at once, so that a worker whose entry is being
        # stored (its row, its files) has the next one waiting. With one per worker the ZIP of the
        # bench took 1.28x its pipeline work alone.
        in_flight = asyncio.Semaphore(self.images.intake_size)

        async def finished(number: int, result: EntryResult) -> None:
            instruments.record_zip_entry(result.status)
            if progress is not None:
                await progress.entry_done(number, result)

        async def store(
            number: int, result: EntryResult, content: bytes, article: str, position: int, digest: str
        ) -> None:
            link = self._linker(album, principal, article, position, digest, job)
            if progress is not None:
                link = progress.linked(number, result, link)
            try:
                async with self.images.intake:
                    uploaded = await self.images.upload(
                        IncomingFile(original_name=result.entry.replace("\\", "/").rsplit("/", 1)[-1], content=content),
                        principal,
                        link=link,
                        convert_from=ARCHIVE_CONVERTIBLE_NAMES if self.settings.zip_convert_formats else (),
                    )
            except ImageHostError as refusal:
                if progress is not None and isinstance(refusal, OUTAGES):
                    raise  # not the entry's fault: the job's next attempt stores it
                result.status, result.reason = "refused", refusal
            else:
                result.status, result.image, result.delete_key = "stored", uploaded.image, uploaded.delete_key
            finally:
                in_flight.release()
            await finished(number, result)

        storing: set[asyncio.Task[None]] = set()
        failed: list[asyncio.Task[None]] = []  # store tasks that ended in a failure not their entry's own

        def note_failure(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                failed.append(task)

        try:
            for number, entry in enumerate(archive.entries):
                if failed:
                    break  # a failure that is not the entry's own (a bug, the database gone): no new entries
                if number in done:
                    results.append(done[number])
                    continue
                placement = placements.get(id(entry))
                result = EntryResult(entry=entry.name, status="skipped", album_name=album)
                results.append(result)
                if entry.verdict == "skip":
                    result.reason = Note(SYSTEM_FILE)
                    await finished(number, result)
                    continue
                if entry.verdict == "refuse" or isinstance(placement, ImageHostError):
                    result.status, result.reason = "refused", entry.refusal or placement  # type: ignore[assignment]
                    await finished(number, result)
                    continue
                assert placement is not None
                result.article_number = placement.article
                await in_flight.acquire()
                try:
                    content = await anyio.to_thread.run_sync(archive.read, entry)
                except ImageHostError as refusal:
                    in_flight.release()
                    result.status, result.reason = "refused", refusal
                    await finished(number, result)
                    continue
                digest = hashlib.sha256(content).hexdigest()
                if (earlier := seen.get((placement.article, digest))) is not None:
                    in_flight.release()
                    result.reason = Note(DUPLICATE_IN_ARCHIVE, {"entry": earlier.entry})
                    await finished(number, result)
                    continue
                seen[(placement.article, digest)] = result
                same = await self._duplicate_of(existing.id, placement.article, digest) if existing else None
                if same is not None:
                    in_flight.release()
                    result.image = same
                    result.reason = Note(DUPLICATE, {"article": placement.article, "id": same.id})
                    await finished(number, result)
                    continue
                position = first_position.get(placement.article, 0) + placement.position
                task = asyncio.create_task(store(number, result, content, placement.article, position, digest))
                task.add_done_callback(note_failure)
                storing.add(task)
        finally:
            # Entries already being stored finish (each a whole image with its row, or its refusal)
            # rather than being cut in the middle of their transaction, even when this upload is
            # cancelled (shutdown: the worker pool's end refuses them at once).
            outcomes = await asyncio.gather(*storing, return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            # Answered as itself (503 for a lost database, 500 for a bug).
            raise failures[0]

        report = ArchiveReport(album_name=album, archive_name=archive_name, results=results)
        if mode == "replace" and existing is not None and (report.stored or any(r.image for r in results)):
            kept = {result.image.id for result in results if result.image is not None}
            report.removed = await self._remove_images(existing.id, self._granted(principal, album), keep=kept)
        self._log_report(report, principal, mode)
        return report

    @staticmethod
    async def _album_of(images: Any) -> int | None:
        """The album the first of these images is in (None for none)."""
        ids = list(images)
        if not ids:
            return None
        rows = await AlbumImage.raw("SELECT album FROM album_images WHERE image = ANY({}) LIMIT 1", ids)
        return rows[0]["album"] if rows else None

    def _linker(
        self,
        album: str,
        principal: Principal,
        article: str,
        position: int | None,
        digest: str,
        job: dict[str, int | None],
    ) -> Any:
        """`job["album_id"]`: the album this upload (a ZIP, or one request's files) found or created,
        shared by its entries; None until it has one."""

        async def link(image_id: int) -> None:
            # In the image's own transaction. ON CONFLICT DO NOTHING waits for another entry's
            # transaction creating the same album, then finds its row. An album whose creating
            # transaction rolled back is simply created again.
            found = await Album.select(Album.id).where(Album.name == album).first()
            if found is None:
                created = await Album.raw(
                    "INSERT INTO albums (name, created_by_sub, created_by_name) VALUES ({}, {}, {})"
                    " ON CONFLICT (name) DO NOTHING RETURNING id",
                    album,
                    principal.sub if principal.signed_in else None,
                    principal.name if principal.signed_in else None,
                )
                if created:
                    job["album_id"] = created[0]["id"]
                found = await Album.select(Album.id).where(Album.name == album).first()
            if found["id"] != job["album_id"] and not self.policy.may_add_to_album(principal):
                # Someone else created it since this upload began: an anonymous upload stays out.
                raise AlbumExists(name=album)
            album_id = found["id"]
            await Article.raw(
                "INSERT INTO articles (album, code) VALUES ({}, {}) ON CONFLICT (album, code) DO NOTHING",
                album_id,
                article,
            )
            article_id = (
                await Article.select(Article.id).where(Article.album == album_id, Article.code == article).first()
            )["id"]
            # No position given (a single upload): after the article's last photo, read in this transaction.
            await AlbumImage.raw(
                "INSERT INTO album_images (image, album, article, position, source_sha256) VALUES ({}, {}, {},"
                " COALESCE({}, (SELECT max(position) + 1 FROM album_images WHERE article = {}), 1), {})",
                image_id,
                album_id,
                article_id,
                position,
                article_id,
                digest,
            )

        return link

    async def _next_positions(self, album: FoundAlbum | None) -> dict[str, int]:
        """The last position in each article of the album: a merge appends after it."""
        if album is None:
            return {}
        rows = await AlbumImage.raw(
            "SELECT a.code, max(ai.position) AS last FROM album_images ai JOIN articles a ON a.id = ai.article"
            " WHERE ai.album = {} AND a.album = ai.album GROUP BY a.code",
            album.id,
        )
        return {row["code"]: row["last"] for row in rows}

    async def _duplicate_of(self, album_id: int, article: str, digest: str) -> StoredImage | None:
        """An image of this article with the same bytes (as uploaded, or as stored)."""
        rows = await AlbumImage.raw(
            _SAME_FILE_IN_ARTICLE,
            album_id,
            article,
            digest,
            digest,
        )
        return StoredImage.from_row(rows[0]) if rows else None

    def _log_report(self, report: ArchiveReport, principal: Principal, mode: str) -> None:
        total = len(report.results)
        by = f" by {principal.name}" if principal.signed_in else ""
        replaced = f", {report.removed} earlier image(s) replaced" if report.removed else ""
        line = (
            f"album {report.album_name}: {report.stored} of {total} entries stored from {report.archive_name}{by}"
            f" ({report.refused} refused, {report.skipped} skipped, {mode}{replaced})."
        )
        if report.stored or not report.refused:
            self.log.info(line, action="Success")
        else:
            self.log.error(line, action="Error")
        for result in report.results:
            if result.status == "refused" and isinstance(result.reason, ImageHostError):
                self.log.warning(f"{report.archive_name}: {result.reason.log_line()}", action="Refused")

    # --- Finding ---------------------------------------------------------------------------------

    async def find_album(self, name: str) -> FoundAlbum | None:
        row = await (
            Album.select(Album.id, Album.name, Album.created_by_sub).where(Album.name == catalogue_name(name)).first()
        )
        return FoundAlbum(**row) if row else None

    async def _album(self, name: str) -> FoundAlbum:
        album = await self.find_album(name)
        if album is None:
            raise AlbumNotFound(name=name)
        return album

    async def _article_id(self, album: FoundAlbum, code: str) -> int:
        row = await (
            Article.select(Article.id).where(Article.album == album.id, Article.code == catalogue_name(code)).first()
        )
        if row is None:
            raise ArticleNotFound(album=album.name, article=code)
        return row["id"]

    # --- PicHosting's read API -------------------------------------------------------------------

    async def album_names(self, principal: Principal) -> list[str]:
        self.policy.require_browse(principal)
        rows = await Album.select(Album.name).order_by(Album.name)
        return sorted((row["name"] for row in rows), key=natural_key)

    async def article_codes(self, album_name: str, principal: Principal) -> list[str]:
        self.policy.require_browse(principal)
        album = await self._album(album_name)
        rows = await Article.select(Article.code).where(Article.album == album.id)
        return sorted((row["code"] for row in rows), key=natural_key)

    async def files(self, album_name: str, article: str | None, principal: Principal) -> list[AlbumFile]:
        """The album's (or one article's) images, newest first."""
        self.policy.require_browse(principal)
        album = await self._album(album_name)
        if article is None:
            rows = await AlbumImage.raw(_ALBUM_FILES, album.id)
        else:
            rows = await AlbumImage.raw(_ARTICLE_FILES, await self._article_id(album, article))
        return [AlbumFile(StoredImage.from_row(row), album.name, row["code"]) for row in rows]

    async def count_album(self, album_name: str, principal: Principal) -> int:
        self.policy.require_browse(principal)
        album = await self._album(album_name)
        row = await Album.select(Album.image_count).where(Album.id == album.id).first()  # kept by a trigger
        if row is None:  # deleted meanwhile
            raise AlbumNotFound(name=album_name)
        return row["image_count"]

    async def count_article(self, album_name: str, article: str, principal: Principal) -> int:
        self.policy.require_browse(principal)
        album = await self._album(album_name)
        article_id = await self._article_id(album, article)
        row = await Article.select(Article.image_count).where(Article.id == article_id).first()  # kept by a trigger
        if row is None:  # deleted meanwhile
            raise ArticleNotFound(album=album.name, article=article)
        return row["image_count"]

    # --- Renaming, moving, reordering (admins and the album's creator) -------------------------

    async def rename_album(self, album_name: str, new_name: str, principal: Principal) -> str:
        """The album's new name (albums/names.py). A name another album has is a 409; the same
        name again changes nothing. Returns the name as stored."""
        album = await self._album(album_name)
        self._require_manage(album, principal, "rename", AlbumChangeForbidden)
        name = catalogue_name(new_name)
        if name != album.name:
            try:
                await Album.update({Album.name: name}).where(Album.id == album.id)
            except asyncpg.UniqueViolationError:
                raise AlbumNameTaken(name=name) from None
        self.log.info(f"album {album.name} renamed to {name} by {self._who(principal)}.", action="Success")
        return name

    async def rename_article(self, album_name: str, code: str, new_code: str, principal: Principal) -> str:
        """The article's new code within its album; a code the album has already is a 409."""
        album = await self._album(album_name)
        article_id = await self._article_id(album, code)
        self._require_manage(album, principal, "rename", AlbumChangeForbidden)
        old, new = catalogue_name(code), catalogue_name(new_code)
        if new != old:
            try:
                await Article.update({Article.code: new}).where(Article.id == article_id)
            except asyncpg.UniqueViolationError:
                raise ArticleCodeTaken(album=album.name, article=new) from None
        self.log.info(
            f"article {old} of album {album.name} renamed to {new} by {self._who(principal)}.", action="Success"
        )
        return new

    async def move_images(
        self, image_ids: list[int], album_name: str, article_code: str, principal: Principal
    ) -> MovedImages:
        """Images of any albums into one article (created when missing), after its last photo, in
        the order given. Manage rights on the target album and on every album an image leaves.
        All or nothing: a file the article already holds (same SHA-256, as uploaded or as stored)
        refuses the whole move with 409, as the ZIP upload would have skipped it. Images already in
        the article stay where they are. Articles left empty are deleted."""
        ids = _image_ids(image_ids)
        target = await self._album(album_name)
        code = catalogue_name(article_code)
        self._require_manage(target, principal, "move", AlbumChangeForbidden)
        async with AlbumImage._meta.db.transaction():
            await Article.raw(
                "INSERT INTO articles (album, code) VALUES ({}, {}) ON CONFLICT (album, code) DO NOTHING",
                target.id,
                code,
            )
            article_id = (
                await Article.select(Article.id).where(Article.album == target.id, Article.code == code).first()
            )["id"]
            sources = {row["article"] for row in await AlbumImage.raw(_MOVED_ROWS, ids)}
            await Article.raw(_LOCK_ARTICLES, sorted(sources | {article_id}))
            rows = {row["image"]: row for row in await AlbumImage.raw(_MOVED_ROWS + " FOR UPDATE OF ai", ids)}
            if missing := [image_id for image_id in ids if image_id not in rows]:
                raise ImageNotInAlbum(id=missing[0])
            for row in {row["album_id"]: row for row in rows.values()}.values():
                leaving = FoundAlbum(row["album_id"], row["album_name"], row["created_by_sub"])
                self._require_manage(leaving, principal, "move", AlbumChangeForbidden)
            moving = [rows[image_id] for image_id in ids if rows[image_id]["article"] != article_id]
            self._refuse_same_files(moving, await self._same_files(article_id, moving), target.name, code)
            if moving:
                base = await AlbumImage.raw(
                    "SELECT coalesce(max(position), 0) AS last FROM album_images WHERE article = {}", article_id
                )
                await AlbumImage.raw(
                    _SET_POSITIONS, target.id, article_id, base[0]["last"], [row["image"] for row in moving]
                )
            left = sorted({row["article"] for row in moving})
            emptied = await Article.raw(
                "DELETE FROM articles a USING albums al WHERE al.id = a.album AND a.id = ANY({}) AND NOT EXISTS"
                " (SELECT 1 FROM album_images ai WHERE ai.article = a.id) RETURNING al.name, a.code",
                left,
            )
        report = MovedImages(target.name, code, len(moving), [(row["name"], row["code"]) for row in emptied])
        origins = sorted({f"article {row['code']} of album {row['album_name']}" for row in moving})
        removed = "".join(
            f"; article {article} of album {album} left empty, deleted" for album, article in report.emptied
        )
        self.log.info(
            f"{report.moved} image(s) moved to article {code} of album {target.name} by {self._who(principal)}"
            f" (from {', '.join(origins) or 'the same article'}{removed}).",
            action="Success",
        )
        return report

    async def _same_files(self, article_id: int, moving: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not moving:
            return []
        digests = sorted({row["source_sha256"] for row in moving} | {row["sha256"] for row in moving})
        ids = [row["image"] for row in moving]
        return await AlbumImage.raw(_SAME_FILES_IN_ARTICLE, article_id, ids, digests, digests)

    @staticmethod
    def _refuse_same_files(moving: list[dict[str, Any]], held: list[dict[str, Any]], album: str, article: str) -> None:
        """A moved file the article holds already, or two moved images that are the same file."""
        seen: dict[str, int] = {}
        for row in held:
            seen.update({row["source_sha256"]: row["image"], row["sha256"]: row["image"]})
        for row in moving:
            existing = seen.get(row["source_sha256"]) or seen.get(row["sha256"])
            if existing is not None:
                raise SameFileInArticle(album=album, article=article, id=row["image"], existing=existing)
            seen.update({row["source_sha256"]: row["image"], row["sha256"]: row["image"]})

    async def reorder_article(self, album_name: str, code: str, image_ids: list[int], principal: Principal) -> int:
        """The article's photo order, given whole: each of its images exactly once (else 422,
        naming what is missing, foreign or repeated). Returns how many images it holds."""
        album = await self._album(album_name)
        article_id = await self._article_id(album, code)
        self._require_manage(album, principal, "reorder", AlbumChangeForbidden)
        async with AlbumImage._meta.db.transaction():
            current = await self._locked_order(article_id)
            order = list(image_ids)
            repeated = sorted(image_id for image_id, times in Counter(order).items() if times > 1)
            missing = [image_id for image_id in current if image_id not in set(order)]
            extra = sorted(set(order) - set(current))
            if repeated or missing or extra:
                raise OrderMismatch(
                    album=album.name,
                    article=catalogue_name(code),
                    count=len(current),
                    missing=_listed(missing),
                    extra=_listed(extra),
                    repeated=_listed(repeated),
                )
            await AlbumImage.raw(_SET_POSITIONS, album.id, article_id, 0, order)
        self.log.info(
            f"article {catalogue_name(code)} of album {album.name} reordered by {self._who(principal)}"
            f" ({len(order)} images).",
            action="Success",
        )
        return len(order)

    async def shift_image(self, album_name: str, code: str, image_id: int, step: int, principal: Principal) -> int:
        """One image `step` places earlier (negative) or later in its article's photo order (the
        page's buttons); at either end it stays. Returns its new place, from 0."""
        album = await self._album(album_name)
        article_id = await self._article_id(album, code)
        self._require_manage(album, principal, "reorder", AlbumChangeForbidden)
        async with AlbumImage._meta.db.transaction():
            order = await self._locked_order(article_id)
            if image_id not in order:
                raise ImageNotInAlbum(id=image_id)
            place = order.index(image_id)
            new_place = min(max(place + step, 0), len(order) - 1)
            order.insert(new_place, order.pop(place))
            if new_place != place:
                await AlbumImage.raw(_SET_POSITIONS, album.id, article_id, 0, order)
        if new_place != place:
            self.log.info(
                f"image #{image_id} moved from place {place + 1} to {new_place + 1} in article {catalogue_name(code)}"
                f" of album {album.name} by {self._who(principal)}.",
                action="Success",
            )
        return new_place

    async def _locked_order(self, article_id: int) -> list[int]:
        """The article's image ids in photo order, the article's row and its images' rows locked."""
        await Article.raw(_LOCK_ARTICLES, [article_id])
        rows = await AlbumImage.raw(
            "SELECT image FROM album_images WHERE article = {} ORDER BY position, image FOR UPDATE", article_id
        )
        return [row["image"] for row in rows]

    # --- Deleting --------------------------------------------------------------------------------

    async def delete_album(self, album_name: str, principal: Principal) -> int:
        """The album, its articles and its images (files and thumbnails too). Returns how many images."""
        album = await self._album(album_name)
        self._require_manage(album, principal, "delete")
        removed = await self._remove_images(album.id, self._granted(principal, album.name))
        await Album.delete().where(Album.id == album.id)
        self.log.info(
            f"album {album.name} deleted by {principal.name or 'the operator'} ({removed} images).", action="Success"
        )
        return removed

    async def delete_article(self, album_name: str, article: str, principal: Principal) -> int:
        album = await self._album(album_name)
        article_id = await self._article_id(album, article)
        self._require_manage(album, principal, "delete")
        removed = await self._remove_images(album.id, self._granted(principal, album.name), article_id=article_id)
        await Article.delete().where(Article.id == article_id)
        self.log.info(
            f"article {article} of album {album.name} deleted by {principal.name or 'the operator'}"
            f" ({removed} images).",
            action="Success",
        )
        return removed

    def _require_manage(
        self, album: FoundAlbum, principal: Principal, action: str, refusal: type[AlbumForbidden] = AlbumForbidden
    ) -> None:
        self.policy.require_upload(principal)  # the usual 401 for a visitor who must sign in
        if not self.policy.may_manage_album(principal, album.created_by_sub):
            raise refusal(name=album.name, action=action, who=principal.name or "anonymous")

    @staticmethod
    def _who(principal: Principal) -> str:
        return principal.name or "the operator"

    @staticmethod
    def _granted(principal: Principal, album: str) -> str:
        return f"{principal.name or 'the operator'} (album {album})"

    async def _remove_images(
        self, album_id: int, granted_by: str, article_id: int | None = None, keep: set[int] = frozenset()
    ) -> int:
        """Each image through ImageService's crash-safe delete (marker, row, files); the policy was
        asked by the caller. Articles left empty go too."""
        query = AlbumImage.select(AlbumImage.image).where(AlbumImage.album == album_id)
        if article_id is not None:
            query = query.where(AlbumImage.article == article_id)
        ids = [row["image"] for row in await query if row["image"] not in keep]
        credentials = DeleteCredentials(granted_by=granted_by)
        removed = 0
        for image_id in ids:
            try:
                await self.images.delete(image_id, credentials)
            except ImageHostError as error:  # already gone (a concurrent delete): nothing to do
                self.log.warning(
                    f"image #{image_id} of album {album_id} not deleted: {error.log_line()}", action="Storage"
                )
                continue
            removed += 1
        await Article.raw(
            "DELETE FROM articles a WHERE a.album = {} AND NOT EXISTS"
            " (SELECT 1 FROM album_images ai WHERE ai.article = a.id)",
            album_id,
        )
        return removed


def _image_ids(image_ids: list[int]) -> list[int]:
    """The ids of a move, each once, in the order given."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        raise InvalidParameter(field="image_ids", reason="at least one image id")
    if len(ids) > MOST_MOVED:
        raise InvalidParameter(field="image_ids", reason=f"at most {MOST_MOVED} ids at once")
    if unknown := [image_id for image_id in ids if not 0 < image_id <= LARGEST_IMAGE_ID]:
        raise ImageNotInAlbum(id=unknown[0])  # no image has it (ids are PostgreSQL integers)
    return ids


def _listed(ids: list[int]) -> str:
    """Ids for a message: the first few, then how many more."""
    if not ids:
        return "—"
    shown = ", ".join(str(image_id) for image_id in ids[:10])
    return shown + (f" (+{len(ids) - 10})" if len(ids) > 10 else "")
