"""Making a backup: the database in an exported snapshot, then the files (of IMAGES_DIR, or of the
bucket with STORAGE=s3: ops/backup/bucket.py), then the manifest; renamed when whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
import asyncpg

import imagehost
from imagehost.images.storage import fsync_folder
from imagehost.images.thumbnail_jobs import BATCHES_TABLE
from imagehost.logging import action_log
from imagehost.ops import state
from imagehost.ops.backup import signing
from imagehost.ops.backup.archive import CHUNK, DUMP, FILES, FORMAT, MANIFEST, add_bytes, add_file, stored_files
from imagehost.ops.backup.bucket import archive_objects, place_of
from imagehost.ops.backup.folder import NAME_TIME_FORMAT, SUFFIX, exclusive, prune_backups
from imagehost.ops.backup.postgres import find_pg_tool, libpq_target, quote_identifier, run_tool, tool_major
from imagehost.ops.backup.report import describe_backup
from imagehost.settings import Settings
from imagehost.storage import object_store
from imagehost.storage.bucket import PENDING_TABLE
from imagehost.tasks.queue import QUEUE_TABLES
from imagehost.web.stores import TABLE as SHARED_STORE

# Rows that only ever hold what is in flight (rate-limit counts, objects being written, the job
# queue's jobs and workers, thumbnail batches): not backed up. After a restore an unfinished ZIP job
# has no task and is marked failed (its stored entries listed), rather than run again from an
# archive that is gone.
TRANSIENT_TABLES = (SHARED_STORE, PENDING_TABLE, BATCHES_TABLE, *QUEUE_TABLES)


@dataclass(frozen=True)
class Snapshot:
    """What the dump holds, read in the dump's own snapshot."""

    rows: dict[str, int]
    images: dict[str, tuple[int, str]]  # stored name: the row's size_bytes and sha256
    server_version: str
    pg_dump_version: int


@dataclass
class BackupResult:
    path: Path
    files: int
    file_bytes: int
    rows: dict[str, int]
    archive_bytes: int
    seconds: float
    # Rows in the dump whose file was deleted (with its row) while the backup ran.
    deleted_during_backup: list[str] = field(default_factory=list)
    # Rows in the dump whose file was not there, while the row still is: damage before the backup.
    missing_files: list[str] = field(default_factory=list)
    # Rows in the dump whose file is there but not with the row's size and SHA-256: damage too.
    changed_files: list[str] = field(default_factory=list)
    pruned: list[Path] = field(default_factory=list)


async def _dump_database(database_url: str, dump_path: Path) -> Snapshot:
    """pg_dump inside a snapshot exported by our own transaction, which also reads the rows it will hold."""
    connection = await asyncpg.connect(database_url)
    try:
        server = connection.get_server_version()
        server_version = connection.get_settings().server_version.split()[0]  # "17.12" (asyncpg's minor is 0)
        pg_dump = find_pg_tool("pg_dump", server.major)
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            # The transient tables are left out: they change under a running app, would only be
            # stale after a restore, and must not make its row check fail.
            tables = [
                row["tablename"]
                for row in await connection.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
                )
                if row["tablename"] not in TRANSIENT_TABLES
            ]
            rows = {}
            for table in tables:
                rows[table] = await connection.fetchval(f"SELECT count(*) FROM {quote_identifier(table)}")  # noqa: S608 (a catalogue name, quoted)
            images: dict[str, tuple[int, str]] = {}
            if "images" in tables:
                found = await connection.fetch("SELECT stored_name, size_bytes, sha256 FROM images")
                images = {row["stored_name"]: (row["size_bytes"], row["sha256"]) for row in found}
            url, env = libpq_target(database_url)
            await run_tool(
                [
                    *(str(pg_dump), "--format=custom", f"--snapshot={snapshot}", f"--file={dump_path}"),
                    *(f"--exclude-table-data={table}" for table in TRANSIENT_TABLES),
                    f"--dbname={url}",
                ],
                env,
                "pg_dump",
            )
    finally:
        await connection.close()
    return Snapshot(rows, images, server_version, tool_major(pg_dump) or 0)


def _archive_dump(tar: tarfile.TarFile, root: str, dump_path: Path) -> dict:
    size, digest = add_file(tar, f"{root}/{DUMP}", dump_path)
    return {"path": DUMP, "size": size, "sha256": digest}


def _archive_files(tar: tarfile.TarFile, root: str, images_dir: Path) -> list[dict]:
    """Every file of IMAGES_DIR (originals first). Files gone meanwhile are skipped."""
    entries = []
    for relative, path in stored_files(images_dir):
        try:
            size, digest = add_file(tar, f"{root}/{FILES}/{relative}", path)
        except FileNotFoundError:
            continue  # deleted after we listed it; if its row is in the dump, the caller notices
        entries.append({"path": relative, "size": size, "sha256": digest})
    return entries


async def make_backup(settings: Settings, *, now: Callable[[], dt.datetime] | None = None) -> BackupResult:
    """Dump the database, then archive the files, then the manifest; rename into place; prune. Logs it.

    Raises BackupError (logged) when it cannot; a half-made backup is removed.
    """
    log = action_log()
    try:
        result = await _write_backup(settings, now or (lambda: dt.datetime.now(dt.UTC)))
    except Exception as failure:
        log.error(f"backup failed: {type(failure).__name__}: {failure}", action="Backup")
        await state.record(settings.database_url, state.BACKUP, state.FAILED, f"{type(failure).__name__}: {failure}")
        raise
    name = result.path.name.removesuffix(SUFFIX)
    for stored in result.deleted_during_backup:
        log.warning(
            f"image {stored} was deleted while the backup ran: its row is in {name} without its file "
            "(a restore drops that row again).",
            action="Backup",
        )
    for stored in result.missing_files:
        log.warning(
            f"image {stored} has a row but no file: {name} holds the row without the file (run the consistency check).",
            action="Backup",
        )
    for stored in result.changed_files:
        log.warning(
            f"image {stored}: its file differs from its row's size or SHA-256 (damaged): {name} holds it as it "
            "is (run the consistency check).",
            action="Backup",
        )
    log.info(f"{result.path} made: {describe_backup(result)}.", action="Backup")
    gaps = result.deleted_during_backup or result.missing_files or result.changed_files
    outcome = state.WARNINGS if gaps else state.OK
    await state.record(
        settings.database_url, state.BACKUP, outcome, f"{result.path.name} made: {describe_backup(result)}"
    )
    return result


async def _write_backup(settings: Settings, clock: Callable[[], dt.datetime]) -> BackupResult:
    objects = object_store(settings)
    backup_dir = settings.backup_dir
    started = time.monotonic()
    with exclusive(backup_dir):
        for leftover in backup_dir.glob(".backup_*.partial"):
            leftover.unlink(missing_ok=True)  # a backup killed half-way; the lock says none is running
        made_at = clock().replace(microsecond=0)
        while (backup_dir / f"backup_{made_at:{NAME_TIME_FORMAT}}{SUFFIX}").exists():
            made_at += dt.timedelta(seconds=1)  # two backups within one second: names stay unique and ordered
        name = f"backup_{made_at:{NAME_TIME_FORMAT}}"
        final = backup_dir / f"{name}{SUFFIX}"
        partial = backup_dir / f".{name}{SUFFIX}.{secrets.token_hex(4)}.partial"
        dump_path = backup_dir / f".{name}.{secrets.token_hex(4)}.dump.partial"
        try:
            snapshot = await _dump_database(settings.database_url, dump_path)
            tar = tarfile.open(partial, "w:gz", compresslevel=1, copybufsize=CHUNK)  # noqa: SIM115 (closed below, across threads)
            try:
                dump_entry = await anyio.to_thread.run_sync(_archive_dump, tar, name, dump_path)
                if objects is None:
                    entries = await anyio.to_thread.run_sync(_archive_files, tar, name, settings.images_dir)
                else:
                    entries = await archive_objects(tar, name, objects)
                present = {entry["path"]: (entry["size"], entry["sha256"]) for entry in entries}
                absent = sorted(stored for stored in snapshot.images if stored not in present)
                changed = sorted(
                    stored for stored, row in snapshot.images.items() if stored in present and present[stored] != row
                )
                still_there = await _rows_still_present(settings.database_url, absent)
                missing = [stored for stored in absent if stored in still_there]
                deleted = [stored for stored in absent if stored not in still_there]
                manifest = {
                    "format": FORMAT,
                    "name": name,
                    "created_at": made_at.isoformat(timespec="seconds"),
                    "app_version": imagehost.__version__,
                    "storage": place_of(objects) if objects is not None else "IMAGES_DIR",
                    "database": {
                        **dump_entry,
                        "server_version": snapshot.server_version,
                        "pg_dump_version": snapshot.pg_dump_version,
                        "rows": snapshot.rows,
                    },
                    "file_count": len(entries),
                    "file_bytes": sum(entry["size"] for entry in entries),
                    "deleted_during_backup": deleted,
                    "missing_files": missing,
                    "changed_files": changed,
                    "files": entries,
                }
                content = json.dumps(manifest, indent=1).encode()
                if settings.backup_signing_key:  # before the manifest, which stays the last member
                    signature = signing.sign(settings.backup_signing_key, content).encode()
                    await anyio.to_thread.run_sync(add_bytes, tar, f"{name}/{signing.SIGNATURE}", signature)
                await anyio.to_thread.run_sync(add_bytes, tar, f"{name}/{MANIFEST}", content)
            finally:
                await anyio.to_thread.run_sync(tar.close)
            await anyio.to_thread.run_sync(_make_durable, partial)
            os.rename(partial, final)
            fsync_folder(backup_dir)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            dump_path.unlink(missing_ok=True)
        pruned = prune_backups(backup_dir, settings.backup_keep)
    return BackupResult(
        path=final,
        files=manifest["file_count"],
        file_bytes=manifest["file_bytes"],
        rows=snapshot.rows,
        archive_bytes=final.stat().st_size,
        seconds=time.monotonic() - started,
        deleted_during_backup=deleted,
        missing_files=missing,
        changed_files=changed,
        pruned=pruned,
    )


def _make_durable(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


async def _rows_still_present(database_url: str, stored_names: list[str]) -> set[str]:
    if not stored_names:
        return set()
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT stored_name FROM images WHERE stored_name = ANY($1::text[])", stored_names
        )
    finally:
        await connection.close()
    return {row[0] for row in rows}
