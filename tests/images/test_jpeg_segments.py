"""JPEGs that the decoder reads whole are accepted, however odd their metadata segments.

Each file here is a real JPEG made with Pillow (several kinds: baseline, progressive, greyscale,
CMYK with its Adobe segment, restart markers, an ICC profile) with segments spliced in the ways
real writers get them wrong. The rule: whatever libjpeg (through Pillow) decodes whole is
accepted; metadata that cannot be parsed is dropped; the stored file shows the same pixels.
"""

from __future__ import annotations

import io
import struct
import warnings

import pytest
from PIL import Image, ImageCms

from imagehost.errors import UndecodableImage
from imagehost.images.inspection import jpeg_structure
from imagehost.images.pipeline import process_upload
from imagehost.images.privacy import orientation_of
from tests.conftest import upload

ORIENTATION = 0x0112
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
FORMATS = ("JPEG", "PNG", "GIF")


def picture(mode: str = "RGB", size: tuple[int, int] = (96, 64)) -> Image.Image:
    gradient = Image.linear_gradient("L").resize(size)
    bands = [gradient.rotate(90 * index, expand=False).resize(size) for index in range(len(mode))]
    return Image.merge(mode, bands) if len(mode) > 1 else gradient


def jpeg(mode: str = "RGB", **options: object) -> bytes:
    buffer = io.BytesIO()
    picture(mode).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


# Real files of several kinds: each splice below is tried on every one.
KINDS = {
    "baseline": jpeg(),
    "progressive": jpeg(progressive=True),
    "greyscale": jpeg("L"),
    "cmyk-adobe": jpeg("CMYK"),
    "restart-markers": jpeg(restart_marker_blocks=1),
    "icc-profile": jpeg(icc_profile=SRGB_PROFILE),
    "subsampled": jpeg(subsampling=2, optimize=True),
}


def segment(marker: int, payload: bytes, length: int | None = None) -> bytes:
    """A segment; `length` overrides the declared length (a writer that miscounted)."""
    declared = len(payload) + 2 if length is None else length
    return bytes((0xFF, marker)) + struct.pack(">H", declared) + payload


def after_soi(content: bytes, *spliced: bytes) -> bytes:
    return content[:2] + b"".join(spliced) + content[2:]


def before_first(marker: int, content: bytes, *spliced: bytes) -> bytes:
    """Spliced in just before the first segment with this marker (e.g. between the tables and the scan)."""
    at = next(segment.raw for segment in jpeg_structure(content).segments if segment.marker == marker)
    index = content.index(at)
    return content[:index] + b"".join(spliced) + content[index:]


def pixels(content: bytes) -> tuple[str, tuple[int, int], bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(content), formats=["JPEG"]) as image:
            image.load()
            return image.mode, image.size, image.tobytes()


def stored(content: bytes, strip: bool = True) -> bytes:
    return process_upload(content, "odd.jpg", FORMATS, 50_000_000, strip, (64,)).content


def photoshop_resource(code: int, data: bytes, declared_size: int | None = None) -> bytes:
    size = len(data) if declared_size is None else declared_size
    return b"8BIM" + struct.pack(">H", code) + b"\x00\x00" + struct.pack(">I", size) + data


PHOTOSHOP = b"Photoshop 3.0\x00"
IPTC = photoshop_resource(0x0404, b"\x1c\x02\x78\x00\x05Paris")  # caption "Paris"
ADOBE = b"Adobe\x00\x64\x00\x00\x00\x00\x01"  # version 100, flags, transform 1 (YCbCr)
JUNK_EXIF = b"Exif\x00\x00" + b"not a TIFF header at all"

# name -> how the file is broken (every one is displayed by browsers and decoded whole by libjpeg)
SPLICES = {
    # A resource block that claims more than the segment holds, and a segment length that stops
    # inside the block: the rest of it lies between segments, where the decoder skips it.
    "photoshop-block-past-its-segment": lambda c: after_soi(
        c, segment(0xED, PHOTOSHOP + photoshop_resource(0x0404, b"\x1c\x02", declared_size=0xFFFF))
    ),
    "photoshop-length-short": lambda c: after_soi(c, segment(0xED, PHOTOSHOP + IPTC, length=len(PHOTOSHOP) + 10 + 2)),
    # Adobe APP14 cut short: by its length (its last bytes left over), or shorter than its header.
    "adobe-length-short": lambda c: after_soi(c, segment(0xEE, ADOBE, length=9)),
    "adobe-shorter-than-its-header": lambda c: after_soi(c, segment(0xEE, b"Adobe\x00")),
    # EXIF whose TIFF header is garbage, counted two bytes short.
    "exif-garbage-length-short": lambda c: after_soi(c, segment(0xE1, JUNK_EXIF, length=len(JUNK_EXIF))),
    # An ICC chunk without its sequence number and count, and one that says it is 1 of 3.
    "icc-chunk-without-count": lambda c: after_soi(c, segment(0xE2, b"ICC_PROFILE\x00")),
    "icc-wrong-count": lambda c: after_soi(c, segment(0xE2, b"ICC_PROFILE\x00\x01\x03" + SRGB_PROFILE[:200])),
    # A JFIF header too short to hold its density.
    "jfif-short": lambda c: after_soi(c, segment(0xE0, b"JFIF\x00\x01")),
    # Comments with a length of 0 or 1 (read as empty), and with stray bytes after them.
    "comment-length-0": lambda c: after_soi(c, b"\xff\xfe\x00\x00"),
    "comment-length-1": lambda c: after_soi(c, b"\xff\xfe\x00\x01"),
    "comment-then-stray-bytes": lambda c: before_first(0xDA, c, segment(0xFE, b"made by hand"), b"\r\n"),
    # FF 00 and fill bytes where a marker should be.
    "stuffed-zero-between-segments": lambda c: before_first(0xDA, c, b"\xff\x00\xff\xff"),
}
# Files that end without EOI: the image data all there, then nothing, or a comment cut short.
WITHOUT_EOI = {
    "nothing": lambda c: c[:-2],
    "comment-cut-short": lambda c: c[:-2] + segment(0xFE, b"trailer", length=200),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("splice", sorted(SPLICES))
def test_a_jpeg_the_decoder_reads_whole_is_accepted_with_the_same_pixels(kind, splice):
    original = SPLICES[splice](KINDS[kind])
    expected = pixels(KINDS[kind])  # what the decoder shows for the file before the splice
    for strip in (True, False):
        result = stored(original, strip)
        assert pixels(result) == expected
        if strip:
            assert jpeg_structure(result).regular


@pytest.mark.parametrize("splice", sorted(SPLICES))
def test_what_cannot_be_parsed_is_gone_from_the_stored_file(splice):
    result = stored(SPLICES[splice](KINDS["baseline"]))
    structure = jpeg_structure(result)
    assert structure.regular  # nothing between segments, and an EOI of its own
    kept = {segment.marker for segment in structure.segments}
    assert not kept & {0xE1, 0xED, 0xFE}  # no EXIF, no Photoshop/IPTC, no comment
    for found in structure.segments:
        if found.marker == 0xEE:
            assert found.payload == ADOBE  # only a whole Adobe segment
        if found.marker == 0xE0:
            assert found.payload.startswith(b"JFIF\x00") and len(found.payload) == 14
    assert b"Paris" not in result and b"made by hand" not in result


def test_an_icc_profile_that_cannot_be_put_together_is_dropped_and_a_whole_one_kept():
    whole = stored(KINDS["icc-profile"])
    with Image.open(io.BytesIO(whole)) as image:
        assert image.info["icc_profile"] == SRGB_PROFILE
    broken = stored(SPLICES["icc-wrong-count"](KINDS["icc-profile"]))
    assert b"ICC_PROFILE" not in broken
    assert pixels(broken) == pixels(KINDS["icc-profile"])


def test_orientation_survives_stray_bytes_and_a_garbage_second_exif():
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    original = after_soi(
        jpeg(exif=exif.tobytes()),
        segment(0xED, PHOTOSHOP + IPTC, length=len(PHOTOSHOP) + 12),
    )
    original = before_first(0xDB, original, segment(0xE1, JUNK_EXIF))
    result = process_upload(original, "turned.jpg", FORMATS, 50_000_000, True, (64,))
    assert orientation_of(result.content) == 6
    assert (result.width, result.height) == (64, 96)  # as displayed: turned a quarter


def decodes_whole(content: bytes) -> bool:
    try:
        pixels(content)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("ending", sorted(WITHOUT_EOI))
def test_a_jpeg_without_eoi_is_judged_by_the_decoder_and_stored_with_one(kind, ending):
    original = WITHOUT_EOI[ending](KINDS[kind])
    if not decodes_whole(original):  # e.g. a progressive file: its last scan needs the end
        with pytest.raises(UndecodableImage):
            stored(original)
        return
    result = stored(original)
    assert result.endswith(b"\xff\xd9") and jpeg_structure(result).regular
    assert pixels(result) == pixels(KINDS[kind])


def test_a_baseline_jpeg_that_ends_after_its_image_data_is_accepted():
    for ending in WITHOUT_EOI.values():
        assert decodes_whole(ending(KINDS["baseline"]))
        assert pixels(stored(ending(KINDS["baseline"]))) == pixels(KINDS["baseline"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_jpeg_cut_inside_its_image_data_is_still_refused(kind):
    content = KINDS[kind]
    for cut in (len(content) // 2, len(content) - 40):
        with pytest.raises(UndecodableImage):
            stored(content[:cut])


def test_the_upload_route_accepts_one_and_stores_it_stripped(client, settings):
    original = SPLICES["adobe-length-short"](SPLICES["photoshop-length-short"](KINDS["cmyk-adobe"]))
    response = upload(client, original, "scan.jpg")
    assert response.status_code == 201, response.text
    kept = (settings.images_dir / response.json()["filename"]).read_bytes()
    assert pixels(kept) == pixels(KINDS["cmyk-adobe"])
    assert b"Photoshop" not in kept and jpeg_structure(kept).regular


def test_a_camera_jpeg_with_more_pictures_is_a_jpeg_of_its_first_picture(client, settings):
    first, second = picture(), picture().transpose(Image.Transpose.ROTATE_180)
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second], quality=90)
    original = buffer.getvalue()  # opens in Pillow as MPO: the first picture, its MPF index, the second
    response = upload(client, original, "3d.jpg")
    assert response.status_code == 201, response.text
    kept = (settings.images_dir / response.json()["filename"]).read_bytes()
    with Image.open(io.BytesIO(kept)) as image:
        assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
    with Image.open(io.BytesIO(original)) as image:
        assert pixels(kept) == (image.mode, image.size, image.tobytes())  # the first picture
    assert len(kept) < len(original) / 2 and b"MPF\x00" not in kept


def test_a_camera_jpeg_kept_with_its_metadata_is_still_a_jpeg_to_the_consistency_check(make_client, settings):
    from imagehost.images.storage import ImageStore
    from imagehost.ops.consistency.scan import examine

    buffer = io.BytesIO()
    picture().save(buffer, "MPO", save_all=True, append_images=[picture().rotate(90)])
    client = make_client(strip_metadata=False)
    name = upload(client, buffer.getvalue(), "3d.jpg").json()["filename"]
    (found,) = examine(ImageStore(settings.images_dir), [{"stored_name": name}], ())
    assert found.exists and found.file_format == "JPEG"
