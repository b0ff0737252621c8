"""Reading the disk for the check (blocking: these run in threads): one row's files, and the stored
names in a folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from imagehost.images import formats
from imagehost.images.storage import ImageStore, is_stored_name

STORED_FORMATS = list(formats.STORED_NAMES)
# Files younger than this are left out of the search for orphans: an upload writes its file just
# before its row commits, so a brand-new file may be an upload in flight, not an orphan.
RECENT_SECONDS = 60


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
    bad_name: bool = False  # the row's stored name is not one: nothing was opened


def examine(store: ImageStore, rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> list[OnDisk]:
    return [_examine_one(store, row, sizes) for row in rows]


def _examine_one(store: ImageStore, row: dict[str, Any], sizes: tuple[int, ...]) -> OnDisk:
    name = row["stored_name"]
    if not is_stored_name(name):
        return OnDisk(bad_name=True)
    found = OnDisk()
    try:
        with store.path_of(name).open("rb") as file:
            found.exists = True
            found.size = os.fstat(file.fileno()).st_size
            found.sha256 = hashlib.file_digest(file, "sha256").hexdigest()
            file.seek(0)
            try:
                # Only the stored formats' parsers see the bytes; only the header is read.
                with PILImage.open(file, formats=STORED_FORMATS) as image:
                    found.file_format = formats.named_by_pillow(image.format or "")  # MPO is JPEG
                    found.long_side = max(image.size)
            except PILImage.DecompressionBombError:
                # A canvas past Pillow's own limit (MAX_PIXELS set above it): the signature says what it is.
                file.seek(0)
                sniffed = formats.sniffed(file.read(formats.MAGIC_LENGTH))
                found.file_format = sniffed.name if sniffed else ""
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
                found.file_format = ""
    except FileNotFoundError:
        return OnDisk()
    except OSError as error:
        return OnDisk(exists=True, error=f"{type(error).__name__}: {error.strerror or error}")
    found.thumbnails = tuple(size for size in sizes if store.thumbnail_path(size, name).is_file())
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
