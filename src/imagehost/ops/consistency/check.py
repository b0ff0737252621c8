"""One run of the check: every row against its files, then every file against the rows; repair as
it goes when asked. `run_check` runs it outside the app (`just check`, the scheduler)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from imagehost.images.pipeline import sizes_below
from imagehost.images.storage import THUMBS, ImageStore
from imagehost.images.tables import Image
from imagehost.images.workers import ThreadRunner, image_workers
from imagehost.logging import action_log
from imagehost.ops import state
from imagehost.ops.consistency.bucket_scan import examine_objects, listed_names
from imagehost.ops.consistency.repair import MISSING_ROW_CHOICES, Repair
from imagehost.ops.consistency.repair_places import BucketPlace, FolderPlace, RepairPlace
from imagehost.ops.consistency.report import CheckReport, Finding, save_report
from imagehost.ops.consistency.scan import RECENT_SECONDS, OnDisk, examine, list_stored_files, next_chunk
from imagehost.settings import Settings
from imagehost.storage import object_store
from imagehost.storage.bucket import BucketImageStore
from imagehost.storage.objects import ObjectStore

ROW_BATCH = 500
FILE_BATCH = 1000
HASH_THREADS = 4
LOGGED_FINDINGS = 100  # problems of a check without repair written to app.log one by one
LOCK = ".check.lock"


class ConsistencyCheck:
    """One run of the check (and repair). The database must be connected; `workers` runs the
    thumbnail work (the app's worker pool, or threads)."""

    def __init__(self, settings: Settings, store: ImageStore, workers: Any = None) -> None:
        self.settings = settings
        self.store = store
        # STORAGE=s3: the rows against the bucket instead of IMAGES_DIR (bucket_scan.py).
        self.objects: ObjectStore | None = object_store(settings)
        self.workers = workers or ThreadRunner()
        self.log = action_log()

    async def run(
        self, repair: str | None = None, *, by: str = "", on_finding: Callable[[Finding], None] | None = None
    ) -> CheckReport:
        """`on_finding` sees every finding as it is made (and repaired): the report keeps only the
        first LISTED_FINDINGS."""
        if repair not in (None, *MISSING_ROW_CHOICES):
            raise ValueError(f"repair must be None or one of {MISSING_ROW_CHOICES}, not {repair!r}")
        database_url = self.settings.database_url
        try:
            report = await self._run(repair, by, on_finding)
        except Exception as failure:
            await state.record(database_url, state.CHECK, state.FAILED, f"{type(failure).__name__}: {failure}")
            raise
        outcome = state.OK if report.consistent else state.PROBLEMS
        await state.record(database_url, state.CHECK, outcome, report.summary().removesuffix("."))
        return report

    async def _run(self, repair: str | None, by: str, on_finding: Callable[[Finding], None] | None) -> CheckReport:
        async with self._exclusive():
            started = time.monotonic()
            report = CheckReport(
                started_at=datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
                repair=repair,
                by=by,
            )
            what = f"check and repair (rows whose file is gone: {repair})" if repair else "check"
            self.log.info(f"{what} started{f' by {by}' if by else ''}.", action="Check")
            repairing = Repair(self.settings, self._repair_place(), self.workers, repair, report) if repair else None
            if repairing is not None:
                await repairing.prepare()
            unlogged = 0
            async for finding in self._findings(report):
                if repairing is not None:
                    await repairing.fix(finding)
                report.add(finding)
                report.fixed_one(finding)
                if on_finding is not None:
                    on_finding(finding)
                if finding.action:  # everything repair does is logged
                    self.log.info(finding.describe() + ".", action="Check")
                elif finding.problem:
                    if report.problems <= LOGGED_FINDINGS:
                        self.log.info(finding.describe() + ".", action="Check")
                    else:
                        unlogged += 1
            if unlogged:
                self.log.info(f"... and {unlogged:,} more problems (see the report).", action="Check")
            if repairing is not None:
                await repairing.finish()
            report.duration_seconds = time.monotonic() - started
            self.log.info(report.summary(), action="Check")
            await anyio.to_thread.run_sync(save_report, self.settings, report)
            return report

    def _repair_place(self) -> RepairPlace:
        """Where repair acts: the bucket with STORAGE=s3 (IMAGES_DIR untouched), else IMAGES_DIR."""
        if self.objects is not None:
            return BucketPlace(BucketImageStore(self.objects, self.settings.thumbnail_sizes))
        return FolderPlace(self.store)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """One check at a time, across processes (the app, `just check`, the scheduler)."""
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.settings.log_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.2)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    async def _findings(self, report: CheckReport) -> AsyncIterator[Finding]:
        async for finding in self._check_rows(report):
            yield finding
        recent_before = time.time() - RECENT_SECONDS
        if self.objects is not None:
            async for finding in self._check_objects(report, recent_before):
                yield finding
            return
        async for finding in self._check_files(report, self.store.root, "", recent_before):
            yield finding
        thumbs = self.store.root / THUMBS
        size_folders = await anyio.to_thread.run_sync(
            lambda: sorted(p for p in thumbs.iterdir() if p.is_dir() and p.name.isdigit()) if thumbs.is_dir() else []
        )
        for folder in size_folders:
            async for finding in self._check_files(report, folder, ".webp", recent_before):
                yield finding

    async def _check_rows(self, report: CheckReport) -> AsyncIterator[Finding]:
        """Every row, in batches by id; each batch's files are read and hashed in a few threads."""
        wanted = self.settings.thumbnail_sizes
        last_id = 0
        while True:
            rows = await (
                Image.select(
                    Image.id,
                    Image.stored_name,
                    Image.size_bytes,
                    Image.file_format,
                    Image.sha256,
                    Image.width,
                    Image.height,
                    Image.file_missing_since,
                )
                .where(Image.id > last_id)
                .order_by(Image.id)
                .limit(ROW_BATCH)
            )
            if not rows:
                return
            last_id = rows[-1]["id"]
            if self.objects is not None:
                found = await examine_objects(self.objects, rows, wanted)
            else:
                step = -(-len(rows) // HASH_THREADS)
                parts = await asyncio.gather(
                    *(
                        anyio.to_thread.run_sync(examine, self.store, rows[start : start + step], wanted)
                        for start in range(0, len(rows), step)
                    )
                )
                found = [item for part in parts for item in part]
            report.rows += len(rows)
            gone = await self._still_there(
                [row["id"] for row, disk in zip(rows, found, strict=True) if not disk.exists]
            )
            for row, disk in zip(rows, found, strict=True):
                report.bytes_hashed += disk.size if disk.sha256 else 0
                for finding in self._judge(row, disk, wanted, gone):
                    yield finding

    async def _still_there(self, image_ids: list[int]) -> set[int]:
        """Of these rows, those that still exist: a delete removes the row, then the file."""
        if not image_ids:
            return set()
        rows = await Image.select(Image.id).where(Image.id.is_in(image_ids))
        return {row["id"] for row in rows}

    def _judge(self, row: dict[str, Any], disk: OnDisk, wanted: tuple[int, ...], rows_left: set[int]) -> list[Finding]:
        image_id, name = row["id"], row["stored_name"]
        marked = row["file_missing_since"]
        since = marked.astimezone().isoformat(timespec="seconds") if marked else ""
        if disk.bad_name:
            # Never opened: a row naming `../var/secret_key` is forged or damaged, not a lost file.
            return [Finding("bad_name", repr(name)[:100], image_id)]
        if not disk.exists:
            if image_id not in rows_left:
                return []  # deleted while we looked
            return [Finding("marked_missing" if marked else "missing_file", name, image_id, since=since)]
        findings = []
        if marked:
            findings.append(Finding("file_back", name, image_id, since=since))
        if disk.error:
            return [*findings, Finding("unreadable", name, image_id, error=disk.error)]
        disagrees = {}
        if disk.size != row["size_bytes"]:
            disagrees["size"] = (str(row["size_bytes"]), str(disk.size))
        if disk.file_format != row["file_format"]:
            disagrees["format"] = (row["file_format"], disk.file_format or "unknown")
        if disk.sha256 != row["sha256"]:
            disagrees["sha256"] = (row["sha256"] or "none", disk.sha256)
        if disagrees:
            findings.append(Finding("mismatch", name, image_id, disagrees=disagrees))
            # Its thumbnails are not judged: none is ever made from a file that disagrees with its row.
            return findings
        long_side = max(row["width"] or 0, row["height"] or 0) or disk.long_side
        due = sizes_below(wanted, long_side, long_side) if long_side else ()
        missing = tuple(size for size in due if size not in disk.thumbnails)
        if missing:
            findings.append(Finding("missing_thumbnails", name, image_id, sizes=missing))
        return findings

    async def _check_files(
        self, report: CheckReport, folder: Path, suffix: str, recent_before: float
    ) -> AsyncIterator[Finding]:
        """Files in `folder` (originals, or one size of thumbnails) whose stored name no row has."""
        entries = list_stored_files(folder, suffix, recent_before)
        size = int(folder.name) if suffix else 0
        try:
            while chunk := await anyio.to_thread.run_sync(next_chunk, entries, FILE_BATCH):
                for finding in await self._orphans(report, [(name, size, old_enough) for name, old_enough in chunk]):
                    yield finding
        finally:
            entries.close()

    async def _orphans(self, report: CheckReport, chunk: list[tuple[str, int, bool]]) -> list[Finding]:
        """Of these (stored name, thumbnail size or 0 for an original, old enough to judge), the
        ones no row names: orphans, counted in `report` with the rest."""
        known = await Image.select(Image.stored_name).where(Image.stored_name.is_in([name for name, _, _ in chunk]))
        named = {row["stored_name"] for row in known}
        found = []
        for name, size, old_enough in chunk:
            if size:
                report.thumbnails += 1
            else:
                report.files += 1
            if name in named:
                continue
            if not old_enough:
                report.skipped_recent += 1  # judged by the next check
            elif size:
                found.append(Finding("orphan_thumbnail", name, sizes=(size,)))
            else:
                found.append(Finding("orphan_file", name))
        return found

    async def _check_objects(self, report: CheckReport, recent_before: float) -> AsyncIterator[Finding]:
        """The bucket's objects (listed a page at a time) whose stored name no row has."""
        assert self.objects is not None
        listing = listed_names(self.objects, recent_before)
        chunk: list[tuple[str, int, bool]] = []
        done = False
        while not done:
            try:
                chunk.append(await anext(listing))
            except StopAsyncIteration:
                done = True
            if chunk and (done or len(chunk) >= FILE_BATCH):
                for finding in await self._orphans(report, chunk):
                    yield finding
                chunk = []

    # -- Repair ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[None]:
    """The app's pool when this runs inside the app (the tables are bound to it), else our own."""
    from imagehost.database import connected

    engine = Image._meta._db
    in_app = getattr(engine, "pool", None) is not None and engine.config.get("dsn") == settings.database_url
    if in_app:
        yield
        return
    async with connected(settings.database_url, max_connections=2):
        yield


@contextlib.asynccontextmanager
async def _workers(settings: Settings, needed: bool) -> AsyncIterator[Any]:
    """Isolated worker processes for remaking thumbnails, as the app has; threads when
    WORKER_PROCESSES=0 or when no repair is asked (a check decodes nothing)."""
    if not needed:
        yield ThreadRunner()
        return
    async with image_workers(settings, processes=1) as workers:
        yield workers


async def run_check(
    settings: Settings,
    repair: str | None = None,
    *,
    by: str = "",
    on_finding: Callable[[Finding], None] | None = None,
) -> CheckReport:
    """Check (and with `repair` "mark" or "remove", repair) the store; connects if need be."""
    store = ImageStore(settings.images_dir)
    async with _database(settings), _workers(settings, repair is not None) as workers:
        return await ConsistencyCheck(settings, store, workers).run(repair, by=by, on_finding=on_finding)
