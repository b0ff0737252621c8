"""Pictures for a catalogue XLSX (`with_thumbnails=1`). XLSX cannot hold WebP, so each picture is
made from one of our own stored WebP thumbnails, never from an original (user bytes): only the
WebP parser sees the file, and one larger than the size it was made at is not ours and is left out.

The thumbnail is read through ImageFiles (the folder or the bucket alike), at most
thumbnail_bytes_limit(size) of it, and turned into a JPEG of a few kilobytes in a worker thread:
the rows on their way to the writer carry those, never the thumbnails themselves."""

from __future__ import annotations

import io

import anyio.to_thread
from PIL import Image

from imagehost.storage.files import ImageFiles

# The picture fits in a square this many pixels wide (the row is made tall enough for it).
PICTURE_BOX = 64
JPEG_QUALITY = 80


def jpeg_picture(thumbnail_bytes: bytes, made_at: int) -> bytes | None:
    """A JPEG of at most PICTURE_BOX px a side, or None when the thumbnail is not one of ours."""
    try:
        with Image.open(io.BytesIO(thumbnail_bytes), formats=["WEBP"]) as thumbnail:
            if max(thumbnail.size) > made_at:  # checked before any pixel is decoded
                return None
            thumbnail.thumbnail((PICTURE_BOX, PICTURE_BOX))
            picture = thumbnail.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):  # damaged, not WebP
        return None
    flat = Image.new("RGB", picture.size, (255, 255, 255))  # transparency on white, as a sheet shows it
    flat.paste(picture, mask=picture.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, "JPEG", quality=JPEG_QUALITY, dpi=(96, 96))
    return buffer.getvalue()


async def sheet_picture(files: ImageFiles, size: int, stored_name: str) -> bytes | None:
    """The JPEG for the thumbnail of `size` of `stored_name`, or None when it is gone or not ours."""
    thumbnail_bytes = await files.read_thumbnail(size, stored_name)
    if thumbnail_bytes is None:
        return None
    return await anyio.to_thread.run_sync(jpeg_picture, thumbnail_bytes, size)
