"""Repair: orphans into the quarantine (never deleted), thumbnails made again, rows whose file is
gone marked or removed. A file that disagrees with its row is never touched. The same decisions for
the local folder and the bucket: the files are acted on through a RepairPlace (repair_places.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from imagehost.images.pipeline import thumbnails_for_stored
from imagehost.images.tables import Image
from imagehost.logging import action_log
from imagehost.ops.consistency.repair_places import RepairPlace, thumbnail_location
from imagehost.ops.consistency.report import CheckReport, Finding
from imagehost.settings import Settings

MISSING_ROW_CHOICES = ("mark", "remove")
STORED_NAME_CONSTRAINT = "images_stored_name_pattern"  # migration images_0009


class Repair:
    """The repair of one check run: `missing_rows` ("mark" or "remove") says what becomes of rows
    whose file is gone; orphans of the run share one quarantine folder."""

    def __init__(
        self, settings: Settings, place: RepairPlace, workers: Any, missing_rows: str, report: CheckReport
    ) -> None:
        self.settings = settings
        self.place = place
        self.workers = workers
        self.missing_rows = missing_rows
        self.report = report
        self.log = action_log()
        self._quarantine: str | None = None
        self._store_looks_empty = False
        self._bad_names_removed = 0

    async def prepare(self) -> None:
        """Before the first finding: a store that looks unmounted keeps every row as it is."""
        self._store_looks_empty = await self._looks_unmounted()
        if self._store_looks_empty:
            self.log.warning(
                f"{self.place.looks_empty_warning} Rows whose file is gone are left as they are.", action="Check"
            )

    async def fix(self, finding: Finding) -> None:
        """Repair what `finding` names, if it can be repaired; `finding.action` says what was done."""
        kind, missing_rows, report = finding.kind, self.missing_rows, self.report
        try:
            if kind == "orphan_file":
                await self._move_aside(finding, finding.stored_name, report)
            elif kind == "orphan_thumbnail":
                await self._move_aside(finding, thumbnail_location(finding.sizes[0], finding.stored_name), report)
            elif kind == "missing_thumbnails":
                await self._remake_thumbnails(finding)
            elif kind == "missing_file" or (kind == "marked_missing" and missing_rows == "remove"):
                await self._settle_missing_row(finding, missing_rows, report)
            elif kind == "file_back":
                await Image.update({Image.file_missing_since: None}).where(Image.id == finding.image_id)
                finding.action = "unmarked"
            elif kind == "bad_name":
                await self._settle_bad_name(finding)
            elif kind in {"mismatch", "unreadable"}:
                finding.action = "left"
        except Exception as error:  # one failed repair must not stop the others; it is reported and logged
            finding.action, finding.error = "failed", f"{type(error).__name__}: {error}"

    async def _settle_bad_name(self, finding: Finding) -> None:
        """A row naming no stored file can never be served: removed with `remove` (no file is touched,
        none is opened), left with `mark`, since marking would keep it."""
        if self.missing_rows != "remove":
            finding.action, finding.error = "left", "only a repair that removes rows removes it"
            return
        await Image.delete().where(Image.id == finding.image_id)
        finding.action = "removed"
        self._bad_names_removed += 1

    async def finish(self) -> None:
        """After the last finding: once the rows that broke the stored-name CHECK are gone, it is made
        whole (migration images_0009 adds it NOT VALID when such rows were there already)."""
        if not self._bad_names_removed:
            return
        pending = await Image.raw(
            "SELECT 1 FROM pg_constraint WHERE conname = {} AND NOT convalidated", STORED_NAME_CONSTRAINT
        )
        if not pending:
            return
        try:
            await Image.raw(f"ALTER TABLE images VALIDATE CONSTRAINT {STORED_NAME_CONSTRAINT}")
        except Exception as error:  # rows left that break it (a mark repair kept some): said, not fatal
            self.log.warning(f"{STORED_NAME_CONSTRAINT} not validated: {type(error).__name__}: {error}", action="Check")
        else:
            self.log.info(f"{STORED_NAME_CONSTRAINT} validated: every row holds a stored name.", action="Check")

    async def _quarantine_folder(self) -> str:
        """The run's quarantine (relative to the store's root), chosen at its first use."""
        if self._quarantine is None:
            self._quarantine = await self.place.new_quarantine()
        return self._quarantine

    async def _move_aside(self, finding: Finding, location: str, report: CheckReport) -> None:
        folder = await self._quarantine_folder()
        moved = await self.place.move_aside(location, folder)
        if moved is None:
            finding.action, finding.error = "failed", "the file is gone"
            return
        finding.action, finding.moved_to = "quarantined", moved
        report.quarantine = folder

    async def _remake_thumbnails(self, finding: Finding) -> None:
        content = await self.place.read_original(finding.stored_name)
        if content is None:
            finding.action, finding.error = "failed", "the file is gone"
            return
        thumbnails = await self.workers.run(
            thumbnails_for_stored, content, finding.stored_name, self.settings.max_pixels, finding.sizes
        )
        await self.place.write_thumbnails(finding.stored_name, thumbnails)
        finding.action = "regenerated" if set(thumbnails) >= set(finding.sizes) else "failed"

    async def _looks_unmounted(self) -> bool:
        """No original stored but rows in the database: more likely a wrong IMAGES_DIR, an unmounted
        volume, a wrong bucket or prefix than every file lost, so repair must not mark or remove every row."""
        return not await self.place.holds_an_original() and await Image.exists()

    async def _settle_missing_row(self, finding: Finding, missing_rows: str, report: CheckReport) -> None:
        if self._store_looks_empty:
            finding.action, finding.error = "failed", self.place.looks_empty_reason
            return
        if await self.place.has_original(finding.stored_name):
            finding.action, finding.error = "failed", "the file came back"
            return
        if missing_rows == "mark":
            await Image.update({Image.file_missing_since: datetime.now(UTC)}).where(Image.id == finding.image_id)
            finding.action = "marked"
            return
        await Image.delete().where(Image.id == finding.image_id)
        finding.action = "removed"
        # Its thumbnails would be orphans now: they go to the quarantine with the row's removal.
        for size in await self.place.thumbnail_sizes_present(finding.stored_name):
            location = thumbnail_location(size, finding.stored_name)
            moved = await self.place.move_aside(location, await self._quarantine_folder())
            if moved is not None:
                report.quarantine = await self._quarantine_folder()
                self.log.info(
                    f"thumbnail {location} of removed row #{finding.image_id} moved to {moved}.", action="Check"
                )
