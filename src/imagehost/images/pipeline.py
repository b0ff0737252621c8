"""The CPU-bound work on one image, run inside an isolated worker process (see workers.py).

Each upload is decoded once: the decode that validates the file also feeds the thumbnails.
Plain functions of bytes and numbers, so they pickle to a worker and can be fuzzed directly.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from PIL import Image

from imagehost.errors import TooManyPixels, UndecodableImage
from imagehost.images import formats
from imagehost.images.inspection import decode_checked

API_FORMATS = formats.CONVERTIBLE_NAMES  # what the conversion API reads
JPEG_MAX_SIDE = 65_500  # libjpeg writes no longer side
THUMBNAIL_QUALITY = 80
# Chosen by measurement (issue 18): on a 12-MP JPEG's three thumbnails, WebP method 2 instead of 4
# took 130 instead of 198 ms for files within 1-3 % of the size, and a reducing gap of 2 instead
# of 3 cut the resizes by a further ~15 % with no visible difference at these sizes.
THUMBNAIL_METHOD = 2
THUMBNAIL_REDUCING_GAP = 2.0
# The largest thumbnail is cut from the decoded picture (a 12-MP JPEG: 2000 x 1500 after the reduced-
# scale decode) with bicubic: 33 instead of 45 ms for 1280 px, and no further from a full-size
# Lanczos reference (50.2 dB PSNR on a photo, 49.8 against Lanczos's 49.0 on a test card). The
# smaller ones, cut from it, keep Lanczos: chained bicubic blurred a test card's 160 px to 45 dB.
FIRST_RESAMPLING = Image.Resampling.BICUBIC
THEN_RESAMPLING = Image.Resampling.LANCZOS
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose does).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ProcessedImage:
    file_format: str  # what is stored: JPEG, PNG or GIF
    width: int  # as displayed, EXIF orientation applied
    height: int
    content: bytes  # the bytes to store
    sha256: str  # of `content`, hex (taken here, in the worker, off the app's event loop)
    thumbnails: dict[int, bytes] = field(default_factory=dict)  # long side in px -> WebP
    source_format: str | None = None  # conversion API: the format it was given
    quality: int | None = None  # conversion API: the JPEG quality used


def upright(image: Image.Image, orientation: int) -> Image.Image:
    method = UPRIGHT.get(orientation)
    return image.transpose(method) if method is not None else image


def sizes_below(sizes: tuple[int, ...], width: int, height: int) -> tuple[int, ...]:
    """The thumbnail sizes worth making: smaller than the image's long side. A size at or above it
    would only re-encode the whole image; links to it use the original instead (see Links)."""
    return tuple(size for size in sizes if size < max(width, height))


def make_thumbnails(image: Image.Image, sizes: tuple[int, ...]) -> dict[int, bytes]:
    """WebP thumbnails, each made from the next larger one (cheaper than from the full image).

    They carry no metadata: nothing but the pixels is passed to the encoder.
    """
    if not sizes:
        return {}
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)
    current = image.convert("RGBA" if has_alpha else "RGB")
    thumbnails: dict[int, bytes] = {}
    resampling = FIRST_RESAMPLING
    for size in sorted(sizes, reverse=True):
        current.thumbnail((size, size), resampling, reducing_gap=THUMBNAIL_REDUCING_GAP)
        resampling = THEN_RESAMPLING
        buffer = io.BytesIO()
        current.save(buffer, "WEBP", quality=THUMBNAIL_QUALITY, method=THUMBNAIL_METHOD)
        thumbnails[size] = buffer.getvalue()
    return thumbnails


def process_upload(
    content: bytes,
    filename: str,
    allowed: tuple[str, ...],
    max_pixels: int,
    strip: bool,
    thumbnail_sizes: tuple[int, ...],
    convert_from: tuple[str, ...] = (),
    max_bytes: int | None = None,
) -> ProcessedImage:
    """Validate, cut trailing bytes, strip metadata, make thumbnails. Raises domain errors.

    A file in one of `convert_from` (a ZIP entry with ZIP_CONVERT_FORMATS: WebP, BMP, TIFF) is first
    converted to PNG or JPEG (see `converted`), and what that makes is then checked like any upload."""
    from imagehost.images.privacy import strip_metadata

    source_format = None
    if convert_from and formats.sniffed(content[: formats.MAGIC_LENGTH], convert_from) is not None:
        source_format, content = converted(content, filename, convert_from, max_pixels, max_bytes)
    decoded = decode_checked(
        content, filename, allowed, max_pixels, draft_to=max(thumbnail_sizes) if thumbnail_sizes else None
    )
    facts = decoded.facts
    # What was decoded is what is stored: bytes after the format's end marker are not image, and
    # neither are the bytes a JPEG decoder skips; they are never stored or served.
    stored = decoded.content
    if strip:
        try:
            stored = strip_metadata(stored, facts.file_format, decoded.orientation, decoded.jpeg)
        except ValueError:
            raise UndecodableImage(filename=filename) from None
        if (facts.file_format == "GIF" and len(stored) != facts.logical_size) or not decoded.ends_properly:
            # Pillow's GIF decoder reads on past a frame's last data block, so a damaged frame can
            # borrow the bytes of a block that stripping dropped; a JPEG that lacked its EOI got
            # one: check that what is stored decodes.
            decode_checked(stored, filename, allowed, max_pixels)
    shown = upright(decoded.first_frame, decoded.orientation)
    width, height = (facts.height, facts.width) if decoded.orientation in {5, 6, 7, 8} else (facts.width, facts.height)
    return ProcessedImage(
        file_format=facts.file_format,
        width=width,
        height=height,
        content=stored,
        sha256=hashlib.sha256(stored).hexdigest(),
        thumbnails=make_thumbnails(shown, sizes_below(thumbnail_sizes, width, height)),
        source_format=source_format,
    )


# Photos in these come lossy already; a PNG of them would only be larger.
LOSSY_SOURCES = {"WEBP"}
CONVERTED_JPEG_QUALITY = 92


def converted(
    content: bytes, filename: str, readable: tuple[str, ...], max_pixels: int, max_bytes: int | None
) -> tuple[str, bytes]:
    """(the source format, a PNG or JPEG of its first picture, upright). PNG keeps transparency and
    lossless sources (BMP, TIFF, lossless WebP) exact; a lossy WebP, or a lossless picture whose
    PNG would not fit in `max_bytes`, becomes a JPEG. Metadata is not carried over."""
    decoded = decode_checked(content, filename, readable, max_pixels, all_frames=False)
    source = decoded.facts.file_format
    image = upright(decoded.first_frame, decoded.orientation)
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)
    lossless = source not in LOSSY_SOURCES or webp_is_lossless(decoded.content)
    if has_alpha or lossless:
        buffer = io.BytesIO()
        image.convert("RGBA" if has_alpha else "RGB").save(buffer, "PNG", optimize=False, compress_level=6)
        if has_alpha or max_bytes is None or buffer.tell() <= max_bytes:
            return source, buffer.getvalue()
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=CONVERTED_JPEG_QUALITY, optimize=True)
    return source, buffer.getvalue()


def webp_is_lossless(content: bytes) -> bool:
    """Whether the WebP's picture is VP8L (lossless) rather than VP8 (lossy): its RIFF chunks, walked."""
    offset = 12
    while offset + 8 <= len(content):
        fourcc, size = content[offset : offset + 4], int.from_bytes(content[offset + 4 : offset + 8], "little")
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        offset += 8 + size + (size & 1)
    return False


def convert_for_api(
    content: bytes,
    filename: str,
    max_pixels: int,
    quality: int,
    box: tuple[int | None, int | None],
    thumbnail_sizes: tuple[int, ...],
) -> ProcessedImage:
    """The conversion API: any accepted input -> a progressive, optimized JPEG fitted into `box`."""
    wanted = max((side for side in box if side), default=None)
    decoded = decode_checked(content, filename, API_FORMATS, max_pixels, draft_to=wanted, all_frames=False)
    image = upright(decoded.first_frame, decoded.orientation)
    width, height = fitted(image.size, box)
    # Scaling up can ask for far more pixels than the file had, or a side longer than JPEG allows.
    if width * height > max_pixels:
        raise TooManyPixels(filename=filename, pixels=f"{width * height:,}", limit=f"{max_pixels:,}")
    if max(width, height) > JPEG_MAX_SIDE:
        raise TooManyPixels(
            filename=filename, pixels=f"{width:,} x {height:,}", limit=f"{JPEG_MAX_SIDE:,} x {JPEG_MAX_SIDE:,}"
        )
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    else:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
    content = buffer.getvalue()
    return ProcessedImage(
        file_format="JPEG",
        width=image.width,
        height=image.height,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        thumbnails=make_thumbnails(image, sizes_below(thumbnail_sizes, image.width, image.height)),
        source_format=decoded.facts.file_format,
        quality=quality,
    )


def fitted(size: tuple[int, int], box: tuple[int | None, int | None]) -> tuple[int, int]:
    """`size` scaled to fit `box`, proportions kept, at least 1 px a side; a side left out does not limit."""
    if not (box[0] or box[1]):
        return size
    scale = min(side / length for side, length in zip(box, size, strict=True) if side)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def thumbnails_for_stored(
    content: bytes, stored_name: str, max_pixels: int, sizes: tuple[int, ...]
) -> dict[int, bytes]:
    """Thumbnails for a file already in the store (the regenerate command)."""
    decoded = decode_checked(content, stored_name, formats.STORED_NAMES, max_pixels, draft_to=max(sizes))
    facts = decoded.facts
    return make_thumbnails(
        upright(decoded.first_frame, decoded.orientation), sizes_below(sizes, facts.width, facts.height)
    )
