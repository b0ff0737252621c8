"""Where repair acts on files: the local folder (FolderPlace, IMAGES_DIR) or the bucket (BucketPlace,
STORAGE=s3), behind one interface (RepairPlace), so that repair.py decides the same things for both.

Both keep the quarantine inside the store: IMAGES_DIR/.quarantine/<timestamp>/ on disk, and objects
under `.quarantine/<timestamp>/` (below S3_PREFIX) in the bucket, the store's layout kept under it. An
orphan is moved there, never deleted: in the bucket a server-side copy, then the removal of the
original key. Neither the check nor backups take `.quarantine/` for images."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from imagehost.images.storage import THUMBS, ImageStore, is_stored_name
from imagehost.ops.consistency.scan import list_stored_files
from imagehost.storage.bucket import BucketImageStore, original_key
from imagehost.storage.objects import ObjectStore

QUARANTINE = ".quarantine"


def thumbnail_location(size: int, stored_name: str) -> str:
    """A thumbnail's place relative to the store's root, the same in the folder and the bucket."""
    return f"{THUMBS}/{int(size)}/{stored_name}.webp"


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d_%H%M%S")


class RepairPlace(Protocol):
    # For the report and app.log when the store looks empty (a wrong IMAGES_DIR, bucket or prefix).
    looks_empty_warning: str
    looks_empty_reason: str

    async def holds_an_original(self) -> bool:
        """Whether any original is stored at all."""

    async def has_original(self, stored_name: str) -> bool: ...

    async def read_original(self, stored_name: str) -> bytes | None: ...

    async def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None: ...

    async def thumbnail_sizes_present(self, stored_name: str) -> list[int]: ...

    async def new_quarantine(self) -> str:
        """A quarantine not used yet: `.quarantine/<timestamp>` (relative to the store's root)."""

    async def move_aside(self, location: str, quarantine: str) -> str | None:
        """Move `location` (relative to the root) to `quarantine/location`, never over anything; where
        it went (relative to the root), or None when it is gone."""


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


class FolderPlace:
    """IMAGES_DIR: images/storage.py's ImageStore, its blocking calls in threads."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.looks_empty_warning = (
            f"{store.root} holds no original at all while the database has images: is the volume mounted?"
        )
        self.looks_empty_reason = "the images folder holds no original at all: is it mounted?"

    async def holds_an_original(self) -> bool:
        def any_original() -> bool:
            entries = list_stored_files(self.store.root, "", float("inf"))
            try:
                return next(entries, None) is not None
            finally:
                entries.close()

        return await anyio.to_thread.run_sync(any_original)

    async def has_original(self, stored_name: str) -> bool:
        return await anyio.to_thread.run_sync(self.store.path_of(stored_name).exists)

    async def read_original(self, stored_name: str) -> bytes | None:
        try:
            return await anyio.to_thread.run_sync(self.store.path_of(stored_name).read_bytes)
        except FileNotFoundError:
            return None

    async def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None:
        await anyio.to_thread.run_sync(self.store.write_thumbnails, stored_name, thumbnails)

    async def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        return await anyio.to_thread.run_sync(self.store.thumbnail_sizes_present, stored_name)

    async def new_quarantine(self) -> str:
        def unused() -> str:
            stamp = _stamp()
            base = self.store.root / QUARANTINE
            candidate, number = base / stamp, 1
            while candidate.exists():
                number += 1
                candidate = base / f"{stamp}-{number}"
            return str(candidate.relative_to(self.store.root))

        return await anyio.to_thread.run_sync(unused)

    async def move_aside(self, location: str, quarantine: str) -> str | None:
        root = self.store.root
        moved = await anyio.to_thread.run_sync(move_aside, root, Path(location), root / quarantine)
        return None if moved is None else str(moved.relative_to(root))


class BucketPlace:
    """The bucket (STORAGE=s3): storage/bucket.py's BucketImageStore and its ObjectStore; IMAGES_DIR
    is never touched."""

    def __init__(self, files: BucketImageStore) -> None:
        self.files = files
        self.objects: ObjectStore = files.objects
        place = getattr(self.objects, "place", "the bucket")
        self.looks_empty_warning = (
            f"{place} holds no original at all while the database has images: are S3_BUCKET and S3_PREFIX right?"
        )
        self.looks_empty_reason = "the bucket holds no original at all: are S3_BUCKET and S3_PREFIX right?"

    async def holds_an_original(self) -> bool:
        # The listing is in key order, originals among the first pages (before `thumbs/`, mostly):
        # it stops at the first one.
        listing = self.objects.listing("")
        try:
            async for found in listing:
                if "/" not in found.key and is_stored_name(found.key):
                    return True
            return False
        finally:
            await listing.aclose()  # type: ignore[attr-defined]

    async def has_original(self, stored_name: str) -> bool:
        return await self.objects.head(original_key(stored_name)) is not None

    async def read_original(self, stored_name: str) -> bytes | None:
        return await self.files.read(stored_name)

    async def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None:
        await self.files.write_thumbnails(stored_name, thumbnails)

    async def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        return await self.files.thumbnail_sizes_present(stored_name)

    async def new_quarantine(self) -> str:
        stamp = _stamp()
        candidate, number = f"{QUARANTINE}/{stamp}", 1
        while await self._anything_under(f"{candidate}/"):
            number += 1
            candidate = f"{QUARANTINE}/{stamp}-{number}"
        return candidate

    async def move_aside(self, location: str, quarantine: str) -> str | None:
        target = f"{quarantine}/{location}"
        while await self.objects.head(target) is not None:
            target = f"{target}.{secrets.token_hex(2)}"
        try:
            await self.objects.copy(location, target)
        except FileNotFoundError:
            return None
        await self.objects.delete(location)
        return target

    async def _anything_under(self, prefix: str) -> bool:
        listing = self.objects.listing(prefix)
        try:
            return await anext(listing, None) is not None  # type: ignore[call-overload]
        finally:
            await listing.aclose()  # type: ignore[attr-defined]
