"""Pictures for a catalogue XLSX (`with_thumbnails=1`). XLSX cannot hold WebP, so each picture is
made from one of our own stored WebP thumbnails, never from an original (user bytes): only the
WebP parser sees the file, and one larger than the size it was made at is not ours and is left out.
Called from the XLSX writer's worker thread."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

# The picture fits in a square this many pixels wide (the row is made tall enough for it).
PICTURE_BOX = 64
JPEG_QUALITY = 80


def jpeg_picture(path: Path, made_at: int) -> bytes | None:
    """A JPEG of at most PICTURE_BOX px a side, or None when the thumbnail is gone or is not one of ours."""
    try:
        with Image.open(path, formats=["WEBP"]) as thumbnail:
            if max(thumbnail.size) > made_at:  # checked before any pixel is decoded
                return None
            thumbnail.thumbnail((PICTURE_BOX, PICTURE_BOX))
            picture = thumbnail.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):  # missing, damaged, not WebP
        return None
    flat = Image.new("RGB", picture.size, (255, 255, 255))  # transparency on white, as a sheet shows it
    flat.paste(picture, mask=picture.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, "JPEG", quality=JPEG_QUALITY, dpi=(96, 96))
    return buffer.getvalue()
