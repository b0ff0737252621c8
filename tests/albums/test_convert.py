"""ZIP_CONVERT_FORMATS: a shop archive's WebP, BMP and TIFF photos are refused with the reason by
default, and with the setting on converted in the workers to PNG or JPEG and stored like any upload."""

from __future__ import annotations

import io
import random

from PIL import Image as PILImage

from imagehost.images import formats
from imagehost.images.pipeline import webp_is_lossless
from tests.albums.test_upload import send
from tests.albums.zips import make_zip
from tests.conftest import run_sql


def encoded(fmt: str, mode: str = "RGB", size: tuple[int, int] = (64, 48), **options) -> bytes:
    picture = PILImage.new(mode, size, (200, 40, 90, 128)[: len(mode)] if mode != "RGB" else (200, 40, 90))
    for x in range(0, size[0], 4):  # some structure, so lossy and lossless differ
        picture.putpixel(
            (x, x * size[1] // size[0]), (10, 220, 30, 255)[: len(mode)] if mode != "RGB" else (10, 220, 30)
        )
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


ENTRIES = [
    ("Shop/SKU1/lossy.webp", encoded("WEBP", quality=80)),
    ("Shop/SKU1/exact.webp", encoded("WEBP", lossless=True)),
    ("Shop/SKU2/scan.bmp", encoded("BMP")),
    ("Shop/SKU2/print.tif", encoded("TIFF")),
    ("Shop/SKU3/clear.tiff", encoded("TIFF", mode="RGBA")),
    ("Shop/SKU3/ok.png", encoded("PNG")),
]


def stored(settings) -> list[tuple]:
    return [
        tuple(row)
        for row in run_sql(
            settings.database_url,
            "SELECT original_name, file_format, source_format, width, height FROM images ORDER BY original_name",
        )
    ]


def test_by_default_webp_bmp_and_tiff_entries_are_refused_with_the_reason(client, settings):
    response = send(client, make_zip(ENTRIES))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["stored"], body["refused"]) == (1, 5)
    refused = [item for item in body["results"] if item["status"] == "refused"]
    assert all("JPEG, PNG" in item["error"] for item in refused), refused
    assert [row[0] for row in stored(settings)] == ["ok.png"]


def test_with_the_setting_they_are_converted_and_stored_like_uploads(make_client, settings, app_log):
    client = make_client(zip_convert_formats=True)
    response = send(client, make_zip(ENTRIES))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["stored"], body["refused"]) == (6, 0), body
    assert stored(settings) == [
        ("clear.png", "PNG", "TIFF", 64, 48),  # transparency kept
        ("exact.png", "PNG", "WEBP", 64, 48),  # lossless stays lossless
        ("lossy.jpg", "JPEG", "WEBP", 64, 48),  # a lossy photo stays a JPEG
        ("ok.png", "PNG", None, 64, 48),
        ("print.png", "PNG", "TIFF", 64, 48),
        ("scan.png", "PNG", "BMP", 64, 48),
    ]
    by_entry = {item["entry"]: item for item in body["results"]}
    served = client.get("/images/" + by_entry["Shop/SKU3/clear.tiff"]["filename"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    with PILImage.open(io.BytesIO(served.content)) as picture:
        assert picture.mode == "RGBA" and picture.getpixel((1, 1))[3] == 128
    assert any("converted from TIFF" in line for line in app_log())


def test_converted_entries_keep_every_check(make_client, settings):
    client = make_client(zip_convert_formats=True, max_pixels=10_000)
    damaged = encoded("TIFF")[:60]
    noise = PILImage.frombytes("RGB", (200, 100), random.Random(7).randbytes(200 * 100 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "BMP")
    huge = buffer.getvalue()  # does not compress: refused for its pixels, not its ratio
    response = send(
        client, make_zip([("Shop/A/cut.tif", damaged), ("Shop/A/huge.bmp", huge), ("Shop/A/ok.png", encoded("PNG"))])
    )
    body = response.json()
    results = {item["entry"]: item for item in body["results"]}
    assert results["Shop/A/cut.tif"]["status"] == "refused", results
    assert results["Shop/A/huge.bmp"]["status"] == "refused" and "20,000" in results["Shop/A/huge.bmp"]["error"]
    assert results["Shop/A/ok.png"]["status"] == "stored"
    assert [row[0] for row in stored(settings)] == ["ok.png"]


def test_single_uploads_never_convert(make_client, settings):
    client = make_client(zip_convert_formats=True)
    response = client.post(
        "/upload", files={"file": ("a.webp", encoded("WEBP"))}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 415
    assert stored(settings) == []


def test_the_webp_kind_is_read_from_its_chunks():
    assert webp_is_lossless(encoded("WEBP", lossless=True))
    assert not webp_is_lossless(encoded("WEBP", quality=70))
    assert not webp_is_lossless(b"RIFF\x00\x00\x00\x00WEBP")


def test_both_tiff_byte_orders_are_recognised():
    assert formats.TIFF.starts(b"II*\x00\x08\x00\x00\x00") and formats.TIFF.starts(b"MM\x00*\x00\x00\x00\x08")
    assert not formats.TIFF.starts(b"MM*\x00") and formats.sniffed(b"MM\x00*", formats.STORED_NAMES) is None
