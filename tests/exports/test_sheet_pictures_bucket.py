"""`with_thumbnails=1` on the catalogue XLSX with STORAGE=s3: the pictures are made from the stored
WebP thumbnails read from the bucket (moto's S3 server, tests/s3server.py), each in its own row, with
the same rules as the folder's (only our own WebP, not larger than its size); a bucket that is down
costs a 503, not a sheet without pictures."""

# ruff: noqa: F811

from __future__ import annotations

import io
import os
import zipfile

import pytest
from PIL import Image

from tests.conftest import png_bytes, upload
from tests.exports.shop import JSON, workbook
from tests.exports.test_thumbnails import COLOURS, catalogue_of_colours, close, pictures_by_row
from tests.s3server import s3_server  # noqa: F401

SHEET = "/export/images.xlsx"


@pytest.fixture
def bucket_client(make_client, s3_server):
    s3 = s3_server.boto3_client()
    for found in s3.list_objects_v2(Bucket=s3_server.bucket).get("Contents", []):
        s3.delete_object(Bucket=s3_server.bucket, Key=found["Key"])
    return make_client(**s3_server.changes(), thumbnail_sizes=(160, 480), export_thumbnail_rows=3)


def media(content: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return sorted(name for name in archive.namelist() if name.startswith("xl/media/"))


def test_the_sheet_with_pictures_opens_with_each_rows_own_picture(bucket_client, settings):
    catalogue_of_colours(bucket_client)
    answer = bucket_client.get(SHEET, params={"with_thumbnails": "1"}, headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-export-thumbnail-rows"] == "3" and answer.headers["x-export-thumbnails-omitted"] == "1"
    assert len(media(answer.content)) == 3  # one picture for each of the first three rows
    book = workbook(answer.content)
    assert book.worksheets[0]["A1"].value == "Thumbnail"
    pictures = pictures_by_row(book.worksheets[0])
    assert sorted(pictures) == [2, 3, 4]
    for row, colour in pictures.items():
        assert close(colour, COLOURS[row - 2]), (row, colour)
    assert "first 3 rows" in book["Notes"]["A1"].value
    assert list(settings.images_dir.rglob("*.webp")) == []  # read from the bucket, nothing on the disk


def test_only_our_own_webp_thumbnails_from_the_bucket_become_pictures(make_client, s3_server):
    s3 = s3_server.boto3_client()
    for found in s3.list_objects_v2(Bucket=s3_server.bucket).get("Contents", []):
        s3.delete_object(Bucket=s3_server.bucket, Key=found["Key"])
    client = make_client(**s3_server.changes(), thumbnail_sizes=(160, 480))
    stored = catalogue_of_colours(client)
    bucket = s3_server.bucket
    # A PNG where a WebP thumbnail was; a WebP larger than the size it claims; more bytes than any
    # 160 px thumbnail could take (never read whole); and one gone.
    s3.put_object(Bucket=bucket, Key=f"thumbs/160/{stored[0]}.webp", Body=png_bytes(160, 120, (0, 0, 0)))
    big = io.BytesIO()
    Image.new("RGB", (2000, 1500), (0, 0, 0)).save(big, "WEBP")
    s3.put_object(Bucket=bucket, Key=f"thumbs/160/{stored[1]}.webp", Body=big.getvalue())
    s3.put_object(Bucket=bucket, Key=f"thumbs/160/{stored[2]}.webp", Body=b"RIFF" + os.urandom(400_000))
    s3.delete_object(Bucket=bucket, Key=f"thumbs/160/{stored[3]}.webp")
    fine = upload(client, png_bytes(400, 300, COLOURS[0]), name="fine.png").json()["filename"]
    answer = client.get(SHEET, params={"with_thumbnails": "1"}, headers=JSON)
    assert answer.status_code == 200, answer.text
    pictures = pictures_by_row(workbook(answer.content).worksheets[0])
    assert sorted(pictures) == [6] and close(pictures[6], COLOURS[0])
    assert len(media(answer.content)) == 1
    files = client.app.state.image_service.files
    assert client.blocking_portal.call(files.read_thumbnail, 160, stored[2]) is None  # past the limit: not read
    assert client.blocking_portal.call(files.read_thumbnail, 160, fine)[8:12] == b"WEBP"


def test_a_bucket_that_is_down_costs_a_503_and_the_next_sheet_is_whole(bucket_client, s3_server):
    catalogue_of_colours(bucket_client)
    with s3_server.stopped():
        refused = bucket_client.get(SHEET, params={"with_thumbnails": "1"}, headers=JSON)
    assert refused.status_code == 503, refused.text
    assert "image store is not available" in refused.json()["error"]
    answer = bucket_client.get(SHEET, params={"with_thumbnails": "1"}, headers=JSON)
    assert answer.status_code == 200 and len(media(answer.content)) == 3  # the export slot was given back
