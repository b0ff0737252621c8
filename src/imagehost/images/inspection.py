"""Decide what an uploaded file really is, from its bytes alone, with only the accepted parsers."""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

from PIL import Image, ImageSequence, UnidentifiedImageError

from imagehost.errors import EmptyFile, TooManyPixels, UndecodableImage, UnsupportedFormat

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif"}
SIGNATURES = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG\r\n\x1a\n", "GIF": b"GIF8"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif"}


@dataclass(frozen=True)
class ImageFacts:
    file_format: str  # Pillow's name: JPEG, PNG, GIF
    width: int
    height: int
    frames: int
    logical_size: int  # bytes up to the format's end marker; anything after it is not image

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.file_format]


def format_list(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed)


@dataclass
class DecodedImage:
    facts: ImageFacts
    first_frame: Image.Image  # decoded (for a large JPEG at a reduced scale, see `draft_to`)
    orientation: int  # EXIF orientation of the file, 1 when none


def decode_checked(
    content: bytes,
    filename: str,
    allowed: tuple[str, ...],
    max_pixels: int,
    *,
    draft_to: int | None = None,
    all_frames: bool = True,
) -> DecodedImage:
    """Open with the allowed parsers only, refuse oversize canvases before decoding, then decode.

    Every frame is decoded (unless `all_frames` is off: the conversion API uses the first frame
    only), so a truncated or corrupt file is refused. `draft_to` lets a JPEG be decoded at the
    smallest DCT scale that still covers that many pixels on its long side: the whole file is
    still read and checked, in a fraction of the time and memory. Blocking and CPU-bound.
    """
    if not content:
        raise EmptyFile(filename=filename)
    try:
        with Image.open(io.BytesIO(content), formats=list(allowed)) as image:
            file_format = image.format or ""
            if file_format not in allowed:
                raise UnsupportedFormat(filename=filename, formats=format_list(allowed))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise UndecodableImage(filename=filename)
            frames = getattr(image, "n_frames", 1) if all_frames else 1
            pixels = width * height * frames
            if pixels > max_pixels:
                raise TooManyPixels(filename=filename, pixels=f"{pixels:,}", limit=f"{max_pixels:,}")
            logical_size = LOGICAL_END[file_format](content) if file_format in LOGICAL_END else len(content)
        # Decode exactly the bytes that can be stored, without what follows the end marker: Pillow's
        # GIF decoder reads on past a frame's last data block, so the whole file may decode when the
        # stored part does not.
        with Image.open(io.BytesIO(content[:logical_size]), formats=[file_format]) as image:
            orientation = image.getexif().get(0x0112, 1) if file_format in {"JPEG", "PNG", "WEBP"} else 1
            if draft_to and file_format == "JPEG":
                image.draft(None, (draft_to, draft_to))
            image.load()
            first_frame = image.copy()
            if all_frames and frames > 1:
                for frame in ImageSequence.Iterator(image):
                    # Pillow widens the canvas for a frame that reaches past the GIF's logical screen.
                    if frame.width * frame.height * frames > max_pixels:
                        pixels = f"{frame.width * frame.height * frames:,}"
                        raise TooManyPixels(filename=filename, pixels=pixels, limit=f"{max_pixels:,}")
                    frame.load()
    except UnidentifiedImageError:
        if any(content.startswith(SIGNATURES[name]) for name in allowed if name in SIGNATURES):
            raise UndecodableImage(filename=filename) from None  # looks like ours, but its header is broken
        raise UnsupportedFormat(filename=filename, formats=format_list(allowed)) from None
    except Image.DecompressionBombError as bomb:
        found = re.search(r"\((\d+) pixels\)", str(bomb))
        pixels = f"{int(found.group(1)):,}" if found else "?"
        raise TooManyPixels(filename=filename, pixels=pixels, limit=f"{max_pixels:,}") from None
    except (EmptyFile, UnsupportedFormat, UndecodableImage, TooManyPixels):
        raise
    except MemoryError:
        raise  # the worker pool turns this into a refusal and replaces the worker
    except Exception:  # Pillow reports damage as OSError, SyntaxError, ValueError, EOFError, struct.error...
        # ...and so does LOGICAL_END for a structure it cannot walk to the end marker.
        raise UndecodableImage(filename=filename) from None
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    facts = ImageFacts(file_format, width, height, frames, logical_size)
    return DecodedImage(facts=facts, first_frame=first_frame, orientation=orientation)


def _png_end(content: bytes) -> int:
    position = 8
    while True:
        (length,) = struct.unpack(">I", content[position : position + 4])
        chunk_type = content[position + 4 : position + 8]
        position += 12 + length
        if position > len(content):
            raise ValueError("chunk runs past the end")
        if chunk_type == b"IEND":
            return position


def _jpeg_end(content: bytes) -> int:
    position = 2
    while position < len(content):
        if content[position] != 0xFF:
            raise ValueError("expected a marker")
        marker = content[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:
            return position + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        (length,) = struct.unpack(">H", content[position + 2 : position + 4])
        position += 2 + length
        if marker == 0xDA:  # entropy-coded data follows: skip to the next real marker
            while True:
                position = content.index(b"\xff", position)
                following = content[position + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    position += 1 if following == 0xFF else 2
                    continue
                break
    raise ValueError("no end of image marker")


def _gif_end(content: bytes) -> int:
    flags = content[10]
    position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    while True:
        introducer = content[position]
        if introducer == 0x3B:
            return position + 1
        if introducer == 0x21:
            position += 2
        elif introducer == 0x2C:
            local_flags = content[position + 9]
            position += 10 + (3 * 2 ** ((local_flags & 7) + 1) if local_flags & 0x80 else 0) + 1
        else:
            raise ValueError("unknown GIF block")
        while True:  # data sub-blocks, ended by a zero-length one
            size = content[position]
            position += 1 + size
            if size == 0:
                break


LOGICAL_END = {"PNG": _png_end, "JPEG": _jpeg_end, "GIF": _gif_end}
