"""What the service asks of wherever the images' files live (ImageFiles), and what it gets back to
serve one: a file on disk (the local folder) or a stream of an object (a bucket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class OnDisk:
    """A stored file in the local folder: sent as it is (sendfile), with its own size and date."""

    path: Path


@dataclass(frozen=True)
class InObjectStore:
    """A stored object in a bucket: its size and its bytes, streamed as they come."""

    size: int
    chunks: AsyncIterator[bytes]


Served = OnDisk | InObjectStore


def thumbnail_bytes_limit(size: int) -> int:
    """More bytes than a thumbnail of `size` px a side could take uncompressed (RGBA, and room for
    its headers): a stored "thumbnail" longer than that is not one of ours, and is never read whole."""
    return 4 * int(size) * int(size) + 64 * 1024


class Held(Protocol):
    """The files of one image while its row is being inserted or deleted (a marker, a record)."""

    stored_name: str

    async def keep(self) -> None:
        """The row is there: the files stay."""

    async def discard(self) -> None:
        """The row is not there: the files go."""

    async def leave(self) -> None:
        """Undecided: left for the next settling (ImageService.finish_interrupted)."""


class ImageFiles(Protocol):
    """The files of the stored images: storage/local.py (IMAGES_DIR) or storage/bucket.py (STORAGE=s3).

    Failures to write or remove raise StorageFull (507) or StorageUnavailable (503)."""

    async def write_provisional(self, stored_name: str, content: bytes, thumbnails: dict[int, bytes]) -> Held:
        """The files of a new image, held until its row's fate is known; on failure none is left."""

    async def removal(self, stored_name: str) -> Held:
        """Hold an image's files before its row is deleted; `discard` then removes them."""

    async def interrupted(self) -> list[Held]:
        """What a crash (or a lost COMMIT answer) left held, to be settled by the rows."""

    async def read(self, stored_name: str) -> bytes | None:
        """The original's bytes, or None when there is none."""

    async def served(self, stored_name: str) -> Served | None:
        """The original, to be sent, or None when there is none (or the name is not a stored name)."""

    async def served_thumbnail(self, size: int, stored_name: str) -> Served | None:
        """A thumbnail, to be sent, or None when there is none."""

    async def read_thumbnail(self, size: int, stored_name: str) -> bytes | None:
        """A thumbnail's bytes (sheet pictures), or None when there is none or it is longer than
        thumbnail_bytes_limit(size)."""

    async def archived(self, stored_name: str) -> Path | bytes | None:
        """The original as a member of an archive (album ZIPs): a file to read twice (its CRC, then
        its bytes) or the bytes themselves; None when there is none."""

    async def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        """The sizes of the thumbnails stored for `stored_name`."""

    async def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None:
        """Add or replace thumbnails of an image already stored."""

    async def problem(self) -> str | None:
        """None when uploads can be stored, otherwise why not (for /ready)."""
