"""Metadata stripping: what goes, what stays, and that not one pixel changes."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from imagehost.images.privacy import orientation_of, strip_metadata
from tests.conftest import CORPUS

ORIENTATION, MAKE, MODEL, DATETIME, GPS_IFD, EXIF_IFD = 0x0112, 0x010F, 0x0110, 0x0132, 0x8825, 0x8769
ACCEPTED = sorted((CORPUS / "accepted").iterdir())
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def opened(content: bytes) -> Image.Image:
    return Image.open(io.BytesIO(content), formats=["JPEG", "PNG", "GIF"])


def decoded(content: bytes) -> list[tuple]:
    """Every frame as Pillow decodes it, with what decides its colours."""
    with opened(content) as image:
        return [
            (frame.mode, frame.size, frame.tobytes(), frame.getpalette(), frame.info.get("transparency"))
            for frame in ImageSequence.Iterator(image)
        ]


def stripped(content: bytes) -> bytes:
    with opened(content) as image:
        file_format = image.format
    return strip_metadata(content, file_format)


def corpus(path: str) -> bytes:
    return (CORPUS / path).read_bytes()


def photo(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    image = Image.linear_gradient("L").resize(size).convert(mode)
    return Image.merge(mode, [band.rotate(90 * index) for index, band in enumerate(image.split())])


def camera_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "Canon"
    exif[MODEL] = "Canon PowerShot S40"
    exif[DATETIME] = "2003:12:14 12:01:44"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def insert_after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def png_chunk_types(content: bytes) -> list[bytes]:
    types, position = [], 8
    while position < len(content):
        (length,) = struct.unpack(">I", content[position : position + 4])
        types.append(content[position + 4 : position + 8])
        position += 12 + length
    return types


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def insert_before_iend(png: bytes, *chunks: bytes) -> bytes:
    assert png.endswith(png_chunk(b"IEND", b""))
    return png[:-12] + b"".join(chunks) + png[-12:]


# --- every accepted file --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ACCEPTED, ids=lambda path: path.name)
def test_every_accepted_file_keeps_its_pixels_and_stripping_twice_changes_nothing(path):
    original = path.read_bytes()
    once = stripped(original)
    assert decoded(once) == decoded(original)
    assert len(once) <= len(original)
    assert stripped(once) == once


# --- JPEG -----------------------------------------------------------------------------------------


def test_jpeg_loses_gps_camera_exif_and_keeps_its_pixels():
    original = corpus("accepted/exif_gps.jpg")
    assert GPS_IFD in opened(original).getexif()
    result = stripped(original)
    with opened(result) as image:
        assert dict(image.getexif()) == {}
        assert not image.getexif().get_ifd(GPS_IFD)
        assert "exif" not in image.info
        assert "comment" not in image.info
        assert [marker for marker, _ in image.applist] == ["APP0"]
    assert b"http://ns.adobe.com/xap" not in result
    assert decoded(result) == decoded(original)
    assert len(result) < len(original)


@pytest.mark.parametrize("orientation", [3, 6])
def test_jpeg_keeps_only_its_orientation(orientation):
    original = corpus(f"accepted/hopper_orientation_{orientation}.jpg")
    result = stripped(original)
    with opened(result) as image:
        assert dict(image.getexif()) == {ORIENTATION: orientation}
        assert [marker for marker, _ in image.applist] == ["APP0", "APP1"]  # EXIF right after JFIF
        transposed = ImageOps.exif_transpose(image)
    with opened(original) as image:
        assert transposed.tobytes() == ImageOps.exif_transpose(image).tobytes()
    assert orientation_of(result) == orientation_of(original) == orientation


def test_jpeg_camera_exif_with_orientation_keeps_the_orientation_alone():
    original = insert_after_soi(
        _jpeg(exif=camera_exif(orientation=8)), jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")
    )
    result = stripped(original)
    with opened(result) as image:
        assert dict(image.getexif()) == {ORIENTATION: 8}
        assert not image.getexif().get_ifd(GPS_IFD)
    assert b"Canon" not in result and b"xap" not in result
    assert decoded(result) == decoded(original)


def test_jpeg_orientation_1_or_nonsense_is_not_written_back():
    for orientation in (1, 0, 9):
        result = stripped(_jpeg(exif=camera_exif(orientation=orientation)))
        assert dict(opened(result).getexif()) == {}
        assert orientation_of(result) == 1


def _jpeg(**options: object) -> bytes:
    buffer = io.BytesIO()
    photo(mode=str(options.pop("mode", "RGB"))).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def test_jpeg_icc_profile_survives_while_exif_and_comment_go():
    original = _jpeg(icc_profile=SRGB_PROFILE, exif=camera_exif(), comment=b"shot at home")
    result = stripped(original)
    with opened(result) as image:
        assert image.info["icc_profile"] == SRGB_PROFILE
        assert "comment" not in image.info
        assert dict(image.getexif()) == {}
    assert b"shot at home" not in result
    assert decoded(result) == decoded(original)


def test_jpeg_icc_profile_split_over_several_segments_survives_whole():
    profile = SRGB_PROFILE * (150_000 // len(SRGB_PROFILE) + 1)  # more than two 64 KB segments
    original = _jpeg(icc_profile=profile, exif=camera_exif())
    assert [marker for marker, _ in opened(original).applist].count("APP2") == 3
    result = stripped(original)
    assert opened(result).info["icc_profile"] == profile
    assert decoded(result) == decoded(original)


@pytest.mark.filterwarnings("ignore:.*(EXIF|MPO):UserWarning")  # Pillow reading the made-up MPF segment
def test_jpeg_drops_every_other_application_segment_and_keeps_adobe_colour_transform():
    original = insert_after_soi(
        _jpeg(mode="CMYK", icc_profile=SRGB_PROFILE),  # Pillow writes an Adobe APP14 for CMYK
        jpeg_segment(0xE0, b"JFXX\x00\x10thumbnail"),
        jpeg_segment(0xE2, b"MPF\x00II*\x00secondary image"),
        jpeg_segment(0xE2, b"FPXR\x00\x00flashpix"),
        jpeg_segment(0xE3, b"Meta\x00kodak"),
        jpeg_segment(0xEB, b"JP\x00\x00JUMBF content credentials"),
        jpeg_segment(0xEC, b"Ducky\x00\x00"),
        jpeg_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04iptc caption"),
        jpeg_segment(0xEE, b"NotAdobe"),
        jpeg_segment(0xEF, b"app15"),
        jpeg_segment(0xFE, b"a comment"),
    )
    result = stripped(original)
    with opened(result) as image:
        assert [(marker, payload[:5]) for marker, payload in image.applist] == [("APP14", b"Adobe"), ("APP2", b"ICC_P")]
        assert image.mode == "CMYK"
        assert image.info["icc_profile"] == SRGB_PROFILE
    for secret in (b"thumbnail", b"secondary", b"flashpix", b"kodak", b"credentials", b"Ducky", b"iptc", b"app15"):
        assert secret not in result
    assert decoded(result) == decoded(original)


def test_jpeg_segments_between_progressive_scans_are_stripped_too():
    original = _jpeg(progressive=True, exif=camera_exif())
    second_scan = original.index(b"\xff\xda", original.index(b"\xff\xda") + 2)
    original = original[:second_scan] + jpeg_segment(0xFE, b"between scans") + original[second_scan:]
    result = stripped(original)
    assert b"between scans" not in result
    assert result.count(b"\xff\xda") == original.count(b"\xff\xda")
    assert decoded(result) == decoded(original)


def test_jpeg_restart_markers_are_copied():
    original = _jpeg(restart_marker_blocks=1, comment=b"gone")
    assert b"\xff\xd0" in original
    result = stripped(original)
    assert b"gone" not in result
    assert decoded(result) == decoded(original)


def test_jfif_thumbnail_is_dropped_and_its_header_kept():
    thumbnail = bytes(range(6))  # 2 x 1 RGB pixels
    jfif = b"JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x02\x01" + thumbnail
    plain = _jpeg()
    end_of_app0 = 4 + struct.unpack(">H", plain[4:6])[0]
    original = plain[:2] + jpeg_segment(0xE0, jfif) + plain[end_of_app0:]
    result = stripped(original)
    assert opened(result).applist == [("APP0", jfif[:12] + b"\x00\x00")]
    assert opened(result).info["dpi"] == opened(original).info["dpi"]
    assert decoded(result) == decoded(original)


def test_php_in_a_jpeg_comment_is_gone():
    original = corpus("hostile/jpeg-php-comment.jpg")
    result = strip_metadata(original, "JPEG")
    assert b"<?php" not in result
    assert decoded(result) == decoded(original)


# --- PNG ------------------------------------------------------------------------------------------


def _png_with_everything(orientation: int | None = 6) -> bytes:
    text = PngInfo()
    text.add_text("Comment", "taken at 48.8N 2.3E")
    text.add_text("Author", "someone", zip=True)
    text.add_itxt("Description", "the garden", lang="en", tkey="Beschreibung")
    text.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 12, 30, 0))
    text.add(b"gAMA", struct.pack(">I", 45455))
    buffer = io.BytesIO()
    photo().save(buffer, "PNG", pnginfo=text, exif=camera_exif(orientation), icc_profile=SRGB_PROFILE, dpi=(72, 72))
    return insert_before_iend(buffer.getvalue(), png_chunk(b"prVt", b"private ancillary data"))


def test_png_text_time_exif_and_unknown_chunks_go_colour_chunks_stay():
    original = _png_with_everything(orientation=None)
    assert {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf", b"prVt"} <= set(png_chunk_types(original))
    result = stripped(original)
    assert png_chunk_types(result) == [b"IHDR", b"iCCP", b"gAMA", b"pHYs", b"IDAT", b"IEND"]
    with opened(result) as image:
        assert image.info["icc_profile"] == SRGB_PROFILE
        assert not image.text
        assert dict(image.getexif()) == {}
    for secret in (b"48.8N", b"Canon", b"garden", b"private"):
        assert secret not in result
    assert decoded(result) == decoded(original)


def test_png_keeps_only_its_orientation_in_a_new_exif_chunk():
    original = _png_with_everything(orientation=6)
    result = stripped(original)
    assert png_chunk_types(result)[:2] == [b"IHDR", b"eXIf"]
    with opened(result) as image:  # Pillow checks the chunk's CRC here
        assert dict(image.getexif()) == {ORIENTATION: 6}
        transposed = ImageOps.exif_transpose(image)
    with opened(original) as image:
        assert transposed.tobytes() == ImageOps.exif_transpose(image).tobytes()
    assert orientation_of(result) == 6
    assert stripped(result) == result


def test_transparent_png_keeps_its_transparency():
    original = corpus("accepted/transparent.png")
    result = stripped(original)
    with opened(result) as image:
        assert image.mode == "RGBA"
        assert image.getextrema()[3][0] < 255
    assert decoded(result) == decoded(original)


def test_palette_png_keeps_its_trns_chunk():
    buffer = io.BytesIO()
    photo().convert("P").save(buffer, "PNG", transparency=0, pnginfo=_text("Comment", "gone"))
    original = buffer.getvalue()
    result = stripped(original)
    assert b"tRNS" in png_chunk_types(result) and b"tEXt" not in png_chunk_types(result)
    assert opened(result).info["transparency"] == 0
    assert decoded(result) == decoded(original)


def _text(key: str, value: str) -> PngInfo:
    text = PngInfo()
    text.add_text(key, value)
    return text


def test_animated_png_keeps_its_frames_and_timing():
    frames = [photo().rotate(angle) for angle in (0, 90, 180)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "PNG", save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=2,
        pnginfo=_text("Comment", "gone"),
    )  # fmt: skip
    original = buffer.getvalue()
    result = stripped(original)
    assert b"tEXt" not in png_chunk_types(result)
    assert {b"acTL", b"fcTL", b"fdAT"} <= set(png_chunk_types(result))
    with opened(result) as image:
        assert image.n_frames == 3 and image.info["loop"] == 2
        assert [frame.info["duration"] for frame in ImageSequence.Iterator(image)] == [100, 200, 300]
    assert decoded(result) == decoded(original)


def test_png_with_an_unknown_critical_chunk_is_refused():
    original = insert_before_iend(corpus("accepted/hopper.png"), png_chunk(b"CgBI", b"\x00" * 4))
    with pytest.raises(ValueError, match="critical"):
        strip_metadata(original, "PNG")


# --- GIF ------------------------------------------------------------------------------------------


def gif_extension(label: int, *sub_blocks: bytes) -> bytes:
    return bytes((0x21, label)) + b"".join(bytes((len(block),)) + block for block in sub_blocks) + b"\x00"


def _gif(**options: object) -> bytes:
    buffer = io.BytesIO()
    photo().convert("P").save(buffer, "GIF", **options)
    return buffer.getvalue()


def test_gif_comment_is_gone():
    original = _gif(comment=b"made at home")
    assert opened(original).info["comment"] == b"made at home"
    result = stripped(original)
    assert b"made at home" not in result
    assert "comment" not in opened(result).info
    assert decoded(result) == decoded(original)


def test_gif_drops_xmp_and_plain_text_and_keeps_looping_and_colour_profile():
    original = _gif(loop=0, comment=b"x")
    first_image = original.index(b"\x2c", original.index(b"NETSCAPE2.0"))
    extensions = (
        gif_extension(0xFF, b"XMP DataXMP", b"<x:xmpmeta>GPS</x:xmpmeta>"),
        gif_extension(0xFF, b"ICCRGBG1012", SRGB_PROFILE[:200], SRGB_PROFILE[200:400]),
        gif_extension(0x01, bytes(12), b"plain text"),
        gif_extension(0xFE, b"second comment"),
    )
    original = original[:first_image] + b"".join(extensions) + original[first_image:]
    result = stripped(original)
    assert b"xmpmeta" not in result and b"plain text" not in result and b"second comment" not in result
    assert extensions[1] in result and b"NETSCAPE2.0" in result
    assert opened(result).info["loop"] == 0
    assert decoded(result) == decoded(original)


def test_animated_gif_keeps_frames_durations_and_loop():
    original = corpus("accepted/iss634.gif")
    result = stripped(original)
    with opened(original) as before, opened(result) as after:
        assert after.n_frames == before.n_frames > 1
        assert after.info["loop"] == before.info["loop"]
        assert [frame.info["duration"] for frame in ImageSequence.Iterator(after)] == [
            frame.info["duration"] for frame in ImageSequence.Iterator(before)
        ]
    assert decoded(result) == decoded(original)


def test_plain_gif_keeps_its_pixels():
    original = corpus("accepted/hopper.gif")
    result = stripped(original)
    assert "comment" not in opened(result).info
    assert decoded(result) == decoded(original)


# --- what cannot be walked ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "file_format"),
    [
        (
            _jpeg()[: _jpeg().index(b"\xff\xda")],
            "JPEG",
        ),  # no image data (a file cut in its scan is the decoder's to judge)
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),  # segment longer than the file
        (b"\xff\xd8\x00\x00", "JPEG"),
        (b"not a jpeg", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00", "PNG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "PNG"),  # no chunk type
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x2c", "GIF"),  # truncated image descriptor
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x99", "GIF"),  # unknown block
        (b"", "GIF"),
        (b"RIFF....WEBP", "WEBP"),
    ],
)
def test_structures_that_cannot_be_walked_raise_value_error(content, file_format):
    with pytest.raises(ValueError):
        strip_metadata(content, file_format)


def test_png_without_iend_raises_value_error():
    original = corpus("accepted/hopper.png")
    with pytest.raises(ValueError):
        strip_metadata(original[:-12], "PNG")


def test_orientation_of():
    assert orientation_of(corpus("accepted/hopper_orientation_6.jpg")) == 6
    assert orientation_of(corpus("accepted/hopper.jpg")) == 1
    assert orientation_of(corpus("accepted/hopper.png")) == 1
    assert orientation_of(corpus("accepted/iss634.gif")) == 1
    assert orientation_of(_png_with_everything(orientation=3)) == 3
    with pytest.raises(ValueError):
        orientation_of(b"<svg/>")


@pytest.mark.parametrize("path", [path for path in ACCEPTED if path.suffix == ".jpg"], ids=lambda path: path.name)
def test_stripping_with_the_checks_walk_of_a_jpeg_gives_what_a_walk_of_its_own_does(path):
    # The upload check walks a JPEG's segments to find its end; stripping reuses that walk.
    from imagehost.images.inspection import readable_jpeg

    readable, _ends_properly, structure = readable_jpeg(path.read_bytes())
    assert structure is not None and structure.end == len(readable)
    for orientation in (None, 1, 6):
        assert strip_metadata(readable, "JPEG", orientation, structure) == strip_metadata(readable, "JPEG", orientation)
