"""Repair with STORAGE=s3, against a real S3 API (moto's server mode, tests/s3server.py): what repair
does in IMAGES_DIR it does in the bucket (orphans into the bucket's `.quarantine/<timestamp>/`,
thumbnails made again from the original, rows whose object is gone marked or removed, a disagreeing
object left alone), IMAGES_DIR never touched; and what the user sees after it: the thumbnail link
serves again, the orphan's link is gone, a second check finds nothing left to fix."""

# ruff: noqa: F811

from __future__ import annotations

import pytest

from imagehost.ops.consistency import check, run_check
from tests.conftest import ADMIN_TOKEN, png_bytes, run_sql, upload
from tests.s3server import s3_server  # noqa: F401

SIZES = (160, 480)
ORPHAN = "OrphanOrphanOrphanOrph.png"
ORPHAN_THUMB = "GhostThumbGhostThumbGh.png"
JSON = {"Accept": "application/json"}


@pytest.fixture
def bucket_client(make_client, s3_server, monkeypatch):
    """An app storing in the emptied bucket; every object old enough to be judged by the check."""
    s3 = s3_server.boto3_client()
    for found in s3.list_objects_v2(Bucket=s3_server.bucket).get("Contents", []):
        s3.delete_object(Bucket=s3_server.bucket, Key=found["Key"])
    monkeypatch.setattr(check, "RECENT_SECONDS", -5)
    return make_client(**s3_server.changes(), thumbnail_sizes=SIZES)


def objects(s3_server) -> dict[str, bytes]:
    s3 = s3_server.boto3_client()
    listed = s3.list_objects_v2(Bucket=s3_server.bucket).get("Contents", [])
    return {found["Key"]: s3.get_object(Bucket=s3_server.bucket, Key=found["Key"])["Body"].read() for found in listed}


def files_under(folder) -> list[str]:
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file() and ".staging" not in path.parts
    )


def repair(client, how: str | None):
    return client.blocking_portal.call(run_check, client.app.state.settings, how)


def actions(report) -> dict[tuple[str, str], str]:
    return {(finding.kind, finding.stored_name): finding.action for finding in report.findings}


def test_repair_in_the_bucket_quarantines_remakes_marks_and_leaves(bucket_client, s3_server, settings, database_url):
    stored = [upload(bucket_client, png_bytes(600, 300, (40 * n, 90, 30))).json()["filename"] for n in range(4)]
    gone, changed, thumbless, fine = stored
    s3 = s3_server.boto3_client()
    bucket = s3_server.bucket
    s3.delete_object(Bucket=bucket, Key=gone)
    s3.put_object(Bucket=bucket, Key=changed, Body=b"not the stored bytes")
    s3.delete_object(Bucket=bucket, Key=f"thumbs/160/{thumbless}.webp")
    s3.delete_object(Bucket=bucket, Key=f"thumbs/480/{thumbless}.webp")
    s3.put_object(Bucket=bucket, Key=ORPHAN, Body=png_bytes(50, 50))
    s3.put_object(Bucket=bucket, Key=f"thumbs/160/{ORPHAN_THUMB}.webp", Body=b"RIFF....WEBP")
    assert bucket_client.get(f"/images/thumbs/160/{thumbless}.webp").status_code == 404
    assert bucket_client.get(f"/images/{ORPHAN}").status_code == 200  # named like ours: served until repair
    before = objects(s3_server)

    report = repair(bucket_client, "mark")
    assert actions(report) == {
        ("missing_file", gone): "marked",
        ("mismatch", changed): "left",
        ("missing_thumbnails", thumbless): "regenerated",
        ("orphan_file", ORPHAN): "quarantined",
        ("orphan_thumbnail", ORPHAN_THUMB): "quarantined",
    }
    assert report.fixed == 4 and report.unfixed == 1 and report.quarantine.startswith(".quarantine/")

    after = objects(s3_server)
    # The orphans moved under the run's quarantine with their bytes, the store's layout kept.
    assert ORPHAN not in after and f"thumbs/160/{ORPHAN_THUMB}.webp" not in after
    assert after[f"{report.quarantine}/{ORPHAN}"] == before[ORPHAN]
    assert after[f"{report.quarantine}/thumbs/160/{ORPHAN_THUMB}.webp"] == b"RIFF....WEBP"
    assert bucket_client.get(f"/images/{ORPHAN}").status_code == 404
    # The disagreeing object is left as it is; every other object of the images untouched.
    assert after[changed] == b"not the stored bytes"
    assert all(
        after[key] == content
        for key, content in before.items()
        if key not in {ORPHAN, f"thumbs/160/{ORPHAN_THUMB}.webp"}
    )
    # The thumbnails made again from the original are served again.
    for size in SIZES:
        served = bucket_client.get(f"/images/thumbs/{size}/{thumbless}.webp")
        assert served.status_code == 200 and served.content[:4] == b"RIFF" and served.content[8:12] == b"WEBP"
    marked = run_sql(database_url, "SELECT file_missing_since FROM images WHERE stored_name = $1", gone)
    assert marked[0]["file_missing_since"] is not None
    assert files_under(settings.images_dir) == []  # IMAGES_DIR never touched

    # A second check finds only what repair leaves to the operator, and the mark it made.
    again = repair(bucket_client, None)
    assert {(finding.kind, finding.stored_name) for finding in again.findings} == {
        ("mismatch", changed),
        ("marked_missing", gone),
    }
    assert again.problems == 1 and fine not in {finding.stored_name for finding in again.findings}


def test_a_marked_row_whose_object_comes_back_is_unmarked(bucket_client, s3_server, database_url):
    upload(bucket_client, png_bytes(300, 200, (9, 9, 9)))  # one original stays: the bucket is the right one
    name = upload(bucket_client, png_bytes(300, 200)).json()["filename"]
    s3 = s3_server.boto3_client()
    content = s3.get_object(Bucket=s3_server.bucket, Key=name)["Body"].read()
    s3.delete_object(Bucket=s3_server.bucket, Key=name)
    assert actions(repair(bucket_client, "mark")) == {("missing_file", name): "marked"}
    s3.put_object(Bucket=s3_server.bucket, Key=name, Body=content)
    assert actions(repair(bucket_client, "mark")) == {("file_back", name): "unmarked"}
    marks = run_sql(database_url, "SELECT file_missing_since FROM images WHERE stored_name = $1", name)
    assert marks[0]["file_missing_since"] is None
    assert repair(bucket_client, None).consistent


def test_removing_a_row_whose_object_is_gone_quarantines_its_thumbnails_of_every_size(
    bucket_client, s3_server, database_url
):
    kept = upload(bucket_client, png_bytes(600, 300)).json()["filename"]
    name = upload(bucket_client, png_bytes(600, 300, (1, 2, 3))).json()["filename"]
    s3 = s3_server.boto3_client()
    s3.delete_object(Bucket=s3_server.bucket, Key=name)
    # A thumbnail made under an earlier THUMBNAIL_SIZES: it goes with the row too.
    s3.put_object(Bucket=s3_server.bucket, Key=f"thumbs/320/{name}.webp", Body=b"RIFF320.WEBP")

    report = repair(bucket_client, "remove")
    assert actions(report) == {("missing_file", name): "removed"}
    assert run_sql(database_url, "SELECT stored_name FROM images")[0]["stored_name"] == kept
    left = objects(s3_server)
    assert not [key for key in left if name in key and not key.startswith(f"{report.quarantine}/")]
    assert {key for key in left if name in key} == {
        f"{report.quarantine}/thumbs/{size}/{name}.webp" for size in (160, 320, 480)
    }
    assert repair(bucket_client, None).consistent


def test_repair_leaves_the_rows_alone_when_the_bucket_holds_no_original(
    make_client, s3_server, database_url, monkeypatch
):
    """A wrong S3_PREFIX (or bucket) looks like every object lost: no row is marked or removed."""
    monkeypatch.setattr(check, "RECENT_SECONDS", -5)
    client = make_client(**s3_server.changes(), thumbnail_sizes=SIZES, s3_prefix="right/")
    upload(client, png_bytes(300, 200))
    client = make_client(**s3_server.changes(), thumbnail_sizes=SIZES, s3_prefix="wrong/")
    report = repair(client, "remove")
    assert {finding.action for finding in report.findings} == {"failed"}
    assert "S3_BUCKET and S3_PREFIX" in report.findings[0].error
    assert run_sql(database_url, "SELECT count(*) FROM images")[0][0] == 1


def test_sync_repairs_the_bucket_for_the_operator(bucket_client, s3_server):
    name = upload(bucket_client, png_bytes(600, 300)).json()["filename"]
    s3 = s3_server.boto3_client()
    s3.delete_object(Bucket=s3_server.bucket, Key=f"thumbs/480/{name}.webp")
    s3.put_object(Bucket=s3_server.bucket, Key=ORPHAN, Body=png_bytes(40, 40))
    operator = {**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = bucket_client.post("/api/sync", json={"repair": True, "missing_rows": "mark"}, headers=operator)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["consistent"] is True and body["fixed"] == 2 and body["quarantine"].startswith(".quarantine/")
    assert f"{body['quarantine']}/{ORPHAN}" in objects(s3_server)
    assert bucket_client.get(f"/images/thumbs/480/{name}.webp").status_code == 200
    assert bucket_client.post("/api/sync", headers=operator).json()["problems"] == 0
