"""The backup file's format: its members (database.dump, images/..., manifest.json last), written
while hashed, and read back whole against the manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from imagehost.ops.backup.errors import BackupInvalid
from imagehost.ops.backup.signing import SIGNATURE

FORMAT = "imagehost-backup/1"
MANIFEST = "manifest.json"
DUMP = "database.dump"
FILES = "images"
CHUNK = 1024 * 1024


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


def add_file(tar: tarfile.TarFile, arcname: str, path: Path) -> tuple[int, str]:
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


def add_stream(tar: tarfile.TarFile, arcname: str, size: int, mtime: float, source: IO[bytes]) -> tuple[int, str]:
    """Add `size` bytes read from `source` (an object of the bucket, as it is streamed); returns
    (size, sha256). OSError when `source` gives fewer or more bytes than `size`."""
    member = tarfile.TarInfo(arcname)
    member.size = size
    member.mtime = int(mtime)
    member.mode = 0o644
    reader = _HashingReader(source)
    tar.addfile(member, reader)  # type: ignore[arg-type]  # OSError("unexpected end of data") when short
    if source.read(1):
        raise OSError(f"{arcname} is longer than the {size} bytes its store announced")
    return reader.size, reader.digest.hexdigest()


def add_bytes(tar: tarfile.TarFile, arcname: str, content: bytes) -> None:
    import io

    member = tarfile.TarInfo(arcname)
    member.size = len(content)
    member.mtime = int(time.time())
    member.mode = 0o644
    tar.addfile(member, io.BytesIO(content))


@dataclass
class UnpackedBackup:
    manifest: dict[str, Any]
    dump: Path
    files_root: Path
    manifest_bytes: bytes = b""  # as signed
    signature: str | None = None  # the manifest's HMAC, when the backup carries one
    archive: Path | None = None  # the file it was unpacked from

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


def _hash_member(source: IO[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def unpack_verified(archive: Path, staging: Path, *, files_to_disk: bool = True) -> UnpackedBackup:
    """Unpack `archive` into `staging` and check all of it against its manifest. Raises BackupInvalid.

    One pass over the archive: every member is hashed while it is written out. Nothing outside
    `staging` is touched. Without `files_to_disk` (a restore into a bucket) only the dump is written
    out and the files are hashed, not kept: `files_in` reads them again from the archive.
    """
    if not archive.is_file():
        raise BackupInvalid(f"{archive} does not exist or is not a file")
    seen: dict[str, tuple[int, str]] = {}
    manifest_bytes: bytes | None = None
    signature: str | None = None
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
                if (
                    inside in seen
                    or (inside == MANIFEST and manifest_bytes is not None)
                    or (inside == SIGNATURE and signature is not None)
                ):
                    raise BackupInvalid(f"{archive.name} holds {member.name!r} twice")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                if inside == MANIFEST:
                    manifest_bytes = source.read()
                elif inside == SIGNATURE:
                    signature = source.read(1024).decode("ascii", errors="replace")
                elif inside == DUMP:
                    seen[inside] = _copy_member(source, staging / DUMP)
                elif inside.startswith(f"{FILES}/"):
                    seen[inside] = _copy_member(source, staging / inside) if files_to_disk else _hash_member(source)
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
    return UnpackedBackup(
        manifest=manifest,
        dump=staging / DUMP,
        files_root=staging / FILES,
        manifest_bytes=manifest_bytes,
        signature=signature,
        archive=archive,
    )


def files_in(unpacked: UnpackedBackup) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(manifest entry, content) of every file of a backup already checked by unpack_verified, read
    from its archive again, one at a time: each is checked against the manifest once more (the file
    may have been replaced since), BackupInvalid otherwise. A file is held in memory whole (an image
    is an upload's size at most)."""
    assert unpacked.archive is not None
    by_path = {f"{unpacked.name}/{FILES}/{entry['path']}": entry for entry in unpacked.manifest["files"]}
    try:
        with tarfile.open(unpacked.archive, "r:gz") as tar:
            for member in tar:
                entry = by_path.get(member.name)
                if entry is None or not member.isfile():
                    continue
                source = tar.extractfile(member)
                assert source is not None
                content = source.read(entry["size"] + 1)
                if len(content) != entry["size"] or hashlib.sha256(content).hexdigest() != entry["sha256"]:
                    raise BackupInvalid(f"{unpacked.archive.name} changed while it was restored ({entry['path']})")
                yield entry, content
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise BackupInvalid(
            f"{unpacked.archive.name} changed while it was restored ({type(error).__name__}: {error})"
        ) from None


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
