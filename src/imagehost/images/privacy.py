"""Remove location and camera metadata from an accepted image without re-encoding its pixels.

Whole JPEG segments, PNG chunks and GIF blocks are dropped; everything kept is copied byte for
byte, so the decoded pixels cannot change. What is kept is what changes how the pixels look
(colour profiles, transparency, gamma, animation) and the EXIF orientation, which browsers
apply: it survives as a new EXIF block holding that one tag. Anything after the format's end
marker is dropped too.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from PIL import Image

from imagehost.images import formats
from imagehost.images.inspection import (
    ADOBE_HEADER,
    ADOBE_LENGTH,
    APP0,
    APP1,
    APP2,
    APP14,
    COM,
    EXIF_HEADER,
    ICC_CHUNK_HEADER_LENGTH,
    ICC_HEADER,
    JFIF_HEADER,
    JFIF_LENGTH,
    JpegSegment,
    JpegStructure,
    jpeg_structure,
)

ORIENTATION = 0x0112  # the EXIF tag; 1 means "as stored"
EOI_MARKER = b"\xff\xd9"

# --- JPEG ---------------------------------------------------------------------------------------
# Walked by inspection.jpeg_structure, the walker that also finds where the image ends.


def _is_exif(segment: JpegSegment) -> bool:
    return segment.marker == APP1 and segment.payload.startswith(EXIF_HEADER)


def _kept_jpeg_segment(segment: JpegSegment, icc_whole: bool) -> JpegSegment | None:
    """The segment as it should be written, or None to drop it."""
    marker = segment.marker
    if not (0xE0 <= marker <= 0xEF or marker == COM):
        return segment  # tables, frame and scan headers, scan data, restart markers
    payload = segment.payload  # a copy: never taken of the scan data
    if marker == APP0:
        is_jfif = payload.startswith(JFIF_HEADER) and len(payload) >= JFIF_LENGTH
        return _jfif_without_thumbnail(segment) if is_jfif else None
    if marker == APP2:
        return segment if icc_whole and payload.startswith(ICC_HEADER) else None
    if marker == APP14:
        return segment if payload.startswith(ADOBE_HEADER) and len(payload) >= ADOBE_LENGTH else None
    return None  # EXIF, XMP, IPTC, MPF, FlashPix, JUMBF, comments...


def _icc_profile_whole(segments: Iterable[JpegSegment]) -> bool:
    """Whether the ICC chunks make one profile: numbered 1 to n, each saying n. A profile that
    cannot be put together is metadata that cannot be parsed: it is dropped (Pillow ignores it too)."""
    chunks = [segment.payload for segment in segments if segment.marker == APP2]
    chunks = [chunk for chunk in chunks if chunk.startswith(ICC_HEADER)]
    if any(len(chunk) < ICC_CHUNK_HEADER_LENGTH for chunk in chunks):
        return False
    count = len(chunks)
    sequence, counts = len(ICC_HEADER), len(ICC_HEADER) + 1
    numbers = sorted(chunk[sequence] for chunk in chunks)
    return numbers == list(range(1, count + 1)) and all(chunk[counts] == count for chunk in chunks)


def _jfif_without_thumbnail(segment: JpegSegment) -> JpegSegment:
    # A JFIF thumbnail is a second picture, possibly of what was cropped away: keep only the header.
    payload = segment.payload
    if len(payload) == JFIF_LENGTH and payload[12:14] == b"\x00\x00":
        return segment
    return _jpeg_segment(APP0, payload[:12] + b"\x00\x00")


def _jpeg_segment(marker: int, payload: bytes) -> JpegSegment:
    return JpegSegment(marker, bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload)


def _first_exif(segments: Iterable[JpegSegment]) -> bytes | None:
    # Like browsers, only the first EXIF segment counts.
    return next((segment.payload for segment in segments if _is_exif(segment)), None)


def _strip_jpeg(content: bytes, orientation: int | None, structure: JpegStructure | None = None) -> bytes:
    structure = structure or jpeg_structure(content)
    segments = structure.segments
    icc_whole = _icc_profile_whole(segments)
    kept = [kept for kept in (_kept_jpeg_segment(segment, icc_whole) for segment in segments) if kept is not None]
    if orientation is None:
        orientation = _orientation_in(_first_exif(segments))
    if orientation != 1:
        after_header = 2 if len(kept) > 1 and kept[1].marker == APP0 else 1  # right after SOI and JFIF
        kept.insert(after_header, _jpeg_segment(APP1, EXIF_HEADER + _orientation_only_tiff(orientation)))
    # A file that ends without EOI (its image data all there: it decoded) gets one; a segment it
    # ends inside of is gone with the rest of what follows the image data.
    end_marker = b"" if structure.ends_properly else EOI_MARKER
    return b"".join(segment.raw for segment in kept) + end_marker


def _jpeg_orientation(content: bytes) -> int:
    return _orientation_in(_first_exif(jpeg_structure(content).segments))


# --- PNG ----------------------------------------------------------------------------------------

PNG_SIGNATURE = formats.PNG.magic[0][1]
# Critical chunks, and the ancillary ones that change how the pixels look or animate.
PNG_KEPT = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
    | {b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCV", b"cLLI", b"bKGD", b"pHYs"}
    | {b"acTL", b"fcTL", b"fdAT"}
)


class PngChunk(NamedTuple):
    chunk_type: bytes
    raw: bytes  # length, type, data and CRC

    @property
    def data(self) -> bytes:
        return self.raw[8:-4]


def _png_chunks(content: bytes) -> Iterator[PngChunk]:
    """Walk from the first chunk to IEND (inclusive)."""
    if not content.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG: no signature")
    position = len(PNG_SIGNATURE)
    while True:
        start = position
        (length,) = struct.unpack(">I", content[position : position + 4])
        chunk_type = content[position + 4 : position + 8]
        position += 12 + length
        if position > len(content):
            raise ValueError("PNG chunk runs past the end")
        if not chunk_type.isalpha():
            raise ValueError("not a PNG chunk type")
        yield PngChunk(chunk_type, content[start:position])
        if chunk_type == b"IEND":
            return


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def _is_critical(chunk_type: bytes) -> bool:
    return chunk_type[:1].isupper()


def _first_exif_chunk(chunks: Iterable[PngChunk]) -> bytes | None:
    return next((chunk.data for chunk in chunks if chunk.chunk_type == b"eXIf"), None)


def _strip_png(content: bytes, orientation: int | None) -> bytes:
    chunks = list(_png_chunks(content))
    kept: list[bytes] = []
    for chunk in chunks:
        if chunk.chunk_type in PNG_KEPT:
            kept.append(chunk.raw)
        elif _is_critical(chunk.chunk_type):
            # A decoder must refuse it, so its meaning is unknown: neither copy nor drop it blindly.
            raise ValueError(f"unknown critical PNG chunk {chunk.chunk_type!r}")
    if orientation is None:
        orientation = _orientation_in(_first_exif_chunk(chunks))
    if orientation != 1:
        # eXIf must come before the first IDAT; right after IHDR always is.
        kept.insert(1, _png_chunk(b"eXIf", _orientation_only_tiff(orientation)))
    return PNG_SIGNATURE + b"".join(kept)


def _png_orientation(content: bytes) -> int:
    return _orientation_in(_first_exif_chunk(_png_chunks(content)))


# --- GIF ----------------------------------------------------------------------------------------

GIF_EXTENSION, GIF_IMAGE, GIF_TRAILER = 0x21, 0x2C, 0x3B
GRAPHIC_CONTROL, APPLICATION = 0xF9, 0xFF
# Looping, and the colour profile (the GIF form of an ICC profile, as in JPEG and PNG).
GIF_APPLICATIONS_KEPT = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})


def _colour_table_size(flags: int) -> int:
    return 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0


def _sub_blocks_end(content: bytes, position: int) -> int:
    """Index just after a chain of data sub-blocks, which a zero-length one ends."""
    while True:
        size = content[position]
        position += 1 + size
        if position > len(content):
            raise ValueError("GIF data block runs past the end")
        if size == 0:
            return position


def _kept_gif_extension(block: bytes) -> bool:
    label = block[1]
    if label == GRAPHIC_CONTROL:
        return True
    if label == APPLICATION:
        size = block[2]
        return block[3 : 3 + size] in GIF_APPLICATIONS_KEPT
    return False  # comments, plain text (which no browser draws) and unknown labels


def _strip_gif(content: bytes, orientation: int | None = None) -> bytes:
    """GIF has no EXIF: `orientation` is ignored."""
    if content[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF: no signature")
    position = 13 + _colour_table_size(content[10])  # header, logical screen, global colour table
    if position > len(content):
        raise ValueError("GIF header runs past the end")
    kept = [content[:position]]
    while True:
        start = position
        introducer = content[position]
        if introducer == GIF_TRAILER:
            kept.append(content[start : start + 1])
            return b"".join(kept)
        if introducer == GIF_EXTENSION:
            position = _sub_blocks_end(content, position + 2)
            block = content[start:position]
            if _kept_gif_extension(block):
                kept.append(block)
        elif introducer == GIF_IMAGE:
            # descriptor, local colour table, LZW code size, then the image data
            position += 10 + _colour_table_size(content[position + 9]) + 1
            position = _sub_blocks_end(content, position)
            kept.append(content[start:position])
        else:
            raise ValueError(f"unknown GIF block {introducer:#04x}")


# --- orientation --------------------------------------------------------------------------------


def _orientation_in(exif: bytes | None) -> int:
    """The orientation an EXIF payload (TIFF, with or without the JPEG "Exif" header) asks for."""
    if not exif:
        return 1
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        value = parsed.get(ORIENTATION, 1)
    except Exception:  # damaged EXIF: browsers ignore it, and it is being dropped anyway
        return 1
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def _orientation_only_tiff(orientation: int) -> bytes:
    """A TIFF structure with one IFD holding only the orientation tag (the body of an EXIF block)."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    # Pillow prefixes the JPEG "Exif" header; PNG's eXIf wants the bare TIFF.
    return exif.tobytes().removeprefix(EXIF_HEADER)


# --- public -------------------------------------------------------------------------------------

STRIPPERS: dict[str, Callable[[bytes, int | None], bytes]] = {"JPEG": _strip_jpeg, "PNG": _strip_png, "GIF": _strip_gif}
ORIENTATION_READERS: dict[str, Callable[[bytes], int]] = {
    "JPEG": _jpeg_orientation,
    "PNG": _png_orientation,
    "GIF": lambda content: 1,  # GIF has no EXIF
}


def strip_metadata(
    content: bytes, file_format: str, orientation: int | None = None, jpeg: JpegStructure | None = None
) -> bytes:
    """The same image without location, camera or text metadata; `file_format` is Pillow's name.

    `content` must already be a validated image cut at its logical end. The orientation written
    back is `orientation` when given (the upload's, as the decoder read it, so that what is stored
    agrees with the dimensions recorded), else the file's own. Metadata that cannot be parsed is
    dropped. Raises ValueError when the structure cannot be walked. Byte copying only. `jpeg`: the
    JPEG's structure, already walked by the decoding check (DecodedImage.jpeg), for `content` itself.
    """
    stripper = STRIPPERS.get(file_format)
    if stripper is None:
        raise ValueError(f"cannot strip metadata from {file_format!r}")
    if orientation is not None and not 1 <= orientation <= 8:
        orientation = 1
    try:
        if jpeg is not None and file_format == "JPEG":
            return _strip_jpeg(content, orientation, jpeg)
        return stripper(content, orientation)
    except (IndexError, struct.error):  # reading past the end of a truncated structure
        raise ValueError(f"damaged {file_format} structure") from None


def orientation_of(content: bytes) -> int:
    """The EXIF orientation (1 to 8) of a JPEG, PNG or GIF; 1 when it has none."""
    image_format = formats.sniffed(content)
    if image_format is None:
        raise ValueError("not a JPEG, PNG or GIF")
    try:
        return ORIENTATION_READERS[image_format.name](content)
    except (IndexError, struct.error):
        raise ValueError(f"damaged {image_format.name} structure") from None
