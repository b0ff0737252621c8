"""The images in an object store (STORAGE=s3): originals at `<stored name>`, thumbnails at
`thumbs/<size>/<stored name>.webp`, the same keys as the local folder's paths (images/storage.py).

Crash safety without marker files. Before an upload writes its objects, or a delete removes them,
the keys it will touch are recorded in `pending_objects` in a statement of their own (committed at
once, outside the image's transaction); the record is removed once the image row's fate is known:
the objects stay with a committed row and go without one. A record that outlives SETTLE_AFTER
belongs to a process that died (or to a COMMIT whose answer was lost): `interrupted` hands it to
ImageService.finish_interrupted, which settles it by its row, as it does the folder's markers. So
after any crash every stored image has its objects, and no object lives without its row for longer
than SETTLE_AFTER plus the time to the next settling (at start, when the database comes back, and
by the consistency check).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from imagehost.errors import DatabaseUnavailable, StoredNameRefused
from imagehost.images import formats
from imagehost.images.storage import THUMBS, is_stored_name
from imagehost.images.tables import Image
from imagehost.storage.files import InObjectStore, thumbnail_bytes_limit
from imagehost.storage.objects import ObjectStore, StoredObject

# Far longer than an upload or delete takes from its record to its COMMIT (a few object writes).
SETTLE_AFTER = timedelta(minutes=10)
# How long the thumbnail sizes found in the bucket (thumbs/<size>/, one listing by delimiter) are
# trusted: only a change of THUMBNAIL_SIZES adds one, and this instance writes only its own.
SIZES_LISTED_FOR_SECONDS = 600
PENDING_TABLE = "pending_objects"
# From the formats registry: what the bucket would send if it were ever read directly.
CONTENT_TYPES = {image_format.extension: image_format.content_type for image_format in formats.STORED}


def original_key(stored_name: str) -> str:
    if not is_stored_name(stored_name):
        raise StoredNameRefused(name=repr(stored_name)[:100])
    return stored_name


def thumbnail_key(size: int, stored_name: str) -> str:
    return f"{THUMBS}/{int(size)}/{original_key(stored_name)}.webp"


async def _execute(query: str, *arguments: object) -> object:
    """One statement on the app's pool, outside any transaction of the caller: committed at once."""
    pool = Image._meta.db.pool
    if pool is None:
        raise DatabaseUnavailable(reason="no connection pool yet")
    return await pool.fetchval(query, *arguments)


class BucketProvisional:
    """The objects of one image while its row is being inserted or deleted: held by a pending record."""

    def __init__(self, store: BucketImageStore, stored_name: str, keys: list[str], record: int) -> None:
        self.store = store
        self.stored_name = stored_name
        self.keys = keys
        self.record = record

    async def keep(self) -> None:
        """The row is there: the objects stay."""
        await _execute("DELETE FROM pending_objects WHERE id = $1", self.record)

    async def discard(self) -> None:
        """The row is not there: the objects go, then the record. If they cannot, the record stays
        and the next settling tries again."""
        await self.store.delete_keys(self.keys)
        await _execute("DELETE FROM pending_objects WHERE id = $1", self.record)

    async def leave(self) -> None:
        """Undecided (the COMMIT's answer was lost): the record stays for the next settling."""


def _served(found: tuple[StoredObject, AsyncIterator[bytes]] | None) -> InObjectStore | None:
    if found is None:
        return None
    facts, chunks = found
    return InObjectStore(facts.size, chunks)


class BucketImageStore:
    def __init__(self, objects: ObjectStore, thumbnail_sizes: tuple[int, ...], settle_after: timedelta = SETTLE_AFTER):
        self.objects = objects
        self.thumbnail_sizes = thumbnail_sizes
        self.settle_after = settle_after
        self.sizes_listed_for = SIZES_LISTED_FOR_SECONDS
        self._sizes_in_bucket: tuple[int, ...] = ()
        self._sizes_listed_at = float("-inf")
        self._sizes_lock = asyncio.Lock()

    async def stored_sizes(self) -> tuple[int, ...]:
        """Every size a thumbnail may be stored at: THUMBNAIL_SIZES and the `thumbs/<size>/` folders in
        the bucket (thumbnails made under an earlier THUMBNAIL_SIZES). The folders come from one
        listing by delimiter (a single request, whatever the number of thumbnails), kept for
        sizes_listed_for seconds."""
        async with self._sizes_lock:
            if time.monotonic() - self._sizes_listed_at >= self.sizes_listed_for:
                folders = await self.objects.folders(THUMBS)
                self._sizes_in_bucket = tuple(int(folder) for folder in folders if folder.isdigit())
                self._sizes_listed_at = time.monotonic()
        return tuple(sorted({*self.thumbnail_sizes, *self._sizes_in_bucket}))

    # --- uploads and deletes ------------------------------------------------------------------

    async def provisional(self, stored_name: str, keys: list[str]) -> BucketProvisional:
        """Record the keys about to be written or removed, committed before any of them is touched."""
        record = await _execute(
            "INSERT INTO pending_objects (stored_name, keys) VALUES ($1, $2) RETURNING id", stored_name, keys
        )
        return BucketProvisional(self, stored_name, keys, int(record))  # type: ignore[arg-type]

    async def write_provisional(
        self, stored_name: str, content: bytes, thumbnails: dict[int, bytes]
    ) -> BucketProvisional:
        """The record, then the thumbnails and the original. On failure none of them stays for longer
        than the settling after SETTLE_AFTER: the ones written are removed at once as far as the store
        lets us, and the record stays for the settling, since a write the store did not answer in
        time may still land after that removal."""
        extension = stored_name.rsplit(".", 1)[-1]
        writes = [(thumbnail_key(size, stored_name), data, "image/webp") for size, data in thumbnails.items()]
        writes.append((original_key(stored_name), content, CONTENT_TYPES.get(extension, "application/octet-stream")))
        provisional = await self.provisional(stored_name, [key for key, _, _ in writes])
        # Every write to its end (a failed one does not stop the others), so that the removal below
        # comes after each of them, not beside one still being retried.
        outcomes = await asyncio.gather(
            *(self.objects.put(key, data, kind) for key, data, kind in writes), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            with contextlib.suppress(Exception):  # the bucket may still be away: the settling retries
                await asyncio.shield(self.delete_keys(provisional.keys))
            raise failures[0]
        return provisional

    async def removal(self, stored_name: str) -> BucketProvisional:
        """For a delete: the record of every object of the image, before its row goes: the original and
        a thumbnail at every stored size (removing one that is not there costs nothing)."""
        keys = [original_key(stored_name), *(thumbnail_key(size, stored_name) for size in await self.stored_sizes())]
        return await self.provisional(stored_name, keys)

    async def interrupted(self) -> list[BucketProvisional]:
        """The records older than settle_after: their writers are gone."""
        pool = Image._meta.db.pool
        if pool is None:
            return []
        rows = await pool.fetch(
            "SELECT id, stored_name, keys FROM pending_objects WHERE started_at < now() - $1::interval ORDER BY id",
            self.settle_after,
        )
        return [BucketProvisional(self, row["stored_name"], list(row["keys"]), row["id"]) for row in rows]

    async def delete_keys(self, keys: list[str]) -> None:
        # The original first (its link dies at once), then the thumbnails.
        originals = [key for key in keys if not key.startswith(f"{THUMBS}/")]
        for key in originals:
            await self.objects.delete(key)
        await asyncio.gather(*(self.objects.delete(key) for key in keys if key not in originals))

    # --- reading -------------------------------------------------------------------------------

    async def read(self, stored_name: str) -> bytes | None:
        return await self.objects.get(original_key(stored_name)) if is_stored_name(stored_name) else None

    async def served(self, stored_name: str) -> InObjectStore | None:
        if not is_stored_name(stored_name):
            return None
        return _served(await self.objects.stream(original_key(stored_name)))

    async def served_thumbnail(self, size: int, stored_name: str) -> InObjectStore | None:
        if not is_stored_name(stored_name):
            return None
        return _served(await self.objects.stream(thumbnail_key(size, stored_name)))

    async def read_thumbnail(self, size: int, stored_name: str) -> bytes | None:
        if not is_stored_name(stored_name):
            return None
        found = await self.objects.stream(thumbnail_key(size, stored_name))
        if found is None:
            return None
        facts, chunks = found
        limit = thumbnail_bytes_limit(size)
        content = bytearray()
        try:
            if facts.size <= limit:
                async for chunk in chunks:
                    content += chunk
                    if len(content) > limit:
                        break
        finally:
            closing = getattr(chunks, "aclose", None)
            if closing is not None:
                await closing()
        return bytes(content) if facts.size <= limit and len(content) <= limit else None

    async def archived(self, stored_name: str) -> bytes | None:
        return await self.read(stored_name)

    async def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        """At every stored size, as the folder's counterpart looks into every thumbs/<size>/."""
        if not is_stored_name(stored_name):
            return []
        sizes = await self.stored_sizes()
        found = await asyncio.gather(*(self.objects.head(thumbnail_key(size, stored_name)) for size in sizes))
        return [size for size, head in zip(sizes, found, strict=True) if head is not None]

    async def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None:
        await asyncio.gather(
            *(
                self.objects.put(thumbnail_key(size, stored_name), data, "image/webp")
                for size, data in thumbnails.items()
            )
        )

    async def problem(self) -> str | None:
        """None when the bucket answers and takes writes, else why not (for /ready)."""
        return await self.objects.probe()
