"""The JPEG segment walker against the decoder: never stricter than Pillow, never a crash.

Real JPEGs made with Pillow get metadata segments spliced in, with lengths right and wrong,
stray bytes and fill between segments, their own segments mutated and their end cut off.
Whenever Pillow decodes the result whole, the upload pipeline must accept it and store a file
that decodes to the same pixels; whenever the pipeline refuses, it is with a domain error that
answers 4xx, never an exception of another kind.
"""

from __future__ import annotations

import io
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagehost.errors import ImageHostError
from imagehost.images.inspection import jpeg_structure
from imagehost.images.pipeline import process_upload
from imagehost.web.errors import status_of
from tests.fuzz.target import Draw, app_segment, flip_bits, set_integer, splice_segment, truncate

FORMATS = ("JPEG", "PNG", "GIF")
MAX_PIXELS = 2_000_000


def _jpeg(mode: str, **options: object) -> bytes:
    gradient = Image.linear_gradient("L").resize((40, 24))
    image = Image.merge(mode, [gradient.rotate(90 * index).resize((40, 24)) for index in range(len(mode))])
    buffer = io.BytesIO()
    (image if len(mode) > 1 else gradient).save(buffer, "JPEG", quality=85, **options)
    return buffer.getvalue()


ORIENTATION_6 = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
# A minimal EXIF block: orientation 6.
ORIENTATION_6 = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
BASES = (
    _jpeg("RGB"),
    _jpeg("RGB", progressive=True),
    _jpeg("L"),
    _jpeg("CMYK"),
    _jpeg("RGB", restart_marker_blocks=1, subsampling=0),
    _jpeg("RGB", exif=ORIENTATION_6),
)


def _mpo() -> bytes:
    """Two pictures in one file, as cameras write them (opens as MPO: the first is the JPEG)."""
    first = Image.linear_gradient("L").resize((40, 24)).convert("RGB")
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[first.rotate(180)])
    return buffer.getvalue()


BASES = (*BASES, _mpo())


def mutate_own_segment(draw: Draw, content: bytes) -> bytes:
    """A flipped bit or an edge-value integer inside one of the file's own APPn/COM segments."""
    try:
        walked = jpeg_structure(content).segments
    except ValueError:
        return content
    segments = [found for found in walked if 0xE0 <= found.marker <= 0xEF or found.marker == 0xFE]
    if not segments:
        return content
    raw = draw(st.sampled_from(segments)).raw
    at = content.index(raw)
    mutated = draw(st.sampled_from((flip_bits, set_integer)))(draw, raw)
    return content[:at] + mutated + content[at + len(raw) :]


def without_end(draw: Draw, content: bytes) -> bytes:
    """EOI gone, maybe with a segment after the image data instead; now and then cut anywhere."""
    if draw(st.integers(0, 4)) == 0:
        return truncate(draw, content)
    ending = draw(st.sampled_from((b"", b"\xff\xfe\x00\x40cut", b"junk")))
    return content[:-2] + (app_segment(draw) if ending == b"junk" else ending)


@st.composite
def odd_jpegs(draw: Draw) -> bytes:
    content = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 4))):
        mutation = draw(st.sampled_from((splice_segment, splice_segment, splice_segment, mutate_own_segment)))
        content = mutation(draw, content)
    if draw(st.integers(0, 5)) == 0:
        content = without_end(draw, content)
    return content


def pillow_pixels(content: bytes) -> tuple | None:
    """What Pillow decodes from the whole file, or None when it cannot."""
    try:
        with Image.open(io.BytesIO(content), formats=["JPEG"]) as image:
            image.load()
            return image.mode, image.size, image.tobytes()
    except Exception:
        return None


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(odd_jpegs())
def test_the_pipeline_accepts_what_pillow_decodes_and_refuses_only_with_4xx(content):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about every damaged EXIF block
        expected = pillow_pixels(content)
        try:
            result = process_upload(content, "fuzz.jpg", FORMATS, MAX_PIXELS, True, (16,))
        except ImageHostError as refusal:
            assert 400 <= status_of(refusal) < 500, f"{type(refusal).__name__} answers {status_of(refusal)}"
            assert expected is None, f"Pillow decodes it whole, the pipeline refused: {refusal!r}"
            return
        assert result.file_format == "JPEG"
        stored = pillow_pixels(result.content)
        assert stored is not None, "the stored file does not decode"
        if expected is not None:
            assert stored == expected, "the stored file shows other pixels"
        assert jpeg_structure(result.content).regular, "the stored file has stray bytes or no EOI"
