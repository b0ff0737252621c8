"""Reading an uploaded ZIP safely: every limit is checked from the archive's own directory before
anything is unpacked, and every entry is read with its real bytes counted.

Entry names are metadata only: nothing is ever written to a path built from them. They are split
into safe parts (backslashes are separators, drive letters, absolute roots, `.` and `..` dropped)
for the folder mapping and for display, and that is all they are used for.

Blocking code (file reads, inflating): call it from a thread.
"""

from __future__ import annotations

import itertools
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Literal

from imagehost.errors import (
    ArchiveEmpty,
    ArchiveOverlapping,
    ArchiveTooLarge,
    ArchiveTooManyEntries,
    ArchiveUnreadable,
    EntryDamaged,
    EntryEncrypted,
    EntryIsArchive,
    EntryIsLink,
    EntryNameTooLong,
    EntryRefused,
    EntryTooCompressed,
    EntryTooDeep,
    FileTooLarge,
    ImageHostError,
)
from imagehost.settings import Settings

MAX_NAME_CHARACTERS = 255  # one folder or file name (NAME_MAX)
# A central directory larger than this per allowed entry is not parsed at all: zipfile would
# hold every record of it in memory, whatever the entry count at its end claims.
DIRECTORY_BYTES_PER_ENTRY = 1024
UTF8_NAMES = 0x800  # general purpose flag bit 11
ENCRYPTED = 0x1
SYMLINK = 0o120000
CHUNK = 64 * 1024
ARCHIVE_EXTENSIONS = (".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".cab", ".jar", ".apk")
ARCHIVE_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"\x1f\x8b", b"BZh",
                      b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"MSCF")  # fmt: skip
SYSTEM_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
_DRIVE = re.compile(r"^[A-Za-z]:")

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_uncompressed_bytes: int
    max_ratio: int
    max_depth: int
    max_entry_bytes: int  # one image, as for a single upload (MAX_UPLOAD_BYTES)

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(
            max_entries=settings.zip_max_entries,
            max_uncompressed_bytes=settings.zip_max_uncompressed_bytes,
            max_ratio=settings.zip_max_ratio,
            max_depth=settings.zip_max_depth,
            max_entry_bytes=settings.max_upload_bytes,
        )


Verdict = Literal["file", "skip", "refuse"]


@dataclass(frozen=True)
class Entry:
    name: str  # as the archive names it (decoded): for people, never a path
    parts: tuple[str, ...]  # the safe parts of that name
    verdict: Verdict
    refusal: ImageHostError | None = None
    info: zipfile.ZipInfo | None = None


def human_bytes(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def decoded_name(info: zipfile.ZipInfo) -> str:
    """The entry's name. Without the UTF-8 flag zipfile reads it as cp437; the bytes are UTF-8 when
    they decode as such (many tools forget the flag), else cp866: Windows' own archiver on a
    Russian system writes Cyrillic names that way."""
    if info.flag_bits & UTF8_NAMES:
        return info.filename
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp866")


def safe_parts(name: str) -> tuple[str, ...]:
    """The folders and file name of an entry, with everything that could climb out of a folder gone."""
    path = _DRIVE.sub("", name.replace("\\", "/"))
    return tuple(part for part in path.split("/") if part not in {"", ".", ".."})


def is_system_file(parts: tuple[str, ...]) -> bool:
    if any(part.lower() == "__macosx" for part in parts):
        return True
    return bool(parts) and (parts[-1].startswith("._") or parts[-1].lower() in SYSTEM_NAMES)


class Archive:
    """An uploaded ZIP, opened and checked as a whole; its file entries are read one at a time."""

    def __init__(self, source: BinaryIO, filename: str, limits: ArchiveLimits) -> None:
        self.filename = filename
        self.limits = limits
        self.source = source
        self._check_directory_size()
        try:
            self.zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
            raise ArchiveUnreadable(filename=filename, reason=f"{type(error).__name__}: {error}") from None
        infos = self.zip.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveTooManyEntries(filename=filename, count=len(infos), limit=limits.max_entries)
        if not infos:
            raise ArchiveEmpty(filename=filename)
        total = sum(info.file_size for info in infos)
        if total > limits.max_uncompressed_bytes:
            raise ArchiveTooLarge(
                filename=filename, size=human_bytes(total), limit=human_bytes(limits.max_uncompressed_bytes)
            )
        damaged = self._check_no_overlap(infos)
        # A folder's own entry (most archivers write one per folder) is no file: it is neither stored
        # nor reported, and an archive of folders alone is as empty as one without entries.
        self.entries = [self._judge(info, damaged) for info in infos if not _is_folder(info)]
        if not self.entries:
            raise ArchiveEmpty(filename=filename)

    def close(self) -> None:
        self.zip.close()

    # --- the archive as a whole ------------------------------------------------------------------

    def _check_directory_size(self) -> None:
        """Entry count and directory size from the end record, before zipfile parses anything."""
        source = self.source
        try:
            size = source.seek(0, 2)
            tail_start = max(0, size - (_END.size + 0xFFFF))
            source.seek(tail_start)
            tail = source.read()
        except OSError as error:
            raise ArchiveUnreadable(filename=self.filename, reason=str(error)) from None
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _END.size:
            raise ArchiveUnreadable(filename=self.filename, reason="no end of central directory")
        _sig, _disk, _cd_disk, _here, count, directory_size, _offset, _comment = _END.unpack_from(tail, at)
        end64_at = tail_start + at - _END64_LOCATOR.size
        if (count == 0xFFFF or directory_size == 0xFFFFFFFF) and end64_at >= 0:
            source.seek(end64_at)
            locator = source.read(_END64_LOCATOR.size)
            if locator[:4] == b"PK\x06\x07":
                _sig, _disk, end64_offset, _disks = _END64_LOCATOR.unpack(locator)
                source.seek(end64_offset)
                record = source.read(_END64.size)
                if len(record) == _END64.size and record[:4] == b"PK\x06\x06":
                    fields = _END64.unpack(record)
                    count, directory_size = fields[6], fields[8]
        limit = self.limits.max_entries
        if count > limit:
            raise ArchiveTooManyEntries(filename=self.filename, count=count, limit=limit)
        if directory_size > limit * DIRECTORY_BYTES_PER_ENTRY:
            raise ArchiveTooManyEntries(filename=self.filename, count=f"> {limit}", limit=limit)
        source.seek(0)

    def _check_no_overlap(self, infos: list[zipfile.ZipInfo]) -> set[int]:
        """Each entry's bytes (local header and data) must end before the next entry starts: entries
        sharing their data are the non-recursive zip bomb (CVE-2024-0450), checked here whatever
        this Python's zipfile does. Returns the ids of entries whose local header is unreadable."""
        damaged: set[int] = set()
        spans: list[tuple[int, int, str]] = []
        for info in infos:
            self.source.seek(info.header_offset)
            header = self.source.read(_LOCAL.size)
            if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
                damaged.add(id(info))
                continue
            name_length, extra_length = _LOCAL.unpack(header)[-2:]
            data_start = info.header_offset + _LOCAL.size + name_length + extra_length
            spans.append((info.header_offset, data_start + info.compress_size, info.orig_filename))
        spans.sort()
        for (_start, end, name), (next_start, _next_end, next_name) in itertools.pairwise(spans):
            if next_start < end:
                raise ArchiveOverlapping(filename=self.filename, reason=f"{name!r} and {next_name!r} at {next_start}")
        if spans and spans[-1][1] > self.zip.start_dir:
            raise ArchiveOverlapping(filename=self.filename, reason=f"{spans[-1][2]!r} runs into the directory")
        self.source.seek(0)
        return damaged

    # --- one entry -------------------------------------------------------------------------------

    def _judge(self, info: zipfile.ZipInfo, damaged: set[int]) -> Entry:
        """What becomes of an entry, from the directory alone (nothing is inflated here)."""
        name = decoded_name(info)
        parts = safe_parts(name)
        limits = self.limits
        unix_mode = info.external_attr >> 16

        def refuse(refusal: ImageHostError) -> Entry:
            return Entry(name=name, parts=parts, verdict="refuse", refusal=refusal, info=info)

        if not parts or is_system_file(parts):
            return Entry(name=name, parts=parts, verdict="skip")
        if (unix_mode & 0o170000) == SYMLINK:
            return refuse(EntryIsLink(entry=name))
        if info.flag_bits & ENCRYPTED:
            return refuse(EntryEncrypted(entry=name))
        if any(len(part) > MAX_NAME_CHARACTERS for part in parts):
            return refuse(EntryNameTooLong(entry=name[:80] + "…", limit=MAX_NAME_CHARACTERS))
        if len(parts) - 1 > limits.max_depth:
            return refuse(EntryTooDeep(entry=name, depth=limits.max_depth))
        if parts[-1].lower().endswith(ARCHIVE_EXTENSIONS):
            return refuse(EntryIsArchive(entry=name))
        if id(info) in damaged:
            return refuse(EntryDamaged(entry=name, reason="no local header where the directory says"))
        if info.file_size > limits.max_entry_bytes:
            return refuse(FileTooLarge(filename=parts[-1], limit=human_bytes(limits.max_entry_bytes)))
        if info.file_size > limits.max_ratio * max(info.compress_size, 1):
            return refuse(EntryTooCompressed(entry=name, ratio=limits.max_ratio))
        return Entry(name=name, parts=parts, verdict="file", info=info)

    def read(self, entry: Entry) -> bytes:
        """The entry's bytes, counted as they are inflated: never more than it declares, the image
        limit or its ratio allows (a lying header is caught, not trusted). Raises an EntryRefused
        (or FileTooLarge) for this entry alone."""
        info = entry.info
        assert info is not None and entry.verdict == "file"
        limits = self.limits
        allowed = min(info.file_size, limits.max_entry_bytes, limits.max_ratio * max(info.compress_size, 1))
        chunks: list[bytes] = []
        count = 0
        try:
            with self.zip.open(info) as stream:
                while chunk := stream.read(CHUNK):
                    count += len(chunk)
                    if count > allowed:
                        if count > limits.max_entry_bytes:
                            raise FileTooLarge(filename=entry.parts[-1], limit=human_bytes(limits.max_entry_bytes))
                        if count > limits.max_ratio * max(info.compress_size, 1):
                            raise EntryTooCompressed(entry=entry.name, ratio=limits.max_ratio)
                        raise EntryDamaged(entry=entry.name, reason="more bytes than declared")
                    chunks.append(chunk)
        except ImageHostError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as error:
            raise EntryDamaged(entry=entry.name, reason=f"{type(error).__name__}: {error}") from None
        content = b"".join(chunks)
        if content.startswith(ARCHIVE_SIGNATURES):
            raise EntryIsArchive(entry=entry.name)
        return content


def _is_folder(info: zipfile.ZipInfo) -> bool:
    return info.is_dir() or info.filename.endswith("\\")  # a Windows archiver's folder: "Shop\\"


def open_archive(source: BinaryIO, filename: str, limits: ArchiveLimits) -> Archive:
    return Archive(source, filename, limits)


__all__ = ["Archive", "ArchiveLimits", "Entry", "EntryRefused", "open_archive"]
