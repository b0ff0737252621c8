"""Restoring a backup: check it whole, put its files in place, swap the database in one transaction,
set the extras aside, verify. With STORAGE=s3 the files go into a bucket without image objects
(ops/backup/bucket.py, which says what a restore that dies half-way leaves there)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread
import asyncpg

from imagehost.images.storage import STAGING, STORED_NAME, THUMBS, is_stored_name
from imagehost.logging import action_log
from imagehost.ops import state
from imagehost.ops.backup import bucket, signing
from imagehost.ops.backup.archive import CHUNK, UnpackedBackup, sha256_of, stored_files, unpack_verified
from imagehost.ops.backup.errors import BackupError, BackupInvalid, BackupUntrusted, RestoreCancelled
from imagehost.ops.backup.folder import NAME_TIME_FORMAT, exclusive
from imagehost.ops.backup.postgres import find_pg_tool, libpq_target, quote_identifier
from imagehost.ops.backup.report import RestoreReport
from imagehost.settings import Settings
from imagehost.storage import object_store
from imagehost.storage.objects import ObjectStore

QUARANTINE = ".quarantine"


def _sync_filesystems() -> None:
    # One sync for thousands of files instead of one fsync each.
    os.sync()


def _keep_aside(path: Path, quarantine: Path, relative: str, *, link: bool) -> None:
    """Move (or hard-link, when the file is about to be replaced) a file into the quarantine folder."""
    target = quarantine / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    else:
        os.rename(path, target)


def _place_files(unpacked: UnpackedBackup, images_dir: Path, quarantine: Path, report: RestoreReport) -> None:
    """Every file of the backup into IMAGES_DIR by rename (atomic); a differing file is kept aside first."""
    _sync_filesystems()  # the staged copies are on disk before any of them takes a real name
    for entry in unpacked.manifest["files"]:
        relative = entry["path"]
        staged, final = unpacked.files_root / relative, images_dir / relative
        if final.is_symlink() or (final.exists() and not final.is_file()):
            _keep_aside(final, quarantine, relative, link=False)
        if final.is_file():
            if final.stat().st_size == entry["size"] and sha256_of(final) == entry["sha256"]:
                report.unchanged += 1
                continue
            # A hard link keeps the old bytes; the rename then swaps in the backup's in one step.
            _keep_aside(final, quarantine, relative, link=True)
            report.replaced.append(relative)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            report.restored.append(relative)
        os.replace(staged, final)
    _sync_filesystems()


def _quarantine_extras(images_dir: Path, wanted: set[str], quarantine: Path, report: RestoreReport) -> None:
    for relative, path in list(stored_files(images_dir)):
        if relative not in wanted:
            _keep_aside(path, quarantine, relative, link=False)
            report.quarantined.append(relative)


# The backup replaces ImageHost's schema whole: objects that a newer version added (and that the
# backup does not know) go too, so that the app's start migrates the restored data forward again.
_RESTORE_PRELUDE = b"""SET client_min_messages = warning;
BEGIN;
DROP SCHEMA IF EXISTS public CASCADE;
CREATE SCHEMA public;
"""


# Run last, before the COMMIT: whatever the dump did, no row naming a file outside the store commits.
_STORED_NAME_GUARD = f"""DO $guard$ BEGIN
    IF to_regclass('public.images') IS NOT NULL THEN  -- a dump of a database never migrated has none
        IF EXISTS (SELECT 1 FROM public.images WHERE stored_name !~ '^{STORED_NAME.pattern}$') THEN
            RAISE EXCEPTION 'the backup holds image rows whose stored name is not one: not restored';
        END IF;
    END IF;
END $guard$;
"""  # noqa: S608 (the pattern is our own constant)


async def restore_database(database_url: str, unpacked: UnpackedBackup, pg_restore: Path, drop_rows: list[str]) -> None:
    """One transaction: readers see the old rows until the commit, then all of the backup's.

    pg_restore turns the dump into SQL and psql runs it between our own BEGIN and COMMIT; the
    COMMIT is sent only after pg_restore has finished well, so a failure anywhere changes nothing.
    """
    psql = pg_restore.with_name("psql")  # of the same release: pg_restore's SQL may hold \restrict
    url, env = libpq_target(database_url)
    pipe = asyncio.subprocess.PIPE
    restore = await asyncio.create_subprocess_exec(
        str(pg_restore), "--no-owner", "--no-privileges", "--file=-", str(unpacked.dump), stdout=pipe, stderr=pipe
    )
    load = await asyncio.create_subprocess_exec(
        str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={url}",
        stdin=pipe, stdout=asyncio.subprocess.DEVNULL, stderr=pipe, env=env,
    )  # fmt: skip
    assert restore.stdout and restore.stderr and load.stdin and load.stderr
    restore_errors = asyncio.ensure_future(restore.stderr.read())
    load_errors = asyncio.ensure_future(load.stderr.read())

    async def send(content: bytes) -> bool:
        try:
            load.stdin.write(content)
            await load.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return False  # psql stopped at an error (ON_ERROR_STOP): it says which on stderr
        return True

    try:
        relayed = await send(_RESTORE_PRELUDE)
        while relayed and (chunk := await restore.stdout.read(CHUNK)):
            relayed = await send(chunk)
        if not relayed:
            restore.kill()
        await restore.wait()
        if relayed and restore.returncode == 0:
            names = ", ".join(f"'{name}'" for name in drop_rows if is_stored_name(name))
            # Stored names are checked above to be [A-Za-z0-9_-] and an extension: safe as literals.
            epilogue = f"DELETE FROM public.images WHERE stored_name IN ({names});\n" if names else ""  # noqa: S608
            await send(f"\n{epilogue}{_STORED_NAME_GUARD}COMMIT;\n".encode())
        load.stdin.close()  # without COMMIT, psql ends and the server rolls the transaction back
        await load.wait()
    except BaseException:
        for process in (restore, load):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        raise
    if relayed and restore.returncode != 0:
        message = (await restore_errors).decode(errors="replace").strip()[-2000:]
        raise BackupError(f"pg_restore failed, the database is unchanged: {message}")
    if load.returncode != 0 or not relayed:
        message = (await load_errors).decode(errors="replace").strip()[-2000:]
        raise BackupError(f"loading the dump failed, the database is unchanged: {message}")


async def _preflight(database_url: str, unpacked: UnpackedBackup) -> Path:
    """The database answers, and a pg_restore that can read this dump and its psql exist. Changes nothing."""
    try:
        connection = await asyncpg.connect(database_url)
    except (OSError, asyncpg.PostgresError) as error:
        raise BackupError(f"cannot connect to PostgreSQL: {type(error).__name__}: {error}") from None
    try:
        server_major = connection.get_server_version().major
    finally:
        await connection.close()
    made_with = int(unpacked.manifest["database"].get("pg_dump_version") or 0)
    pg_restore = find_pg_tool("pg_restore", max(server_major, made_with))
    if not pg_restore.with_name("psql").exists():
        raise BackupError(f"psql is needed beside {pg_restore}")
    process = await asyncio.create_subprocess_exec(
        str(pg_restore), "--list", str(unpacked.dump), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise BackupInvalid(f"the dump in {unpacked.name} cannot be read: {errors.decode(errors='replace').strip()}")
    bad, rows = await bad_stored_names(pg_restore, unpacked.dump)
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {rows - 10} more" if rows > 10 else "")
        raise BackupInvalid(
            f"{unpacked.name} holds {rows} image rows whose stored name is not one ({shown}): such a row would "
            "make the service open a file outside its images, whatever the manifest says"
        )
    return pg_restore


_COPY_HEADER = re.compile(r"^COPY (?P<table>\S+) \((?P<columns>[^)]*)\) FROM stdin;$")


async def bad_stored_names(pg_restore: Path, dump: Path) -> tuple[list[str], int]:
    """The stored names of the dump's `images` rows that are not stored names (the first 10, as pg_dump
    wrote them), and how many there are. Reads the rows' COPY data; changes nothing.

    A field with a backslash is never a stored name (COPY escapes newlines and tabs that way), so
    the fields are judged as written. Rows the dump holds in another form are refused whole.
    """
    process = await asyncio.create_subprocess_exec(
        str(pg_restore), "--data-only", "--table=images", "--file=-", str(dump),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=16 * CHUNK,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    bad: list[str] = []
    count = 0
    column: int | None = None
    try:
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if column is None:
                header = _COPY_HEADER.match(line)
                if header and header["table"] in ("public.images", "images"):
                    names = [name.strip().strip('"') for name in header["columns"].split(",")]
                    column = names.index("stored_name") if "stored_name" in names else -1
                elif line.startswith("INSERT INTO"):  # only the rows of images are written here
                    count += 1
                    if len(bad) < 10:
                        bad.append("(a row as an INSERT statement, which ImageHost's backups never hold)")
                continue
            if line == "\\.":
                column = None
                continue
            fields = line.split("\t")
            stored = fields[column] if 0 <= column < len(fields) else ""
            if "\\" in stored or not is_stored_name(stored):
                count += 1
                if len(bad) < 10:
                    bad.append(repr(stored)[:100])
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    finally:
        await process.wait()
    if process.returncode != 0:
        message = (await errors).decode(errors="replace").strip()[-2000:]
        raise BackupInvalid(f"the rows of images in {dump.name} cannot be read: {message}")
    return bad, count


async def _verify(
    settings: Settings,
    unpacked: UnpackedBackup,
    report: RestoreReport,
    dropped: set[str],
    objects: ObjectStore | None = None,
) -> tuple[list[str], int]:
    """Files against the manifest (read again from disk, or from the bucket), then rows against files
    and row counts."""
    manifest = unpacked.manifest
    by_path = {entry["path"]: entry for entry in manifest["files"]}

    def check_files() -> list[str]:
        problems = []
        for relative, entry in by_path.items():
            path = settings.images_dir / relative
            if not path.is_file():
                problems.append(f"{relative}: missing after the restore")
            elif path.stat().st_size != entry["size"] or sha256_of(path) != entry["sha256"]:
                problems.append(f"{relative}: differs from the backup after the restore")
        return problems

    if objects is None:
        problems = await anyio.to_thread.run_sync(check_files)
    else:
        problems = await bucket.differing_objects(objects, manifest)
    known_gaps = set(manifest.get("missing_files", []))
    known_changed = set(manifest.get("changed_files", []))
    connection = await asyncpg.connect(settings.database_url)
    try:
        has_images = await connection.fetchval("SELECT to_regclass('public.images') IS NOT NULL")
        rows = await connection.fetch("SELECT stored_name, size_bytes, sha256 FROM images") if has_images else []
        counts = {}
        for table in manifest["database"]["rows"]:
            exists = await connection.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"public.{quote_identifier(table)}"
            )
            counts[table] = (
                await connection.fetchval(f"SELECT count(*) FROM {quote_identifier(table)}") if exists else None  # noqa: S608 (quoted catalogue name)
            )
    finally:
        await connection.close()
    for table, expected in manifest["database"]["rows"].items():
        if table == "images":
            expected -= len(dropped)
        if counts[table] != expected:
            problems.append(f"table {table}: {counts[table]} rows, the backup holds {expected}")
    row_names = set()
    for row in rows:
        stored = row["stored_name"]
        if not is_stored_name(stored):
            problems.append(f"image {stored!r}: not a stored name (the row names a file outside the store)")
            continue
        row_names.add(stored)
        entry = by_path.get(stored)
        if entry is None:
            if stored in known_gaps:
                report.warnings.append(f"image {stored}: its file was already missing when the backup was made")
            else:
                problems.append(f"image {stored}: the row has no file")
        elif entry["size"] != row["size_bytes"] or entry["sha256"] != row["sha256"]:
            if stored in known_changed:
                report.warnings.append(
                    f"image {stored}: its file already differed from its row when the backup was made"
                )
                continue
            problems.append(f"image {stored}: the file's size or SHA-256 differs from its row")
    originals = [path for path in by_path if "/" not in path]
    return problems, sum(1 for path in originals if path not in row_names)


async def restore_backup(
    settings: Settings,
    archive: Path,
    *,
    confirm: Callable[[UnpackedBackup], bool] | None = None,
    trust: bool = False,
) -> RestoreReport:
    """Check the backup whole, then put its files in place, swap the database, set extras aside, verify.

    Raises BackupInvalid (nothing changed) for a corrupt or partial backup, or one holding rows that
    name no stored file; BackupUntrusted (nothing changed) when BACKUP_SIGNING_KEY is set and the
    backup is not signed with it, unless `trust`; RestoreCancelled when `confirm` says no (nothing
    changed), BucketNotEmpty (nothing changed) with STORAGE=s3 when the bucket holds image objects,
    BackupError when the restore itself fails.

    With STORAGE=s3 only the dump is unpacked (the files are hashed, then read from the archive again
    as they are put into the bucket), and nothing is set aside: the bucket had no images.
    """
    objects = object_store(settings)
    log = action_log()
    started = time.monotonic()
    images_dir = settings.images_dir
    with exclusive(settings.backup_dir):
        # Staging inside IMAGES_DIR: the same file system, so moving a file into place is a rename.
        for stale in (images_dir / STAGING).glob("restore-*"):  # of a restore killed half-way (the lock is ours)
            shutil.rmtree(stale, ignore_errors=True)
        staging = images_dir / STAGING / f"restore-{secrets.token_hex(4)}"
        staging.mkdir(parents=True)
        try:
            try:
                unpacked = await anyio.to_thread.run_sync(
                    functools.partial(unpack_verified, archive, staging, files_to_disk=objects is None)
                )
                signature = _check_signature(settings, unpacked, trust)
                pg_restore = await _preflight(settings.database_url, unpacked)
                if objects is not None:
                    await bucket.check_empty(settings, objects, unpacked)
            except BackupInvalid as refusal:
                log.error(f"refused {archive}: {refusal}. Nothing was changed.", action="Restore")
                await state.record(
                    settings.database_url, state.RESTORE, state.FAILED, f"{archive.name} refused: {refusal}"
                )
                raise
            except BackupError as problem:
                log.error(f"cannot restore {archive}: {problem}. Nothing was changed.", action="Restore")
                raise type(problem)(f"{problem}. Nothing was changed.") from None
            if confirm is not None and not confirm(unpacked):
                raise RestoreCancelled("restore cancelled; nothing was changed")
            into = images_dir if objects is None else bucket.place_of(objects)
            log.info(f"restoring {unpacked.name} from {archive} into {into} and the database.", action="Restore")
            stamp = dt.datetime.now(dt.UTC).strftime(NAME_TIME_FORMAT)
            quarantine = images_dir / QUARANTINE / f"restore_{stamp}_{secrets.token_hex(2)}"
            report = RestoreReport(
                backup=unpacked.name,
                rows=dict(unpacked.manifest["database"]["rows"]),
                quarantine=quarantine if objects is None else None,
                signature=signing.describe(signature, trusted=trust),
                into="" if objects is None else bucket.place_of(objects),
            )
            history = await _history(settings.database_url)  # this installation's, not the backup's
            dropped = set(unpacked.manifest.get("deleted_during_backup", []))
            database = "unchanged"
            try:
                # Files first: the backup's files are all in place before its rows appear, so a running
                # app never sees a restored row without its file. Extras go aside once no row wants them.
                if objects is None:
                    await anyio.to_thread.run_sync(_place_files, unpacked, images_dir, quarantine, report)
                else:
                    await bucket.put_objects(objects, unpacked, report)
                await restore_database(settings.database_url, unpacked, pg_restore, sorted(dropped))
                database = "restored"
                report.rows_dropped = sorted(dropped)
                if objects is None:
                    wanted = {entry["path"] for entry in unpacked.manifest["files"]}
                    await anyio.to_thread.run_sync(_quarantine_extras, images_dir, wanted, quarantine, report)
            except Exception as failure:
                log.error(
                    f"restoring {unpacked.name} failed half-way: {failure} ({len(report.restored)} files put back, "
                    f"{len(report.replaced)} replaced so far; the database is {database}). Run it again.",
                    action="Restore",
                )
                raise
            if objects is None:
                (images_dir / THUMBS).mkdir(exist_ok=True)
            report.problems, report.files_without_row = await _verify(settings, unpacked, report, dropped, objects)
            if objects is not None and not report.problems:  # kept otherwise: the same restore may run again
                await bucket.clear_marker(objects, report)
            await state.put_back(settings.database_url, history)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(staging, ignore_errors=True))
    report.seconds = time.monotonic() - started
    summary = (
        f"{report.backup} restored: {len(report.restored)} files put back, {len(report.replaced)} replaced, "
        f"{report.unchanged} unchanged, {len(report.quarantined)} moved to quarantine"
    )
    if report.problems:
        log.error(
            f"{summary}; verification found {len(report.problems)} problems: {report.problems[0]}", action="Restore"
        )
        outcome, detail = state.PROBLEMS, f"{summary}; verification found {len(report.problems)} problems"
    else:
        log.info(f"{summary}; verified.", action="Restore")
        outcome, detail = state.OK, f"{summary}; verified"
    await state.record(settings.database_url, state.RESTORE, outcome, detail)
    return report


def _check_signature(settings: Settings, unpacked: UnpackedBackup, trust: bool) -> str:
    key = settings.backup_signing_key
    status = signing.judge(key, unpacked.manifest_bytes, unpacked.signature)
    if status in (signing.UNSIGNED, signing.FOREIGN):
        if not trust:
            raise BackupUntrusted(
                f"{unpacked.name} is {signing.describe(status, trusted=False)}: this installation's "
                "BACKUP_SIGNING_KEY did not sign it (it was made elsewhere, before the key was set, or with a "
                "key since lost). If you know where it comes from, restore it with --trust"
            )
        action_log().warning(
            f"{unpacked.name} is {signing.describe(status, trusted=False)}: restored because of --trust.",
            action="Restore",
        )
    return status


async def _history(database_url: str) -> list[state.Outcome]:
    try:
        return await state.read_all(database_url)
    except (OSError, asyncpg.PostgresError):
        return []  # the restore does not depend on it
