"""Decide what an uploaded file really is, from its bytes alone, with only the accepted parsers."""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

from PIL import Image, ImageSequence, UnidentifiedImageError

from imagehost.errors import EmptyFile, TooManyPixels, UndecodableImage, UnsupportedFormat
from imagehost.images import formats

# Derived from the registry (images/formats.py), under the names other modules import.
EXTENSIONS = {image_format.name: f".{image_format.extension}" for image_format in formats.STORED}
CONTENT_TYPES = {image_format.name: image_format.content_type for image_format in formats.STORED}


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
    # The bytes that were decoded, the ones to store: the file up to its end marker, and for a
    # JPEG without what the decoder skips (see `readable_jpeg`). Usually a prefix of the file.
    content: bytes
    # False for a JPEG that ends without EOI: stripping must add one, so what it makes is new.
    ends_properly: bool = True
    # A JPEG's segments as walked to find its end, when `content` is that walk's prefix of the file:
    # stripping reuses them instead of walking the file a second time.
    jpeg: JpegStructure | None = None


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
    readable, jpeg_damage, ends_properly, jpeg = content, None, True, None
    if "JPEG" in allowed and formats.JPEG.starts(content):
        # Walked first: metadata that Pillow's header reader trips on, and which the decoder
        # ignores anyway, must be gone before Pillow opens the file.
        try:
            readable, ends_properly, jpeg = readable_jpeg(content)
        except (ValueError, IndexError, struct.error) as error:
            jpeg_damage = error  # refused below, once the canvas size has had its say
    try:
        with Image.open(io.BytesIO(readable), formats=list(allowed)) as image:
            file_format = formats.named_by_pillow(image.format or "")  # an MPO is a JPEG (first picture)
            if file_format not in allowed:
                raise UnsupportedFormat(filename=filename, formats=format_list(allowed))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise UndecodableImage(filename=filename)
            frames = getattr(image, "n_frames", 1) if all_frames and file_format != "JPEG" else 1
            pixels = width * height * frames
            if pixels > max_pixels:
                raise TooManyPixels(filename=filename, pixels=f"{pixels:,}", limit=f"{max_pixels:,}")
            if file_format == "JPEG" and jpeg_damage is not None:
                raise jpeg_damage
            if file_format in LOGICAL_END:
                readable = readable[: LOGICAL_END[file_format](readable)]
        # Decode exactly the bytes that can be stored, without what follows the end marker: Pillow's
        # GIF decoder reads on past a frame's last data block, so the whole file may decode when the
        # stored part does not.
        with Image.open(io.BytesIO(readable), formats=[file_format]) as image:
            if draft_to and file_format == "JPEG":
                image.draft(None, (draft_to, draft_to))
            image.load()
            # After the load: Pillow's PNG reader loads the pixels to find EXIF, and a damaged
            # image must fail in `load`, not in the orientation's forgiving read.
            orientation = _orientation(image) if file_format in {"JPEG", "PNG", "WEBP"} else 1
            first_frame = image.copy()
            if all_frames and frames > 1:
                for frame in ImageSequence.Iterator(image):
                    # Pillow widens the canvas for a frame that reaches past the GIF's logical screen.
                    if frame.width * frame.height * frames > max_pixels:
                        pixels = f"{frame.width * frame.height * frames:,}"
                        raise TooManyPixels(filename=filename, pixels=pixels, limit=f"{max_pixels:,}")
                    frame.load()
    except UnidentifiedImageError:
        if formats.sniffed(content, allowed) is not None:
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
        # ...and so do the walkers for a structure they cannot follow to the end marker.
        raise UndecodableImage(filename=filename) from None
    facts = ImageFacts(file_format, width, height, frames, len(readable))
    if file_format != "JPEG":
        ends_properly, jpeg = True, None
    return DecodedImage(facts, first_frame, orientation, readable, ends_properly, jpeg)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation Pillow reads (1 to 8); 1 when there is none or it cannot be read.

    Damaged EXIF is metadata that cannot be parsed: it is dropped, the image is not refused for it.
    """
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


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


# A JPEG is cut at its end by `readable_jpeg`, before Pillow sees it.
LOGICAL_END = {"PNG": _png_end, "GIF": _gif_end}


# --- JPEG structure -----------------------------------------------------------------------------
# Walked the way libjpeg (and with it Pillow and the browsers) reads markers, and no stricter:
# bytes between segments that are not a marker are skipped, and so are fill bytes (FF) and FF 00;
# a segment whose length is below 2 is read as empty; a file that ends after its image data but
# before EOI ends there. One walker, used here for the end of the image and by privacy.py to strip.

SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
APP0, APP1, APP2, APP14 = 0xE0, 0xE1, 0xE2, 0xEE
STANDALONE_MARKERS = frozenset({*range(0xD0, 0xD8), 0x01})  # RSTn and TEM carry no length
JFIF_HEADER = b"JFIF\x00"
EXIF_HEADER = b"Exif\x00\x00"
ICC_HEADER = b"ICC_PROFILE\x00"
ADOBE_HEADER = b"Adobe"  # APP14: tells the decoder whether to convert YCbCr/YCCK
# The shortest payloads the decoder reads as JFIF and Adobe (libjpeg's APP0_DATA_LEN and
# APP14_DATA_LEN; shorter ones it ignores), and the ICC header with its sequence number and count.
JFIF_LENGTH, ADOBE_LENGTH, ICC_CHUNK_HEADER_LENGTH = 14, 12, 14
EMPTY_COMMENT = b"\xff\xfe\x00\x02"
# Both patterns open with a literal FF, not `\xff+`: that lets the regex engine skip ahead to
# each FF at memchr speed (20 times faster on a 12-megapixel photo).
NEXT_MARKER = re.compile(rb"\xff\xff*[^\x00\xff]")
# Where a scan's entropy-coded data ends: at the first marker that is not RSTn (stuffed FF 00,
# fill bytes and restart markers belong to the data).
SCAN_END = re.compile(rb"\xff\xff*[^\x00\xd0-\xd7\xff]")


class JpegSegment(NamedTuple):
    marker: int
    raw: bytes  # marker, length and payload; for SOS also the entropy-coded data after it

    @property
    def payload(self) -> bytes:
        return self.raw[4:]


@dataclass(frozen=True)
class JpegStructure:
    segments: list[JpegSegment]  # SOI first, EOI last when the file has one
    end: int  # where the image ends in the file: just past EOI, or the file's end
    regular: bool  # nothing but fill bytes lies between the segments, and they end with EOI
    cut_short: bytes = b""  # a last segment that the file ends inside of, as it is

    @property
    def ends_properly(self) -> bool:
        return self.segments[-1].marker == EOI


def jpeg_structure(content: bytes) -> JpegStructure:
    """The segments from SOI to EOI. Raises ValueError when there is no image data to decode."""
    if not content.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG: no start of image marker")
    segments = [JpegSegment(SOI, content[:2])]
    position, regular, seen_scan = 2, True, False
    while True:
        found = NEXT_MARKER.search(content, position)
        if found is None:
            break  # the file ends without EOI
        start = found.end() - 2  # the marker's own FF: fill bytes before it are left out
        if content[position:start].strip(b"\xff"):
            regular = False  # bytes that are no marker: skipped, as the decoder skips them
        marker = content[start + 1]
        if marker == EOI:
            segments.append(JpegSegment(EOI, content[start : start + 2]))
            return JpegStructure(segments, start + 2, regular)
        if marker in STANDALONE_MARKERS:
            position = start + 2
            segments.append(JpegSegment(marker, content[start:position]))
            continue
        if start + 4 > len(content):
            return _without_end_marker(segments, content, seen_scan, cut_short=content[start:])
        (length,) = struct.unpack(">H", content[start + 2 : start + 4])
        position = start + 2 + max(length, 2)  # the decoder reads a length below 2 as no payload
        if position > len(content):
            return _without_end_marker(segments, content, seen_scan, cut_short=content[start:])
        if marker == SOS:
            scan_end = SCAN_END.search(content, position)
            position = scan_end.end() - 2 if scan_end else len(content)
            seen_scan = True
        segments.append(JpegSegment(marker, content[start:position]))
    return _without_end_marker(segments, content, seen_scan, cut_short=b"")


def _without_end_marker(
    segments: list[JpegSegment], content: bytes, seen_scan: bool, cut_short: bytes
) -> JpegStructure:
    # The file ends before EOI. Only one whose image data is all there can still decode (the
    # decoder decides, from the file as it is); stripping then adds the EOI it lacks.
    if not seen_scan:
        raise ValueError("no JPEG image data before the end of the file")
    return JpegStructure(segments, len(content), regular=False, cut_short=cut_short)


def unreadable_metadata(segment: JpegSegment) -> bool:
    """A JFIF, ICC or Adobe segment too short for its own header: the decoder ignores it, and
    Pillow's header reader would refuse the whole file for it."""
    marker = segment.marker
    if marker not in (APP0, APP2, APP14):
        return False
    payload = segment.payload  # a copy: never taken of the scan data
    if marker == APP0 and payload.startswith(JFIF_HEADER):
        return len(payload) < JFIF_LENGTH
    if marker == APP2 and payload.startswith(ICC_HEADER):
        return len(payload) < ICC_CHUNK_HEADER_LENGTH
    if marker == APP14 and payload.startswith(ADOBE_HEADER):
        return len(payload) < ADOBE_LENGTH
    return False


def readable_jpeg(content: bytes) -> tuple[bytes, bool, JpegStructure | None]:
    """The JPEG as the decoder reads it: up to EOI, without the bytes it skips or unreadable
    metadata (a prefix of `content` unless the file has either); whether it has its EOI; and
    its structure when what is returned is that prefix (the structure is then the prefix's)."""
    structure = jpeg_structure(content)
    if structure.regular and not any(map(unreadable_metadata, structure.segments)):
        return content[: structure.end], True, structure
    # An unreadable segment becomes an empty comment: gone, yet still a marker where one was (which
    # is what lets the decoder finish a scan in a file that ends without EOI).
    kept = (EMPTY_COMMENT if unreadable_metadata(segment) else segment.raw for segment in structure.segments)
    return b"".join(kept) + structure.cut_short, structure.ends_properly, None
