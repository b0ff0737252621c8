"""The image formats the service knows: the one list every other list of formats is made from.

The stored-name pattern, the upload page's `accept`, the content types of direct links, the
parsers Pillow may use, the settings' default and the consistency check all come from here;
nginx.conf cannot import it, so tests/images/test_formats.py holds nginx.conf to it. Plain data,
no Pillow import: settings and the store read it too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    name: str  # Pillow's format name, as in ALLOWED_FORMATS and the `file_format` column: JPEG
    extension: str  # of stored names, without the dot: jpg
    content_type: str  # what direct links are served as
    pillow_plugin: str  # the PIL module whose parser reads it: JpegImagePlugin
    magic: tuple[tuple[int, bytes], ...]  # (offset, bytes): all of them are there in a file of this format
    stored: bool  # uploads keep it as it is; the others are only read (by the conversion API)
    name_extensions: tuple[str, ...] = ()  # other extensions people give such files: jpeg, jfif
    opened_as: tuple[str, ...] = ()  # other names Pillow gives files of this format: MPO for JPEG
    other_magic: tuple[tuple[tuple[int, bytes], ...], ...] = ()  # more signatures, any one will do: TIFF's byte orders

    def starts(self, head: bytes) -> bool:
        """Whether `head` (the first MAGIC_LENGTH bytes of a file, or more) has this format's magic bytes."""
        return any(
            all(head[offset : offset + len(magic)] == magic for offset, magic in signature)
            for signature in (self.magic, *self.other_magic)
        )


MAGIC_LENGTH = 12  # bytes of a file's head that every magic check below fits in

# A camera's JPEG with more pictures after its EOI (MPF: previews, the other eye) opens as MPO:
# browsers show the first picture, and only that one is kept.
JPEG = ImageFormat(
    "JPEG", "jpg", "image/jpeg", "JpegImagePlugin", ((0, b"\xff\xd8\xff"),), True, ("jpeg", "jpe", "jfif"), ("MPO",)
)
PNG = ImageFormat("PNG", "png", "image/png", "PngImagePlugin", ((0, b"\x89PNG\r\n\x1a\n"),), True)
GIF = ImageFormat("GIF", "gif", "image/gif", "GifImagePlugin", ((0, b"GIF8"),), True)  # GIF87a, GIF89a
# The conversion API reads these too, and stores what it makes from them as JPEG.
WEBP = ImageFormat("WEBP", "webp", "image/webp", "WebPImagePlugin", ((0, b"RIFF"), (8, b"WEBP")), False)
BMP = ImageFormat("BMP", "bmp", "image/bmp", "BmpImagePlugin", ((0, b"BM"),), False)
# Read only from ZIP archives, and only with ZIP_CONVERT_FORMATS on (shop archives hold them).
TIFF = ImageFormat(
    "TIFF", "tif", "image/tiff", "TiffImagePlugin", ((0, b"II*\x00"),), False, ("tiff",), (), (((0, b"MM\x00*"),),)
)

FORMATS: tuple[ImageFormat, ...] = (JPEG, PNG, GIF, WEBP, BMP, TIFF)
STORED: tuple[ImageFormat, ...] = tuple(image_format for image_format in FORMATS if image_format.stored)
BY_NAME = {image_format.name: image_format for image_format in FORMATS}
STORED_NAMES: tuple[str, ...] = tuple(image_format.name for image_format in STORED)  # JPEG, PNG, GIF
# What the conversion API reads (and stores as JPEG).
CONVERTIBLE_NAMES: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
# What a ZIP's entries may be in besides the stored formats when ZIP_CONVERT_FORMATS is on: they
# are converted to PNG or JPEG in the isolated workers, then checked like any upload.
ARCHIVE_CONVERTIBLE_NAMES: tuple[str, ...] = ("WEBP", "BMP", "TIFF")
# For regular expressions: "jpg|png|gif".
STORED_EXTENSION_PATTERN = "|".join(image_format.extension for image_format in STORED)


def stored_format(name: str) -> ImageFormat:
    """The stored format called `name` (Pillow's name); KeyError for any other."""
    image_format = BY_NAME[name]
    if not image_format.stored:
        raise KeyError(name)
    return image_format


def stored_format_of_extension(extension: str) -> ImageFormat | None:
    """The stored format whose stored names end in `extension` ("jpg", no dot), if any."""
    return next((image_format for image_format in STORED if image_format.extension == extension), None)


def named_by_pillow(pillow_name: str) -> str:
    """The registry's name for what Pillow calls `pillow_name` (JPEG for MPO); unknown names unchanged."""
    return next((image_format.name for image_format in FORMATS if pillow_name in image_format.opened_as), pillow_name)


def sniffed(head: bytes, names: tuple[str, ...] = STORED_NAMES) -> ImageFormat | None:
    """The format among `names` whose magic bytes `head` starts with, if any."""
    return next((BY_NAME[name] for name in names if name in BY_NAME and BY_NAME[name].starts(head)), None)


def accept_attribute(names: tuple[str, ...]) -> str:
    """The file picker's `accept` for these formats: "image/jpeg,image/png,image/gif"."""
    return ",".join(BY_NAME[name].content_type for name in names)
