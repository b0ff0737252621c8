"""STORAGE=s3 through the app, against a real S3 API (moto's server mode, tests/s3server.py): uploads
land in the bucket and nothing in IMAGES_DIR, the app serves and downloads them from it, deletes take
them away; a bucket that is down costs a 503 and a /ready that says why, never a lost image; what a
crash leaves is settled by the rows."""

# ruff: noqa: F811

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from tests.conftest import png_bytes, run_sql, upload
from tests.s3server import s3_server  # noqa: F401

SIZES = (160, 480)


@pytest.fixture
def bucket_client(make_client, s3_server, settings):
    """An app storing in the bucket; the bucket emptied first (the server is shared by the module)."""
    s3 = s3_server.boto3_client()
    for found in s3.list_objects_v2(Bucket=s3_server.bucket).get("Contents", []):
        s3.delete_object(Bucket=s3_server.bucket, Key=found["Key"])
    return make_client(**s3_server.changes(), thumbnail_sizes=SIZES)


def keys(s3_server) -> set[str]:
    listed = s3_server.boto3_client().list_objects_v2(Bucket=s3_server.bucket).get("Contents", [])
    return {found["Key"] for found in listed}


def files_under(folder) -> list[str]:
    """What the app left in IMAGES_DIR besides its own hidden folders (the staging area)."""
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file() and ".staging" not in path.parts
    )


def test_an_upload_lives_in_the_bucket_and_is_served_downloaded_and_deleted_from_it(bucket_client, s3_server, settings):
    content = png_bytes(600, 400)
    answer = upload(bucket_client, content, "shop photo.png")
    assert answer.status_code == 201, answer.text
    stored = answer.json()["filename"]
    assert keys(s3_server) == {stored, f"thumbs/160/{stored}.webp", f"thumbs/480/{stored}.webp"}
    assert files_under(settings.images_dir) == []  # nothing of it on the local disk
    in_bucket = s3_server.boto3_client().get_object(Bucket=s3_server.bucket, Key=stored)["Body"].read()
    row = run_sql(settings.database_url, "SELECT sha256, size_bytes FROM images")[0]
    assert hashlib.sha256(in_bucket).hexdigest() == row["sha256"] and len(in_bucket) == row["size_bytes"]

    direct = bucket_client.get(f"/images/{stored}")
    assert direct.status_code == 200 and direct.content == in_bucket
    assert direct.headers["x-content-type-options"] == "nosniff" and direct.headers["content-type"] == "image/png"
    assert direct.headers["content-length"] == str(len(in_bucket))
    thumbnail = bucket_client.get(f"/images/thumbs/160/{stored}.webp")
    assert thumbnail.status_code == 200 and thumbnail.content[:4] == b"RIFF"
    assert bucket_client.get(f"/images/thumbs/1280/{stored}.webp").status_code == 404  # no such size stored

    image_id = answer.json()["id"]
    download = bucket_client.get(f"/download/{image_id}")
    assert download.status_code == 200 and download.content == in_bucket
    assert "shop photo.png" in download.headers["content-disposition"]

    deleted = bucket_client.delete(answer.json()["delete_url"].replace("http://testserver.local", ""))
    assert deleted.status_code == 200, deleted.text
    assert keys(s3_server) == set()
    assert bucket_client.get(f"/images/{stored}").status_code == 404
    assert run_sql(settings.database_url, "SELECT count(*) FROM pending_objects")[0][0] == 0


def test_a_bucket_that_is_down_costs_a_503_and_loses_nothing(bucket_client, s3_server, settings):
    first = upload(bucket_client, png_bytes(300, 200))
    assert first.status_code == 201
    with s3_server.stopped():
        refused = upload(bucket_client, png_bytes(300, 201), headers={"Accept": "application/json"})
        assert refused.status_code == 503, refused.text
        assert "image store is not available" in refused.json()["error"]
        ready = bucket_client.get("/ready")
        assert ready.status_code == 503 and "connection refused" in ready.text
        assert bucket_client.get(f"/images/{first.json()['filename']}").status_code == 503
    # Nothing half-stored: one row, and the first image's objects are all there.
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 1
    assert bucket_client.get("/ready").status_code == 200
    again = upload(bucket_client, png_bytes(300, 202))
    assert again.status_code == 201
    assert bucket_client.get(f"/images/{first.json()['filename']}").status_code == 200


def test_what_a_crash_left_in_flight_is_settled_by_the_rows(bucket_client, s3_server, settings):
    kept = upload(bucket_client, png_bytes(300, 200)).json()["filename"]
    service = bucket_client.app.state.image_service
    files = service.files
    orphan = "OrphanOrphanOrphanOrph.png"

    async def crash_leftovers() -> None:
        # An upload that died after writing its objects, before its row (no row), and one whose row
        # committed but whose record was never removed (a lost COMMIT answer).
        await files.write_provisional(orphan, png_bytes(10, 10), {160: b"RIFFthumb"})
        await files.write_provisional(kept, b"same bytes again", {})

    portal = bucket_client.blocking_portal
    portal.call(crash_leftovers)
    assert {orphan, f"thumbs/160/{orphan}.webp"} <= keys(s3_server)
    assert portal.call(service.finish_interrupted) == 0  # too young: their writers may still be at work
    run_sql(settings.database_url, "UPDATE pending_objects SET started_at = now() - interval '1 hour'")
    assert portal.call(service.finish_interrupted) == 2
    assert orphan not in keys(s3_server) and f"thumbs/160/{orphan}.webp" not in keys(s3_server)
    assert kept in keys(s3_server)
    assert run_sql(settings.database_url, "SELECT count(*) FROM pending_objects")[0][0] == 0
    assert files.settle_after == timedelta(minutes=10)


def test_the_consistency_check_compares_the_bucket_with_the_table(bucket_client, s3_server, settings, monkeypatch):
    from imagehost.ops.consistency import check, run_check

    monkeypatch.setattr(check, "RECENT_SECONDS", -5)  # every object old enough to be judged
    stored = [upload(bucket_client, png_bytes(300 + n, 200)).json()["filename"] for n in range(4)]
    gone, changed, thumbless, fine = stored
    s3 = s3_server.boto3_client()
    s3.delete_object(Bucket=s3_server.bucket, Key=gone)
    s3.put_object(Bucket=s3_server.bucket, Key=changed, Body=b"not the stored bytes")
    s3.delete_object(Bucket=s3_server.bucket, Key=f"thumbs/160/{thumbless}.webp")  # its only size
    orphan = "OrphanOrphanOrphanOrph.png"
    s3.put_object(Bucket=s3_server.bucket, Key=orphan, Body=png_bytes(5, 5))
    s3.put_object(Bucket=s3_server.bucket, Key=f"thumbs/160/{orphan}.webp", Body=b"RIFF")
    s3.put_object(Bucket=s3_server.bucket, Key="notes/readme.txt", Body=b"not named like ours: left alone")

    bucket_settings = bucket_client.app.state.settings
    report = bucket_client.blocking_portal.call(run_check, bucket_settings)
    found = {(finding.kind, finding.stored_name) for finding in report.findings}
    assert found == {
        ("missing_file", gone),
        ("mismatch", changed),
        ("missing_thumbnails", thumbless),
        ("orphan_file", orphan),
        ("orphan_thumbnail", orphan),
    }
    assert fine not in {name for _, name in found}
    assert report.rows == 4 and report.files == 3 + 1 and report.thumbnails == 3 + 1
    # Repair over the bucket: tests/ops/test_consistency_bucket_repair.py.


def test_a_zip_of_an_album_goes_into_the_bucket_and_comes_back_out_of_it(bucket_client, s3_server, settings):
    import io
    import zipfile
    from urllib.parse import quote

    from tests.albums.zips import make_zip, photo

    entries = [("Весна/SKU1/a.png", photo(1)), ("Весна/SKU1/b.png", photo(2)), ("Весна/SKU2/c.png", photo(3))]
    json = {"Accept": "application/json"}
    answer = bucket_client.post(
        "/api/upload", files={"zipfile": ("s.zip", make_zip(entries), "application/zip")}, headers=json
    )
    assert answer.status_code == 201, answer.text
    stored = {row["stored_name"] for row in run_sql(settings.database_url, "SELECT stored_name FROM images")}
    assert len(stored) == 3 and stored <= keys(s3_server)
    assert files_under(settings.images_dir) == []
    album = bucket_client.get(f"/download/album/{quote('Весна')}", headers=json)
    assert album.status_code == 200, album.text
    with zipfile.ZipFile(io.BytesIO(album.content)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    in_bucket = {s3_server.boto3_client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() for key in stored}
    assert set(members.values()) == in_bucket and len(members) == 3


def test_the_conversion_api_stores_and_fetches_through_the_bucket_and_head_has_no_body(make_client, s3_server):
    client = make_client(**s3_server.changes(), api_tokens=("convert-token",))
    auth = {"Authorization": "Bearer convert-token"}
    made = client.post("/api/images", files={"file": ("p.png", png_bytes(64, 48), "image/png")}, headers=auth)
    assert made.status_code == 201, made.text
    fetched = client.get(f"/api/images/{made.json()['id']}", headers=auth)
    assert fetched.status_code == 200 and fetched.content[:2] == b"\xff\xd8"
    assert made.json()["filename"] in keys(s3_server)
    head = client.head(f"/images/{made.json()['filename']}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(fetched.content))


def test_several_files_in_one_upload_each_land_in_the_bucket_whole(bucket_client, s3_server, settings):
    from tests.albums.test_single_uploads import several

    parts = [("a.png", png_bytes(600, 400, (200, 0, 0))), ("notes.txt", b"just text"), ("b.png", png_bytes(500, 300))]
    response = several(bucket_client, parts)
    assert response.status_code == 201, response.text
    first, refused, last = response.json()["results"]
    assert refused["status"] == "error" and refused["filename"] == "notes.txt"
    stored = [first["filename"], last["filename"]]
    assert keys(s3_server) == {key for name in stored for key in (name, *(f"thumbs/{s}/{name}.webp" for s in SIZES))}
    assert files_under(settings.images_dir) == []
    for name in stored:
        served = bucket_client.get(f"/images/{name}")
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert run_sql(settings.database_url, "SELECT count(*) FROM pending_objects")[0][0] == 0
