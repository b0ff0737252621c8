"""Backups and restore with STORAGE=s3, against a real S3 API (moto's server, tests/s3server.py): the
bucket's objects are streamed into the same archive as the folder's, checked against the rows; a
restore goes only into a bucket without images, and carries on after the bucket went away half-way."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tarfile
from dataclasses import replace

import pytest

from imagehost.logging import configure_logging
from imagehost.ops.backup import BackupError, make_backup, restore_backup
from imagehost.ops.backup.bucket import RESTORE_MARKER
from imagehost.storage.s3 import S3ObjectStore
from tests.conftest import run_sql
from tests.ops.test_backup import add_token, all_rows, cli, files_on_disk, the_backup, upload_some
from tests.s3server import s3_server  # noqa: F401

SIZES = (160,)


def in_bucket(s3_server, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` (keys without it) and its bytes, read straight from moto."""
    s3 = s3_server.boto3_client()
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket, Prefix=prefix):
        for listed in page.get("Contents", []):
            body = s3.get_object(Bucket=s3_server.bucket, Key=listed["Key"])["Body"].read()
            found[listed["Key"].removeprefix(prefix)] = body
    return found


def members(archive) -> tuple[dict, dict[str, bytes]]:
    """The manifest and the image files (relative to images/) of a backup."""
    root = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(f"{root}/manifest.json"))
        files = {
            member.name.removeprefix(f"{root}/images/"): tar.extractfile(member).read()
            for member in tar
            if member.isfile() and member.name.startswith(f"{root}/images/")
        }
    return manifest, files


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def bucket_settings(settings, s3_server, tmp_path, request):
    """Settings storing in the bucket under a folder of this test's own (the server is the module's)."""
    prefix = f"{request.node.name[:40]}/"
    return replace(
        settings, backup_dir=tmp_path / "backups", thumbnail_sizes=SIZES, **s3_server.changes(), s3_prefix=prefix
    )


def bucket_client(make_client, settings):
    """The app over the bucket of `settings` (its S3_PREFIX)."""
    fields = ("storage", "s3_endpoint_url", "s3_bucket", "s3_region", "s3_access_key_id", "s3_secret_access_key")
    return make_client(**{name: getattr(settings, name) for name in (*fields, "s3_prefix", "thumbnail_sizes")})


def env_of(s3_server, settings) -> dict[str, str]:
    return {**s3_server.env(settings.s3_prefix), "THUMBNAIL_SIZES": ",".join(map(str, SIZES))}


def test_a_backup_holds_the_buckets_objects_and_restores_into_an_empty_bucket(make_client, bucket_settings, s3_server):
    settings = bucket_settings
    client = bucket_client(make_client, settings)
    bodies = upload_some(client, 3)
    add_token(settings.database_url)
    s3 = s3_server.boto3_client()
    s3.put_object(Bucket=s3_server.bucket, Key=f"{settings.s3_prefix}notes/readme.txt", Body=b"not an image of ours")
    # An orphan named like ours (backed up, as the folder's are), long enough to come in several chunks.
    orphan = "OrphanOrphanOrphanOrph.png"
    s3.put_object(Bucket=s3_server.bucket, Key=f"{settings.s3_prefix}{orphan}", Body=os.urandom(3 * 1024 * 1024 + 7))
    before = in_bucket(s3_server, settings.s3_prefix)
    ours = {key: content for key, content in before.items() if key != "notes/readme.txt"}
    assert len(ours) == 7  # three originals, three thumbnails, the orphan
    rows_before = all_rows(settings.database_url)

    made = cli(settings, "backup", **env_of(s3_server, settings))
    assert made.returncode == 0, made.stderr
    archive = the_backup(settings)
    manifest, files = members(archive)
    # The objects' own bytes, and the manifest's checksums of them; other keys of the bucket left out.
    assert files == ours
    assert {entry["path"]: entry["sha256"] for entry in manifest["files"]} == {k: sha(v) for k, v in ours.items()}
    assert manifest["file_count"] == 7 and manifest["database"]["rows"]["images"] == 3
    assert manifest["missing_files"] == manifest["changed_files"] == []
    assert "S3 bucket" in manifest["storage"]
    assert not list(settings.images_dir.glob("*.png"))  # nothing of it went through the local folder
    assert f"] Backup: {archive} made: 3 images, 1 API token, 7 files" in (settings.log_dir / "app.log").read_text()

    # The installation is lost; a new one stores under another folder of the bucket, still empty.
    run_sql(settings.database_url, "DELETE FROM api_tokens")
    run_sql(settings.database_url, "DELETE FROM images")
    fresh = replace(settings, s3_prefix="restored-into-empty/")
    restored = cli(fresh, "restore", str(archive), "--yes", **env_of(s3_server, fresh))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "files: 7 put into S3 bucket" in restored.stdout
    assert "1 original files have no row" in restored.stdout
    assert "verified: every file matches the manifest, every row has its file" in restored.stdout
    assert in_bucket(s3_server, fresh.s3_prefix) == ours  # byte for byte, the marker gone, the stranger not copied
    assert all_rows(settings.database_url) == rows_before
    assert in_bucket(s3_server, settings.s3_prefix) == before  # the old folder untouched

    # The app over the restored bucket serves the catalogue, the originals and the thumbnails.
    client = bucket_client(make_client, fresh)
    assert client.get("/images-list").json()["pagination"]["total_items"] == 3
    for body in bodies:
        stored = body["filename"]
        served = client.get(f"/images/{stored}")
        assert served.status_code == 200 and served.content == ours[stored]
        assert client.get(f"/images/thumbs/160/{stored}.webp").content == ours[f"thumbs/160/{stored}.webp"]


def test_a_damaged_or_missing_object_is_reported_by_the_backup(make_client, bucket_settings, s3_server):
    settings = bucket_settings
    client = bucket_client(make_client, settings)
    damaged, lost, fine = (body["filename"] for body in upload_some(client, 3))
    s3 = s3_server.boto3_client()
    s3.put_object(Bucket=s3_server.bucket, Key=f"{settings.s3_prefix}{damaged}", Body=b"other bytes entirely")
    s3.delete_object(Bucket=s3_server.bucket, Key=f"{settings.s3_prefix}{lost}")
    configure_logging(settings.log_dir)

    result = asyncio.run(make_backup(settings))

    assert result.changed_files == [damaged] and result.missing_files == [lost]
    manifest, files = members(result.path)
    assert manifest["changed_files"] == [damaged] and manifest["missing_files"] == [lost]
    assert files[damaged] == b"other bytes entirely"  # kept as it is: the backup does not hide the damage
    assert lost not in files and fine in files
    log = (settings.log_dir / "app.log").read_text()
    assert f"image {damaged}: its file differs from its row's size or SHA-256 (damaged)" in log
    assert f"image {lost} has a row but no file" in log
    assert "1 files differ from their rows" in log and "1 rows without their file" in log
    operations = run_sql(settings.database_url, "SELECT outcome FROM operations_state WHERE kind = 'backup'")
    assert operations[0]["outcome"] == "warnings"

    # Restored, the known damage is reported as the backup's, not as the restore's own failure.
    fresh = replace(settings, s3_prefix="restored-damaged/")
    report = asyncio.run(restore_backup(fresh, result.path))
    assert report.problems == []
    assert any(damaged in warning and "already differed" in warning for warning in report.warnings)
    assert any(lost in warning and "already missing" in warning for warning in report.warnings)


def test_a_restore_into_a_bucket_holding_images_is_refused_and_changes_nothing(make_client, bucket_settings, s3_server):
    settings = bucket_settings
    client = bucket_client(make_client, settings)
    bodies = upload_some(client, 2)
    assert cli(settings, "backup", **env_of(s3_server, settings)).returncode == 0
    archive = the_backup(settings)
    response = client.delete(bodies[0]["delete_url"].replace("http://testserver.local", ""))
    assert response.status_code == 200  # the data differs from the backup: a restore would show
    before = (in_bucket(s3_server, settings.s3_prefix), all_rows(settings.database_url))

    refused = cli(settings, "restore", str(archive), "--yes", **env_of(s3_server, settings))

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "restore refused" in refused.stderr and "already holds 2 image objects" in refused.stderr
    assert bodies[1]["filename"] in refused.stderr and "Nothing was changed." in refused.stderr
    assert (in_bucket(s3_server, settings.s3_prefix), all_rows(settings.database_url)) == before
    assert RESTORE_MARKER not in before[0]
    assert "Restore: cannot restore" in (settings.log_dir / "app.log").read_text()


def test_the_store_stopping_during_a_backup_leaves_no_backup(make_client, bucket_settings, s3_server, monkeypatch):
    settings = bucket_settings
    upload_some(bucket_client(make_client, settings), 3)
    configure_logging(settings.log_dir)
    read = S3ObjectStore.stream
    streamed: list[str] = []

    async def store_goes_down_after_the_first_object(self, key):
        if streamed:
            s3_server.stop()
        streamed.append(key)
        return await read(self, key)

    monkeypatch.setattr(S3ObjectStore, "stream", store_goes_down_after_the_first_object)
    try:
        with pytest.raises(BackupError, match=r"does not answer while reading .*connection refused") as failure:
            asyncio.run(make_backup(settings))
    finally:
        s3_server.start()
    assert "1 objects archived so far" in str(failure.value) and "S3 bucket" in str(failure.value)
    assert len(streamed) == 2
    # Neither a backup nor a half-made file left behind: only the lock.
    assert sorted(path.name for path in settings.backup_dir.iterdir()) == [".lock"]
    assert "Backup: backup failed: BackupError" in (settings.log_dir / "app.log").read_text()


def test_a_restore_the_store_stops_under_says_so_and_carries_on_when_run_again(
    make_client, bucket_settings, s3_server, monkeypatch
):
    settings = bucket_settings
    upload_some(bucket_client(make_client, settings), 3)
    configure_logging(settings.log_dir)
    archive = asyncio.run(make_backup(settings)).path
    rows_before = all_rows(settings.database_url)
    run_sql(settings.database_url, "DELETE FROM images WHERE id = 1")
    rows_meanwhile = all_rows(settings.database_url)
    fresh = replace(settings, s3_prefix="restored-after-outage/")

    with s3_server.stopped(), pytest.raises(BackupError, match="does not answer while checking that it is empty"):
        asyncio.run(restore_backup(fresh, archive))
    assert in_bucket(s3_server, fresh.s3_prefix) == {} and all_rows(settings.database_url) == rows_meanwhile

    put = S3ObjectStore.put
    taken: list[str] = []

    async def store_goes_down_after_two_objects(self, key, content, content_type):
        if len([name for name in taken if name != RESTORE_MARKER]) == 2:
            s3_server.stop()
        taken.append(key)
        return await put(self, key, content, content_type)

    monkeypatch.setattr(S3ObjectStore, "put", store_goes_down_after_two_objects)
    try:
        with pytest.raises(BackupError, match=r"stopped taking objects after \d of 6 were put") as failure:
            asyncio.run(restore_backup(fresh, archive))
    finally:
        s3_server.start()
    monkeypatch.undo()
    assert "the database is unchanged" in str(failure.value) and "Run the same restore again" in str(failure.value)
    assert all_rows(settings.database_url) == rows_meanwhile
    left = in_bucket(s3_server, fresh.s3_prefix)
    assert RESTORE_MARKER in left and len(left) - 1 < 6  # the marker and what was put before

    # The same restore again: let in by its marker, it puts everything and switches the database.
    report = asyncio.run(restore_backup(fresh, archive))
    assert report.problems == []
    assert all_rows(settings.database_url) == rows_before
    restored = in_bucket(s3_server, fresh.s3_prefix)
    assert RESTORE_MARKER not in restored
    assert restored == in_bucket(s3_server, settings.s3_prefix)


def test_a_backup_of_the_folder_restores_into_a_bucket(make_client, bucket_settings, s3_server):
    """One format for both storages: moving from IMAGES_DIR to a bucket is a backup and a restore."""
    folder = replace(bucket_settings, storage="local")
    bodies = upload_some(make_client(thumbnail_sizes=SIZES), 2)
    on_disk = files_on_disk(folder.images_dir)
    assert cli(folder, "backup").returncode == 0
    archive = the_backup(folder)

    restored = cli(bucket_settings, "restore", str(archive), "--yes", **env_of(s3_server, bucket_settings))

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert {key: sha(content) for key, content in in_bucket(s3_server, bucket_settings.s3_prefix).items()} == on_disk
    client = bucket_client(make_client, bucket_settings)
    stored = bodies[1]["filename"]
    assert client.get(f"/images/{stored}").content == (folder.images_dir / stored).read_bytes()
