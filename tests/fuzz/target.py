"""The fuzz target: the whole image pipeline, bytes in, a stored image or a typed refusal out.

`check(content)` returns when both entry points (upload and conversion API) either refuse the
bytes with an ImageHostError or produce an image that holds up; anything else raises. The
inputs come from `fuzz_inputs()`: files of the shared corpus, mutated the ways that break
image parsers, and now and then plain random bytes.
"""

from __future__ import annotations

import io
import signal
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st
from PIL import Image, ImageSequence

from imagehost.errors import ImageHostError
from imagehost.images.pipeline import ProcessedImage, convert_for_api, process_upload
from imagehost.images.privacy import orientation_of, strip_metadata

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
UPLOAD_FORMATS = ("JPEG", "PNG", "GIF")
# Small on purpose (the service's default is 50,000,000): no input that passes can take long.
MAX_PIXELS = 2_000_000
UPLOAD_THUMBNAILS = (160, 480)
API_QUALITY, API_BOX, API_THUMBNAILS = 85, (300, None), (160,)
ORIENTATION = 0x0112
TIME_LIMIT = 10  # seconds for one entry point on one input; longer is a hang


class PipelineHang(Exception):
    """An entry point ran past TIME_LIMIT on one input."""


def check(content: bytes, time_limit: int = TIME_LIMIT) -> None:
    """Run both pipeline entry points on `content`; raise unless each gives a sound image or a typed refusal."""
    with time_guard(time_limit, "process_upload"):
        upload = refused_or(process_upload, content, "fuzz.bin", UPLOAD_FORMATS, MAX_PIXELS, True, UPLOAD_THUMBNAILS)
        if upload is not None:
            check_upload(upload)
    with time_guard(time_limit, "convert_for_api"):
        converted = refused_or(convert_for_api, content, "fuzz.bin", MAX_PIXELS, API_QUALITY, API_BOX, API_THUMBNAILS)
        if converted is not None:
            check_conversion(converted)


def refused_or(entry_point: Callable[..., ProcessedImage], *args: object) -> ProcessedImage | None:
    """The entry point's result, or None when it refused with a domain error (every other exception passes)."""
    try:
        return entry_point(*args)
    except ImageHostError:
        return None


def check_upload(result: ProcessedImage) -> None:
    assert result.file_format in UPLOAD_FORMATS, result.file_format
    width, height = fully_decoded(result.content, result.file_format)
    # The stored file, shown upright by a browser, has the dimensions recorded for it.
    upright = (height, width) if orientation_of(result.content) in {5, 6, 7, 8} else (width, height)
    assert upright == (result.width, result.height), f"stored {upright}, recorded {(result.width, result.height)}"
    assert strip_metadata(result.content, result.file_format) == result.content, "stripping again changes the file"
    check_thumbnails(result, UPLOAD_THUMBNAILS)


def check_conversion(result: ProcessedImage) -> None:
    assert result.file_format == "JPEG", result.file_format
    assert fully_decoded(result.content, "JPEG") == (result.width, result.height)
    assert result.width <= API_BOX[0], f"{result.width} px wide, the box is {API_BOX[0]}"
    check_thumbnails(result, API_THUMBNAILS)


def check_thumbnails(result: ProcessedImage, sizes: tuple[int, ...]) -> None:
    # Every size smaller than the image is made; a larger one may be left to the original.
    smaller = {size for size in sizes if size < max(result.width, result.height)}
    assert smaller <= set(result.thumbnails) <= set(sizes), sorted(result.thumbnails)
    for size, content in result.thumbnails.items():
        width, height = fully_decoded(content, "WEBP")
        assert max(width, height) <= size, f"{size} px thumbnail is {width}x{height}"


def fully_decoded(content: bytes, file_format: str) -> tuple[int, int]:
    """Size of `content` opened by Pillow as `file_format`, once every frame decoded.

    The size is the one on opening, which is what the pipeline records: Pillow widens a GIF's
    canvas later for a frame that reaches past the logical screen.
    """
    with Image.open(io.BytesIO(content), formats=[file_format]) as image:
        assert image.format == file_format, f"{file_format} result opens as {image.format}"
        size = image.size
        for frame in ImageSequence.Iterator(image):
            frame.load()
        return size


@contextmanager
def time_guard(seconds: int, what: str) -> Iterator[None]:
    """Raise PipelineHang in the block after `seconds` (main thread only: that is where signals go)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise PipelineHang(f"{what} still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- inputs -------------------------------------------------------------------------------------


def corpus_files() -> list[Path]:
    """Every file of the shared corpus's folders (accepted, other-formats, malformed, hostile)."""
    return sorted(path for path in CORPUS.glob("*/*") if path.is_file())


def made_seeds() -> list[bytes]:
    """What the corpus lacks within MAX_PIXELS: an animated GIF, an APNG, EXIF orientation in PNG, progressive JPEG."""
    frames = [Image.new("P", (40, 30), colour) for colour in (1, 2, 3)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)
    rgba = [frame.convert("RGBA") for frame in frames]
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    files = (
        (frames[0], "GIF", {"save_all": True, "append_images": frames[1:], "transparency": 0, "comment": b"fuzz"}),
        (rgba[0], "PNG", {"save_all": True, "append_images": rgba[1:], "duration": 50}),
        (rgba[0], "PNG", {"exif": exif.tobytes()}),
        (rgba[0].convert("RGB"), "JPEG", {"exif": exif.tobytes(), "progressive": True, "comment": b"fuzz"}),
    )
    made = []
    for image, file_format, options in files:
        buffer = io.BytesIO()
        image.save(buffer, file_format, **options)
        made.append(buffer.getvalue())
    return made


SEEDS = [path.read_bytes() for path in corpus_files()] + made_seeds()
# Real images get past the first checks to the decoders, the stripper and the thumbnails.
IMAGE_SEEDS = [seed for seed in SEEDS if seed.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM"))]
# Lengths, sizes and counts at the edges: what header parsers get wrong.
INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)

Draw = Callable[[st.SearchStrategy], object]


def _offset(draw: Draw, content: bytes) -> int:
    return draw(st.integers(0, max(len(content) - 1, 0)))


def _slice(draw: Draw, content: bytes) -> tuple[int, int]:
    start = _offset(draw, content)
    return start, start + draw(st.integers(1, 512))


def flip_bits(draw: Draw, content: bytes) -> bytes:
    if not content:
        return content
    mutated = bytearray(content)
    for _ in range(draw(st.integers(1, 8))):
        mutated[_offset(draw, content)] ^= 1 << draw(st.integers(0, 7))
    return bytes(mutated)


def overwrite(draw: Draw, content: bytes) -> bytes:
    start = _offset(draw, content)
    noise = draw(st.binary(min_size=1, max_size=64))
    return content[:start] + noise + content[start + len(noise) :]


def truncate(draw: Draw, content: bytes) -> bytes:
    return content[: _offset(draw, content)]


def cut(draw: Draw, content: bytes) -> bytes:
    start, end = _slice(draw, content)
    return content[:start] + content[end:]


def duplicate(draw: Draw, content: bytes) -> bytes:
    start, end = _slice(draw, content)
    return content[:end] + content[start:end] + content[end:]


def insert(draw: Draw, content: bytes) -> bytes:
    start = _offset(draw, content)
    return content[:start] + draw(st.binary(min_size=1, max_size=64)) + content[start:]


def splice(draw: Draw, content: bytes) -> bytes:
    """The head of this file, the tail of another (frames, chunks or segments from elsewhere)."""
    other = draw(st.sampled_from(SEEDS))
    return content[: _offset(draw, content)] + other[_offset(draw, other) :]


def set_integer(draw: Draw, content: bytes) -> bytes:
    """A 2- or 4-byte integer (big-endian for PNG and JPEG, little-endian for GIF) set to an edge value."""
    fmt = draw(st.sampled_from((">H", ">I", "<H", "<I")))
    size = struct.calcsize(fmt)
    if len(content) < size:
        return content
    start = draw(st.integers(0, len(content) - size))
    value = draw(st.sampled_from(INTERESTING)) & (0xFFFF if size == 2 else 0xFFFFFFFF)
    return content[:start] + struct.pack(fmt, value) + content[start + size :]


# Payload openings of the metadata segments real writers produce (and get wrong).
SEGMENT_HEADERS = (
    b"",
    b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01",
    b"JFXX\x00",
    b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08",
    b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00",
    b"Exif\x00\x00",
    b"http://ns.adobe.com/xap/1.0/\x00",
    b"ICC_PROFILE\x00\x01\x01",
    b"ICC_PROFILE\x00",
    b"MPF\x00MM\x00\x2a\x00\x00\x00\x08",
    b"Photoshop 3.0\x008BIM\x04\x04\x00\x00",
    b"Adobe\x00\x64\x00\x00\x00\x00\x01",
    b"Adobe",
)
APP_MARKERS = (*range(0xE0, 0xF0), 0xFE)  # APP0 to APP15, COM


def _jpeg_boundaries(content: bytes) -> list[int]:
    """Offsets between whole segments (outside scan data) of a JPEG, or [] for anything else."""
    from imagehost.images.inspection import jpeg_structure

    try:
        structure = jpeg_structure(content)
    except (ValueError, IndexError, struct.error):
        return []
    boundaries, position = [], 0
    for found in structure.segments:
        position = content.find(found.raw, position) + len(found.raw)
        boundaries.append(position)
    return boundaries[:-1] if structure.ends_properly else boundaries


def app_segment(draw: Draw) -> bytes:
    """An APPn or COM segment whose payload opens like real metadata, declared length right or wrong."""
    payload = draw(st.sampled_from(SEGMENT_HEADERS)) + draw(st.binary(max_size=48))
    length = len(payload) + 2 + draw(st.sampled_from((0, 0, 0, -1, -2, -5, 1, 3)))
    if draw(st.integers(0, 9)) == 0:
        length = draw(st.sampled_from((0, 1, 2)))
    return bytes((0xFF, draw(st.sampled_from(APP_MARKERS)))) + struct.pack(">H", length & 0xFFFF) + payload


def splice_segment(draw: Draw, content: bytes) -> bytes:
    """Between two segments of a JPEG: a metadata segment, stray bytes, or FF 00 / fill bytes."""
    boundaries = _jpeg_boundaries(content)
    if not boundaries:
        return content
    at = draw(st.sampled_from(boundaries))
    kind = draw(st.integers(0, 3))
    if kind < 2:
        spliced = app_segment(draw)
    elif kind == 2:
        spliced = draw(st.binary(min_size=1, max_size=8))
    else:
        spliced = draw(st.sampled_from((b"\xff\x00", b"\xff\xff", b"\r\n", b"\x00")))
    return content[:at] + spliced + content[at:]


MUTATIONS = (flip_bits, set_integer, overwrite, truncate, cut, duplicate, insert, splice, splice_segment)


@st.composite
def fuzz_inputs(draw: Draw) -> bytes:
    """A seed with 1 to 4 mutations (three times in four an image); one time in ten, random bytes instead."""
    choice = draw(st.integers(0, 9))
    if choice == 9:
        return draw(st.binary(max_size=4096))
    content = draw(st.sampled_from(IMAGE_SEEDS if choice < 7 else SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        content = draw(st.sampled_from(MUTATIONS))(draw, content)
    return content
