"""Reading a bucket for the check (STORAGE=s3): one row's objects, and every stored name in it, a
page of the listing at a time. The bucket's counterpart of scan.py, with the same findings."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from imagehost.images import formats
from imagehost.images.storage import THUMBS, is_stored_name
from imagehost.ops.consistency.scan import STORED_FORMATS, OnDisk
from imagehost.storage.bucket import original_key, thumbnail_key
from imagehost.storage.objects import ObjectStore

# Objects read (and hashed) at once: each is at most an upload's size.
PARALLEL_READS = 4


async def examine_objects(objects: ObjectStore, rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> list[OnDisk]:
    slots = asyncio.Semaphore(PARALLEL_READS)

    async def one(row: dict[str, Any]) -> OnDisk:
        async with slots:
            return await _examine_object(objects, row, sizes)

    return list(await asyncio.gather(*(one(row) for row in rows)))


async def _examine_object(objects: ObjectStore, row: dict[str, Any], sizes: tuple[int, ...]) -> OnDisk:
    name = row["stored_name"]
    if not is_stored_name(name):
        return OnDisk(bad_name=True)
    content = await objects.get(original_key(name))
    if content is None:
        return OnDisk()
    found = OnDisk(exists=True, size=len(content), sha256=hashlib.sha256(content).hexdigest())
    try:
        # Only the stored formats' parsers see the bytes; only the header is read.
        with PILImage.open(io.BytesIO(content), formats=STORED_FORMATS) as image:
            found.file_format = formats.named_by_pillow(image.format or "")
            found.long_side = max(image.size)
    except PILImage.DecompressionBombError:
        sniffed = formats.sniffed(content[: formats.MAGIC_LENGTH])
        found.file_format = sniffed.name if sniffed else ""
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        found.file_format = ""
    heads = await asyncio.gather(*(objects.head(thumbnail_key(size, name)) for size in sizes))
    found.thumbnails = tuple(size for size, head in zip(sizes, heads, strict=True) if head is not None)
    return found


async def listed_names(objects: ObjectStore, recent_before: float) -> AsyncIterator[tuple[str, int, bool]]:
    """(stored name, thumbnail size or 0 for an original, old enough to judge) of every object that
    is named like one of ours: originals at the top, thumbnails under thumbs/<size>/."""
    async for found in objects.listing(""):
        old_enough = found.modified.timestamp() < recent_before
        parts = found.key.split("/")
        if len(parts) == 1 and is_stored_name(parts[0]):
            yield parts[0], 0, old_enough
        elif len(parts) == 3 and parts[0] == THUMBS and parts[1].isdigit() and parts[2].endswith(".webp"):
            name = parts[2].removesuffix(".webp")
            if is_stored_name(name):
                yield name, int(parts[1]), old_enough
