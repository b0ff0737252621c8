"""ImageFiles over the local folder (IMAGES_DIR): images/storage.py's ImageStore, its blocking calls
in threads, its OSErrors turned into the answers they mean (full: 507, otherwise 503)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from imagehost.errors import ImageHostError, StorageFull, StorageUnavailable
from imagehost.images.storage import ImageStore, Provisional, is_stored_name
from imagehost.metrics import instruments
from imagehost.storage.files import OnDisk, thumbnail_bytes_limit


def storage_refusal(error: OSError) -> ImageHostError:
    """What a failed write or removal in IMAGES_DIR means for the client: full (507) or unavailable (503)."""
    reason = f"{type(error).__name__}: {error}"
    full = error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
    instruments.record_store_outage(full=full)
    return StorageFull(reason=reason) if full else StorageUnavailable(reason=reason)


async def _blocking(function: Callable[..., Any], *arguments: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(function, *arguments)
    except OSError as error:
        raise storage_refusal(error) from None


class HeldOnDisk:
    """A locked marker in IMAGES_DIR/.staging (images/storage.py's Provisional)."""

    def __init__(self, provisional: Provisional) -> None:
        self.provisional = provisional
        self.stored_name = provisional.stored_name

    async def keep(self) -> None:
        await anyio.to_thread.run_sync(self.provisional.keep)

    async def discard(self) -> None:
        await _blocking(self.provisional.discard)

    async def leave(self) -> None:
        await anyio.to_thread.run_sync(self.provisional.leave)


class LocalFiles:
    def __init__(self, store: ImageStore) -> None:
        self.store = store

    async def write_provisional(self, stored_name: str, content: bytes, thumbnails: dict[int, bytes]) -> HeldOnDisk:
        return HeldOnDisk(await _blocking(self.store.write_provisional, stored_name, content, thumbnails))

    async def removal(self, stored_name: str) -> HeldOnDisk:
        return HeldOnDisk(await _blocking(self.store.provisional, stored_name))

    async def interrupted(self) -> list[HeldOnDisk]:
        return [HeldOnDisk(found) for found in await anyio.to_thread.run_sync(self.store.interrupted)]

    async def read(self, stored_name: str) -> bytes | None:
        path = await anyio.to_thread.run_sync(self.store.existing_path, stored_name)
        if path is None:
            return None
        try:
            return await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:  # deleted meanwhile
            return None

    async def served(self, stored_name: str) -> OnDisk | None:
        path = await anyio.to_thread.run_sync(self.store.existing_path, stored_name)
        return OnDisk(path) if path is not None else None

    async def served_thumbnail(self, size: int, stored_name: str) -> OnDisk | None:
        if not is_stored_name(stored_name):
            return None
        path = self.store.thumbnail_path(size, stored_name)
        return OnDisk(path) if await anyio.to_thread.run_sync(path.is_file) else None

    async def read_thumbnail(self, size: int, stored_name: str) -> bytes | None:
        if not is_stored_name(stored_name):
            return None
        path = self.store.thumbnail_path(size, stored_name)
        limit = thumbnail_bytes_limit(size)

        def read() -> bytes | None:
            try:
                with path.open("rb") as file:
                    content = file.read(limit + 1)
            except (FileNotFoundError, IsADirectoryError):
                return None
            return content if len(content) <= limit else None

        return await anyio.to_thread.run_sync(read)

    async def archived(self, stored_name: str) -> Path | None:
        return await anyio.to_thread.run_sync(self.store.existing_path, stored_name)

    async def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        return await anyio.to_thread.run_sync(self.store.thumbnail_sizes_present, stored_name)

    async def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None:
        await _blocking(self.store.write_thumbnails, stored_name, thumbnails)

    async def problem(self) -> str | None:
        if not await anyio.to_thread.run_sync(self.store.writable):
            return f"images folder {self.store.root} is not writable"
        return None
