"""Consistency check and repair: do the rows and the files in IMAGES_DIR agree?

The PicHosting design's file-system/database synchronisation, run by `just check`, the operator
page `/ops/check`, `POST /api/sync` and the scheduled scrub (`run_check`). It finds:

- rows whose file is missing (`missing_file`);
- files no row names: originals at the top of IMAGES_DIR (`orphan_file`) and thumbnails whose
  original has no row (`orphan_thumbnail`);
- files whose size, format (from the bytes, JPEG/PNG/GIF parsers only) or SHA-256 disagree with
  their row (`mismatch`), or that cannot be read (`unreadable`);
- thumbnails missing for a THUMBNAIL_SIZES size below the image's long side (`missing_thumbnails`);
- rows marked missing by an earlier repair whose file is back (`file_back`).

Repair moves orphans into IMAGES_DIR/.quarantine/<timestamp>/ (never deletes a file), remakes
missing thumbnails, and marks (`file_missing_since`) or removes rows whose file is gone. It never
touches a file that disagrees with its row: that file may be the only copy of a damaged image,
and its row still links to it; the operator restores it from a backup or deletes the image.
Every action is logged in app.log as `[..] Check: ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from imagehost.accounts.identity import principal_of_request
from imagehost.errors import N_, InvalidParameter
from imagehost.images.inspection import SIGNATURES
from imagehost.images.pipeline import sizes_below, thumbnails_for_stored
from imagehost.images.service import ImageService, ThreadRunner
from imagehost.images.storage import THUMBS, ImageStore, is_stored_name
from imagehost.images.tables import Image
from imagehost.logging import action_log
from imagehost.settings import Settings
from imagehost.web.responses import respond

QUARANTINE = ".quarantine"
STORED_FORMATS = ["JPEG", "PNG", "GIF"]
MISSING_ROW_CHOICES = ("mark", "remove")
ROW_BATCH = 500
FILE_BATCH = 1000
HASH_THREADS = 4
# Files younger than this are left out of the search for orphans: an upload writes its file just
# before its row commits, so a brand-new file may be an upload in flight, not an orphan.
RECENT_SECONDS = 60
LISTED_FINDINGS = 1000  # kept in the report (counts stay exact); the rest are only counted
LOGGED_FINDINGS = 100  # problems of a check without repair written to app.log one by one
LAST_REPORT = "last-check.json"
LOCK = ".check.lock"

PROBLEMS = {
    "missing_file": N_("Row without its file"),
    "orphan_file": N_("File without a row"),
    "orphan_thumbnail": N_("Thumbnail without a row"),
    "mismatch": N_("File disagrees with its row"),
    "unreadable": N_("File cannot be read"),
    "missing_thumbnails": N_("Missing thumbnails"),
    "file_back": N_("Marked missing, but the file is back"),
}
# Known and acknowledged: rows an earlier repair marked, whose file is still gone. Not a problem.
NOTES = {"marked_missing": N_("Marked missing earlier")}
KINDS = {**PROBLEMS, **NOTES}
ACTIONS = {
    "quarantined": N_("moved to quarantine"),
    "regenerated": N_("thumbnails made"),
    "marked": N_("row marked missing"),
    "removed": N_("row removed"),
    "unmarked": N_("mark cleared"),
    "left": N_("left untouched"),
    "failed": N_("repair failed"),
}
FIELDS = {"size": N_("size"), "format": N_("format"), "sha256": "SHA-256"}


@dataclass
class Finding:
    kind: str
    stored_name: str
    image_id: int | None = None
    # mismatch: field -> (what the row says, what the file is)
    disagrees: dict[str, tuple[str, str]] = field(default_factory=dict)
    sizes: tuple[int, ...] = ()  # missing_thumbnails: the sizes; orphan_thumbnail: its size
    since: str = ""  # marked_missing, file_back: when the row was marked
    error: str = ""  # unreadable, failed repairs: why
    action: str = ""  # what repair did (a key of ACTIONS); empty without repair
    moved_to: str = ""  # quarantined: where, relative to IMAGES_DIR

    @property
    def problem(self) -> bool:
        return self.kind in PROBLEMS

    @property
    def fixed(self) -> bool:
        return self.action in {"quarantined", "regenerated", "marked", "removed", "unmarked"}

    def describe(self) -> str:
        """One English line, for the command line and app.log."""
        who = f"#{self.image_id} {self.stored_name}" if self.image_id is not None else self.stored_name
        text = f"{KINDS[self.kind].lower()}: {who}"
        if self.kind == "orphan_thumbnail":
            text = f"{KINDS[self.kind].lower()}: {THUMBS}/{self.sizes[0]}/{self.stored_name}.webp"
        if self.disagrees:
            text += (
                " ("
                + "; ".join(f"{name} {row} in the row, {disk} on disk" for name, (row, disk) in self.disagrees.items())
                + ")"
            )
        if self.kind == "missing_thumbnails":
            text += f" ({', '.join(map(str, self.sizes))})"
        if self.since:
            text += f" (marked {self.since})"
        if self.error and not self.action:
            text += f" ({self.error})"
        if self.action:
            text += f" -> {ACTIONS[self.action]}"
            text += f" {self.moved_to}" if self.moved_to else ""
            text += f" ({self.error})" if self.error else ""
        return text


@dataclass
class CheckReport:
    started_at: str
    repair: str | None = None  # None: check only; else what was done to rows whose file is gone
    by: str = ""
    duration_seconds: float = 0.0
    rows: int = 0
    files: int = 0  # originals on disk
    thumbnails: int = 0  # thumbnails on disk
    bytes_hashed: int = 0
    skipped_recent: int = 0  # files without a row, too new to call orphans (an upload may be committing)
    counts: dict[str, int] = field(default_factory=dict)  # kind -> found
    fixed_counts: dict[str, int] = field(default_factory=dict)  # kind -> fixed by repair
    findings: list[Finding] = field(default_factory=list)  # the first LISTED_FINDINGS
    quarantine: str = ""  # relative to IMAGES_DIR, when repair moved anything there

    @property
    def problems(self) -> int:
        return sum(count for kind, count in self.counts.items() if kind in PROBLEMS)

    @property
    def fixed(self) -> int:
        return sum(self.fixed_counts.values())

    @property
    def unfixed(self) -> int:
        return self.problems - self.fixed

    @property
    def consistent(self) -> bool:
        """Nothing left to fix (after a repair: everything it found was fixed)."""
        return self.unfixed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.consistent else 1

    @property
    def listed_all(self) -> bool:
        return len(self.findings) == sum(self.counts.values())

    def add(self, finding: Finding) -> None:
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
        if len(self.findings) < LISTED_FINDINGS:
            self.findings.append(finding)

    def fixed_one(self, finding: Finding) -> None:
        if finding.problem and finding.fixed:
            self.fixed_counts[finding.kind] = self.fixed_counts.get(finding.kind, 0) + 1

    def summary(self) -> str:
        """One line: what was checked, and what was found (and fixed)."""
        checked = (
            f"{self.rows:,} images, {self.files:,} files and {self.thumbnails:,} thumbnails checked"
            f" in {self.duration_seconds:.1f} s"
        )
        if not self.problems:
            marked = self.counts.get("marked_missing", 0)
            return f"{checked}: consistent" + (f" ({marked:,} rows marked missing earlier)." if marked else ".")
        found = ", ".join(
            f"{PROBLEMS[kind].lower()}: {self.counts[kind]:,}" for kind in PROBLEMS if self.counts.get(kind)
        )
        text = f"{checked}: {self.problems:,} problems ({found})"
        if self.repair:
            text += f"; {self.fixed:,} fixed, {self.unfixed:,} left"
            if self.quarantine:
                text += f"; orphans moved to {self.quarantine}"
        return text + "."

    def details(self) -> str:
        """Every listed finding on its own line, then the closing lines."""
        lines = [f"  {finding.describe()}" for finding in self.findings]
        if not self.listed_all:
            lines.append(f"  ... and {sum(self.counts.values()) - len(self.findings):,} more not listed")
        return "\n".join([*lines, *self.closing_lines()])

    def closing_lines(self) -> list[str]:
        """What was read, what was left for later, and the summary."""
        lines = []
        if self.bytes_hashed:
            lines.append(f"{self.bytes_hashed / 1e6:,.1f} MB read and hashed.")
        if self.skipped_recent:
            lines.append(
                f"{self.skipped_recent:,} files without a row are younger than {RECENT_SECONDS} s"
                " (uploads in progress?): left for the next check."
            )
        return [*lines, self.summary()]

    def as_json(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "started_at": self.started_at,
            "duration_seconds": round(self.duration_seconds, 3),
            "repair": self.repair,
            "by": self.by,
            "checked": {
                "rows": self.rows,
                "files": self.files,
                "thumbnails": self.thumbnails,
                "bytes_hashed": self.bytes_hashed,
                "skipped_recent": self.skipped_recent,
            },
            "problems": self.problems,
            "fixed": self.fixed,
            "unfixed": self.unfixed,
            "counts": self.counts,
            "fixed_counts": self.fixed_counts,
            "quarantine": self.quarantine or None,
            "findings": [_finding_json(finding) for finding in self.findings],
            "findings_listed_all": self.listed_all,
            "summary": self.summary(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckReport:
        checked = data.get("checked", {})
        return cls(
            started_at=data["started_at"],
            repair=data.get("repair"),
            by=data.get("by", ""),
            duration_seconds=data.get("duration_seconds", 0.0),
            rows=checked.get("rows", 0),
            files=checked.get("files", 0),
            thumbnails=checked.get("thumbnails", 0),
            bytes_hashed=checked.get("bytes_hashed", 0),
            skipped_recent=checked.get("skipped_recent", 0),
            counts=dict(data.get("counts", {})),
            fixed_counts=dict(data.get("fixed_counts", {})),
            quarantine=data.get("quarantine") or "",
            findings=[
                Finding(
                    **{
                        **item,
                        "disagrees": {name: tuple(pair) for name, pair in item.get("disagrees", {}).items()},
                        "sizes": tuple(item.get("sizes", ())),
                    }
                )
                for item in data.get("findings", [])
            ],
        )


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {key: value for key, value in asdict(finding).items() if value not in ("", (), {}, None)} | {
        "kind": finding.kind,
        "stored_name": finding.stored_name,
    }


# -- Reading the disk (blocking: these run in threads) ------------------------------------------


@dataclass
class OnDisk:
    """What one row's original and thumbnails look like on disk."""

    exists: bool = False
    size: int = 0
    file_format: str = ""  # "" when none of the stored formats' parsers recognises the bytes
    sha256: str = ""
    long_side: int = 0  # from the file's header; used when the row does not know its size
    error: str = ""
    thumbnails: tuple[int, ...] = ()  # sizes present


def examine(root: Path, rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> list[OnDisk]:
    return [_examine_one(root, row, sizes) for row in rows]


def _examine_one(root: Path, row: dict[str, Any], sizes: tuple[int, ...]) -> OnDisk:
    name = row["stored_name"]
    if not is_stored_name(name):
        return OnDisk(error="not a stored name")
    found = OnDisk()
    try:
        with (root / name).open("rb") as file:
            found.exists = True
            found.size = os.fstat(file.fileno()).st_size
            found.sha256 = hashlib.file_digest(file, "sha256").hexdigest()
            file.seek(0)
            try:
                # Only the stored formats' parsers see the bytes; only the header is read.
                with PILImage.open(file, formats=STORED_FORMATS) as image:
                    found.file_format = image.format or ""
                    found.long_side = max(image.size)
            except PILImage.DecompressionBombError:
                # A canvas past Pillow's own limit (MAX_PIXELS set above it): the signature says what it is.
                file.seek(0)
                head = file.read(8)
                found.file_format = next((name for name, sign in SIGNATURES.items() if head.startswith(sign)), "")
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
                found.file_format = ""
    except FileNotFoundError:
        return OnDisk()
    except OSError as error:
        return OnDisk(exists=True, error=f"{type(error).__name__}: {error.strerror or error}")
    thumbs = root / THUMBS
    found.thumbnails = tuple(size for size in sizes if (thumbs / str(size) / f"{name}.webp").is_file())
    return found


def list_stored_files(folder: Path, suffix: str, recent_before: float) -> Generator[tuple[str, bool], None, None]:
    """(stored name, old enough to judge) for each file in `folder` named <stored name><suffix>."""
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            if not entry.name.endswith(suffix) or not entry.is_file(follow_symlinks=False):
                continue
            name = entry.name.removesuffix(suffix) if suffix else entry.name
            if not is_stored_name(name):
                continue
            try:
                old_enough = entry.stat(follow_symlinks=False).st_mtime < recent_before
            except FileNotFoundError:
                continue
            yield name, old_enough


def next_chunk(entries: Iterator[tuple[str, bool]], size: int) -> list[tuple[str, bool]]:
    chunk = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= size:
            break
    return chunk


def move_aside(root: Path, relative: Path, quarantine: Path) -> Path | None:
    """Move root/relative to quarantine/relative, never over another file. None if it is gone."""
    target = quarantine / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    while target.exists():
        target = target.with_name(f"{target.name}.{secrets.token_hex(2)}")
    try:
        os.rename(root / relative, target)
    except FileNotFoundError:
        return None
    return target


# -- The check ----------------------------------------------------------------------------------


class ConsistencyCheck:
    """One run of the check (and repair). The database must be connected; `workers` runs the
    thumbnail work (the app's worker pool, or threads)."""

    def __init__(self, settings: Settings, store: ImageStore, workers: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.workers = workers or ThreadRunner()
        self.log = action_log()
        self._quarantine: Path | None = None
        self._store_looks_empty = False

    async def run(
        self, repair: str | None = None, *, by: str = "", on_finding: Callable[[Finding], None] | None = None
    ) -> CheckReport:
        """`on_finding` sees every finding as it is made (and repaired): the report keeps only the
        first LISTED_FINDINGS."""
        if repair not in (None, *MISSING_ROW_CHOICES):
            raise ValueError(f"repair must be None or one of {MISSING_ROW_CHOICES}, not {repair!r}")
        async with self._exclusive():
            started = time.monotonic()
            report = CheckReport(
                started_at=datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
                repair=repair,
                by=by,
            )
            what = f"check and repair (rows whose file is gone: {repair})" if repair else "check"
            self.log.info(f"{what} started{f' by {by}' if by else ''}.", action="Check")
            self._quarantine = None
            self._store_looks_empty = bool(repair) and await self._looks_unmounted()
            if self._store_looks_empty:
                self.log.warning(
                    f"{self.store.root} holds no original at all while the database has images: is the volume"
                    " mounted? Rows whose file is gone are left as they are.",
                    action="Check",
                )
            unlogged = 0
            async for finding in self._findings(report):
                if repair:
                    await self._repair(finding, repair, report)
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
            report.duration_seconds = time.monotonic() - started
            self.log.info(report.summary(), action="Check")
            await anyio.to_thread.run_sync(save_report, self.settings, report)
            return report

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
            step = -(-len(rows) // HASH_THREADS)
            parts = await asyncio.gather(
                *(
                    anyio.to_thread.run_sync(examine, self.store.root, rows[start : start + step], wanted)
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
                if suffix:
                    report.thumbnails += len(chunk)
                else:
                    report.files += len(chunk)
                names = [name for name, _ in chunk]
                known = await Image.select(Image.stored_name).where(Image.stored_name.is_in(names))
                named = {row["stored_name"] for row in known}
                for name, old_enough in chunk:
                    if name in named:
                        continue
                    if not old_enough:
                        report.skipped_recent += 1  # judged by the next check
                    elif suffix:
                        yield Finding("orphan_thumbnail", name, sizes=(size,))
                    else:
                        yield Finding("orphan_file", name)
        finally:
            entries.close()

    # -- Repair ---------------------------------------------------------------------------------

    async def _repair(self, finding: Finding, missing_rows: str, report: CheckReport) -> None:
        kind = finding.kind
        try:
            if kind == "orphan_file":
                await self._move_aside(finding, Path(finding.stored_name), report)
            elif kind == "orphan_thumbnail":
                await self._move_aside(
                    finding, Path(THUMBS, str(finding.sizes[0]), f"{finding.stored_name}.webp"), report
                )
            elif kind == "missing_thumbnails":
                await self._remake_thumbnails(finding)
            elif kind == "missing_file" or (kind == "marked_missing" and missing_rows == "remove"):
                await self._settle_missing_row(finding, missing_rows, report)
            elif kind == "file_back":
                await Image.update({Image.file_missing_since: None}).where(Image.id == finding.image_id)
                finding.action = "unmarked"
            elif kind in {"mismatch", "unreadable"}:
                finding.action = "left"
        except Exception as error:  # one failed repair must not stop the others; it is reported and logged
            finding.action, finding.error = "failed", f"{type(error).__name__}: {error}"

    def _quarantine_folder(self) -> Path:
        if self._quarantine is None:
            stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
            base = self.store.root / QUARANTINE
            candidate, number = base / stamp, 1
            while candidate.exists():
                number += 1
                candidate = base / f"{stamp}-{number}"
            self._quarantine = candidate
        return self._quarantine

    async def _move_aside(self, finding: Finding, relative: Path, report: CheckReport) -> None:
        folder = self._quarantine_folder()
        moved = await anyio.to_thread.run_sync(move_aside, self.store.root, relative, folder)
        if moved is None:
            finding.action, finding.error = "failed", "the file is gone"
            return
        finding.action, finding.moved_to = "quarantined", str(moved.relative_to(self.store.root))
        report.quarantine = str(folder.relative_to(self.store.root))

    async def _remake_thumbnails(self, finding: Finding) -> None:
        path = self.store.path_of(finding.stored_name)
        content = await anyio.to_thread.run_sync(path.read_bytes)
        thumbnails = await self.workers.run(
            thumbnails_for_stored, content, finding.stored_name, self.settings.max_pixels, finding.sizes
        )
        await anyio.to_thread.run_sync(self.store.write_thumbnails, finding.stored_name, thumbnails)
        finding.action = "regenerated" if set(thumbnails) >= set(finding.sizes) else "failed"

    async def _looks_unmounted(self) -> bool:
        """No original on disk but rows in the database: more likely a wrong IMAGES_DIR or an
        unmounted volume than every file lost, so repair must not mark or remove every row."""

        def no_original() -> bool:
            entries = list_stored_files(self.store.root, "", float("inf"))
            try:
                return next(entries, None) is None
            finally:
                entries.close()

        return await anyio.to_thread.run_sync(no_original) and await Image.exists()

    async def _settle_missing_row(self, finding: Finding, missing_rows: str, report: CheckReport) -> None:
        if self._store_looks_empty:
            finding.action, finding.error = "failed", "the images folder holds no original at all: is it mounted?"
            return
        path = self.store.path_of(finding.stored_name)
        if await anyio.to_thread.run_sync(path.exists):
            finding.action, finding.error = "failed", "the file came back"
            return
        if missing_rows == "mark":
            await Image.update({Image.file_missing_since: datetime.now(UTC)}).where(Image.id == finding.image_id)
            finding.action = "marked"
            return
        await Image.delete().where(Image.id == finding.image_id)
        finding.action = "removed"
        # Its thumbnails would be orphans now: they go to the quarantine with the row's removal.
        for size in await anyio.to_thread.run_sync(self.store.thumbnail_sizes_present, finding.stored_name):
            relative = Path(THUMBS, str(size), f"{finding.stored_name}.webp")
            moved = await anyio.to_thread.run_sync(move_aside, self.store.root, relative, self._quarantine_folder())
            if moved is not None:
                report.quarantine = str(self._quarantine_folder().relative_to(self.store.root))
                self.log.info(
                    f"thumbnail {relative} of removed row #{finding.image_id} moved to"
                    f" {moved.relative_to(self.store.root)}.",
                    action="Check",
                )


# -- The last report, for the operator page (and the statistics page) ----------------------------


def save_report(settings: Settings, report: CheckReport) -> None:
    path = settings.log_dir / LAST_REPORT
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_text(json.dumps(report.as_json(), ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def load_last_report(settings: Settings) -> CheckReport | None:
    """The report of the last check run by anyone (app, command line, scheduler), or None."""
    path = settings.log_dir / LAST_REPORT
    try:
        return CheckReport.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # a report from an older version: the next check writes a new one


# -- Running it outside the app: `just check` and the scheduler ---------------------------------


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
    if not needed or settings.worker_processes == 0:
        yield ThreadRunner()
        return
    from imagehost.images.workers import WorkerPool

    pool = WorkerPool(1, settings.worker_memory_limit_bytes, settings.worker_time_limit_seconds)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


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


# -- HTTP: POST /api/sync, the operator page GET/POST /ops/check ---------------------------------


def _missing_rows_choice(raw: Any) -> str:
    if raw is None or raw == "":
        return "mark"
    if raw not in MISSING_ROW_CHOICES:
        raise InvalidParameter(field="missing_rows", reason="must be mark or remove")
    return str(raw)


def _check_for(images: ImageService) -> ConsistencyCheck:
    return ConsistencyCheck(images.settings, images.store, images.workers)


def _page_context(report: CheckReport | None) -> dict[str, Any]:
    return {
        "report": report,
        "kinds": KINDS,
        "problems": PROBLEMS,
        "actions": ACTIONS,
        "fields": FIELDS,
        "recent_seconds": RECENT_SECONDS,
    }


def _report_json(report: CheckReport | None) -> dict[str, Any]:
    return {"status": "success", "report": report.as_json() if report else None}


@post("/api/sync", status_code=200)
async def sync(request: Request, images: ImageService) -> Response:
    """The JSON report; `{"repair": true, "missing_rows": "mark"|"remove"}` asks for repair.
    Admins only (a session or an admin's personal token)."""
    principal = principal_of_request(request)
    images.policy.require_admin(principal)
    body = await request.body()
    try:
        options = json.loads(body) if body.strip() else {}
    except ValueError:
        raise InvalidParameter(field="body", reason="must be a JSON object") from None
    if not isinstance(options, dict):
        raise InvalidParameter(field="body", reason="must be a JSON object")
    repair = options.get("repair", False)
    if not isinstance(repair, bool):
        raise InvalidParameter(field="repair", reason="must be true or false")
    missing_rows = _missing_rows_choice(options.get("missing_rows"))
    report = await _check_for(images).run(missing_rows if repair else None, by=principal.name)
    return Response({"status": "success", **report.as_json()})


def _answer(request: Request, report: Any) -> Response:
    """The operator page, its report fragment, or the report as JSON."""
    return respond(
        request,
        page="ops/check.html",
        fragment="ops/_report.html",
        context=_page_context(report),
        json=lambda: _report_json(report),
    )


class ConsistencyController(Controller):
    path = "/ops/check"

    @get()
    async def check_page(self, request: Request, images: ImageService) -> Response:
        images.policy.require_admin(principal_of_request(request))
        report = await anyio.to_thread.run_sync(load_last_report, images.settings)
        return _answer(request, report)

    @post(status_code=200)
    async def run_from_page(self, request: Request, images: ImageService) -> Response:
        """The page's buttons: run the check, or check and repair (htmx swaps in the report)."""
        principal = principal_of_request(request)
        images.policy.require_admin(principal)
        form = await request.form()
        repair = _missing_rows_choice(form.get("missing_rows")) if form.get("repair") else None
        report = await _check_for(images).run(repair, by=principal.name)
        return _answer(request, report)


ROUTES = [sync, ConsistencyController]


# -- The command line: `python -m imagehost check [--repair] [--missing-rows mark|remove]` -------


def command_line(settings: Settings, *, repair: bool, missing_rows: str | None) -> int:
    """Print each finding as it is made, then the summary; 0 when consistent (after a repair:
    when everything found was fixed), 1 otherwise. The log lines go to app.log only, so that
    stdout carries the report."""
    import logging
    import sys

    from imagehost.logging import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            logger.removeHandler(handler)
    choice = (missing_rows or "mark") if repair else None
    print(
        f"Checking {settings.images_dir} against the database"
        + (f", repairing (rows whose file is gone: {choice})" if choice else "")
        + " ...",
        flush=True,
    )
    report = asyncio.run(
        run_check(settings, choice, by="the command line", on_finding=lambda f: print(f"  {f.describe()}", flush=True))
    )
    print("\n".join(report.closing_lines()))
    return report.exit_code
