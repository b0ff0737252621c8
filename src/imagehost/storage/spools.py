"""Where a ZIP waits for its job: a copy of the request's archive that outlives the request, kept
where every instance that may run the job can read it.

The folder's: IMAGES_DIR/.staging/jobs/<name>.zip (one machine, or a folder all share). The
bucket's: the object `jobs/<name>.zip`, so that a worker on any machine takes the job; it is read
back into a temporary file of that machine (zipfile needs to seek) for as long as the job runs.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio.to_thread

from imagehost.storage.objects import ObjectStore

SUFFIX = ".zip"
BUCKET_FOLDER = "jobs/"
COPY_CHUNK = 1024 * 1024


class Spools(Protocol):
    async def keep(self, name: str, source: BinaryIO) -> None:
        """A copy of `source` (read from its start) under `name`."""

    def opened(self, name: str) -> contextlib.AbstractAsyncContextManager[BinaryIO | None]:
        """The copy, readable and seekable, for the block's length; None when it is gone."""

    async def remove(self, name: str) -> None:
        """Removing one that is not there is no error."""

    async def names(self) -> list[str]:
        """The names of every copy kept."""


def _copy(source: BinaryIO, path: Path) -> None:
    source.seek(0)
    with path.open("wb") as copy:
        shutil.copyfileobj(source, copy, COPY_CHUNK)


class FolderSpools:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}{SUFFIX}"

    async def keep(self, name: str, source: BinaryIO) -> None:
        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            _copy(source, self._path(name))

        await anyio.to_thread.run_sync(write)

    @contextlib.asynccontextmanager
    async def opened(self, name: str) -> AsyncIterator[BinaryIO | None]:
        try:
            handle = await anyio.to_thread.run_sync(self._path(name).open, "rb")
        except FileNotFoundError:
            yield None
            return
        try:
            yield handle
        finally:
            handle.close()

    async def remove(self, name: str) -> None:
        await anyio.to_thread.run_sync(lambda: self._path(name).unlink(missing_ok=True))

    async def names(self) -> list[str]:
        def listed() -> list[str]:
            if not self.folder.is_dir():
                return []
            return [path.stem for path in self.folder.iterdir() if path.suffix == SUFFIX]

        return await anyio.to_thread.run_sync(listed)


class BucketSpools:
    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @staticmethod
    def _key(name: str) -> str:
        return f"{BUCKET_FOLDER}{name}{SUFFIX}"

    async def keep(self, name: str, source: BinaryIO) -> None:
        # The request's body may be in memory or spooled by Litestar: through a file of our own,
        # which the store's client sends part by part.
        with tempfile.TemporaryDirectory(prefix="imagehost-spool-") as folder:
            path = Path(folder) / "archive.zip"
            await anyio.to_thread.run_sync(_copy, source, path)
            await self.objects.put(self._key(name), path, "application/zip")

    @contextlib.asynccontextmanager
    async def opened(self, name: str) -> AsyncIterator[BinaryIO | None]:
        found = await self.objects.stream(self._key(name))
        if found is None:
            yield None
            return
        _facts, chunks = found
        with tempfile.TemporaryFile(prefix="imagehost-job-") as copy:
            async for chunk in chunks:
                await anyio.to_thread.run_sync(copy.write, chunk)
            copy.seek(0)
            yield copy

    async def remove(self, name: str) -> None:
        await self.objects.delete(self._key(name))

    async def names(self) -> list[str]:
        return [
            stored.key[len(BUCKET_FOLDER) : -len(SUFFIX)]
            async for stored in self.objects.listing(BUCKET_FOLDER)
            if stored.key.endswith(SUFFIX)
        ]
