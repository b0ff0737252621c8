"""ZIP batch uploads: an archive's checks, its job on the queue (tasks/queue.py), and the run that
stores its entries into their albums and articles (albums/mapping.py), in whichever instance's
worker takes the job.

Knows nothing of HTTP. Every image goes through ImageService.upload (the same checks, workers,
storage, crash safety and log as a single upload); its link to the album and article is written in
that upload's own transaction, so a crash leaves only whole images, each with its row and its place.
The job's rows (its state, each entry's result) are albums/jobs.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple

import anyio.to_thread

from imagehost.accounts.principal import Principal
from imagehost.albums.archive import Archive, ArchiveLimits, open_archive
from imagehost.albums.jobs import EntryRow, JobBook, JobRow, job_id_of, job_key, new_job_id, ticket
from imagehost.albums.mapping import map_files
from imagehost.albums.service import SELECT_FILES, FoundAlbum
from imagehost.albums.tables import AlbumImage
from imagehost.database import as_outage
from imagehost.errors import (
    N_,
    OUTAGES,
    AlbumExists,
    AlbumForbidden,
    ImageHostError,
    InvalidParameter,
    JobInterrupted,
    JobsUnavailable,
    NoArchiveGiven,
    StorageUnavailable,
)
from imagehost.images.formats import ARCHIVE_CONVERTIBLE_NAMES
from imagehost.images.service import IncomingFile, StoredImage
from imagehost.logging import action_log
from imagehost.metrics import instruments
from imagehost.storage import job_spools
from imagehost.tasks.queue import ATTEMPTS, UPLOADS, JobQueue, Run, TaskKind, worker_name

if TYPE_CHECKING:
    from imagehost.albums.service import AlbumService

# An image of the article holding this file (as uploaded, or as stored): the duplicate test.
SAME_FILE_IN_ARTICLE = (
    SELECT_FILES + " WHERE a.album = {} AND a.code = {} AND (ai.source_sha256 = {} OR i.sha256 = {}) LIMIT 1"
)

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
    intake: ArchiveIntake = run.services["intake"]
    await intake.run_job(run, **arguments)


# The queue's task of a ZIP batch (tasks/queue.py): any instance's worker runs it.
ZIP_JOB = TaskKind(name=ZIP_TASK, run=_run_zip_job, queue=UPLOADS)


class Upload(NamedTuple):
    """What an uploader asked of one archive."""

    archive_name: str
    principal: Principal
    album_name: str | None  # the form's album, else the archive's mapping names it
    mode: str  # one of MODES


@dataclass(frozen=True)
class _Checked:
    name: str
    files: list[Any]
    mapping: Any
    existing: FoundAlbum | None


class ArchiveIntake:
    """The ZIP uploads of one AlbumService (albums.intake): its albums are found and emptied there."""

    def __init__(self, albums: AlbumService) -> None:
        self.albums = albums
        self.images = albums.images
        self.settings = albums.settings
        self.policy = albums.policy
        self.log = action_log()
        self.jobs = JobBook(job_spools(self.images.files, self.images.store))
        self.queue: JobQueue | None = None  # set by the app once its queue is open

    async def submit_archive(
        self,
        source: BinaryIO | None,
        archive_name: str,
        principal: Principal,
        album_name: str | None = None,
        mode: str | None = None,
        wait: float | None = None,
    ) -> ArchiveReport | StartedJob:
        """Check the archive and make it a job. Archive-level refusals (not a ZIP, a limit, overlapping
        entries, a bad album name, an existing album for an anonymous uploader) raise here, before the
        job exists; an entry's refusal is its own result and never stops the others. The job is a
        task of the queue, run by whichever instance's worker takes it (run_job), from a copy of the
        archive in the store (the request's file goes with the request). Its report when it ends
        within `wait` seconds (ZIP_WAIT_SECONDS), else the job's id; GET /api/jobs/<id> (read_job)
        shows it."""
        self.policy.require_upload(principal)
        mode = (mode or "merge").strip().lower()
        if mode not in MODES:
            raise InvalidParameter(field="mode", reason="merge or replace")
        if source is None:
            raise NoArchiveGiven()
        limits = ArchiveLimits.from_settings(self.settings)
        archive = await anyio.to_thread.run_sync(open_archive, source, archive_name, limits)
        try:
            album = (await self._check_album(archive, Upload(archive_name, principal, album_name, mode))).name
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
                    upload = Upload(archive_name, who, album_name, mode)
                    await self._store_archive(archive, upload, JobProgress(self.jobs, job_id), done)
                finally:
                    await anyio.to_thread.run_sync(archive.close)
            await self.jobs.finish(job_id)
        except BaseException as error:
            # An outage (the store, the database) is not the archive's fault: the next attempt goes on.
            outage = as_outage(error)
            if isinstance(error, ImageHostError) and outage is None:
                await self._job_failed(job_id, archive_name, error)  # the archive refused: the job has ended
                return
            ended = run.last
            if ended:
                await self._job_failed(job_id, archive_name, outage or JobInterrupted())
            else:
                if outage is not None:
                    self.log.warning(
                        f"upload job of {archive_name} was cut by an outage ({outage.part}: {outage.params['reason']}):"
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

    async def _check_album(self, archive: Archive, upload: Upload, ours: int | None = None) -> _Checked:
        """The archive's album by the mapping rule, and whether this principal may add to (or
        replace) it. Returns the mapping and the existing album (None for a new one). `ours`: the
        album an earlier attempt of this job stored into (created by it, for an anonymous upload)."""
        archive_name, principal, album_name, mode = upload
        files = [entry for entry in archive.entries if entry.verdict == "file"]
        mapping = map_files([entry.parts for entry in files], archive_name, album_name)
        album = mapping.album
        existing = await self.albums.find_album(album)
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
        self, archive: Archive, upload: Upload, progress: JobProgress, done: dict[int, EntryResult]
    ) -> ArchiveReport:
        """One attempt of a job: each entry's result goes to `progress` as it finishes; `done`, the
        entries an earlier attempt finished (by number), are kept as they are."""
        archive_name, principal, _, mode = upload
        ours = await self._album_of(
            result.image.id for result in done.values() if result.status == "stored" and result.image
        )
        checked = await self._check_album(archive, upload, ours=ours)
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
            await progress.entry_done(number, result)

        async def store(
            number: int, result: EntryResult, content: bytes, article: str, position: int, digest: str
        ) -> None:
            link = progress.linked(number, result, self.albums.linker(album, principal, article, position, digest, job))
            try:
                async with self.images.intake:
                    uploaded = await self.images.upload(
                        IncomingFile(original_name=result.entry.replace("\\", "/").rsplit("/", 1)[-1], content=content),
                        principal,
                        link=link,
                        convert_from=ARCHIVE_CONVERTIBLE_NAMES if self.settings.zip_convert_formats else (),
                    )
            except ImageHostError as refusal:
                if isinstance(refusal, OUTAGES):
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
                # By number, and only the same entry: an attempt by an older version may have numbered
                # the entries otherwise (folders were entries then); a mismatch is stored again or
                # found as a duplicate, never taken for another entry's result.
                if (recorded := done.get(number)) is not None and recorded.entry == entry.name:
                    results.append(recorded)
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
            report.removed = await self.albums.remove_images(
                existing.id, self.albums.granted(principal, album), keep=kept
            )
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
            SAME_FILE_IN_ARTICLE,
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
