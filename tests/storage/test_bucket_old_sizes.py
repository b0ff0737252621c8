"""STORAGE=s3: a delete removes the image's thumbnails at every size in the bucket, also those made
under an earlier THUMBNAIL_SIZES, found with one listing by delimiter of `thumbs/` that is kept for a
while (not one per delete). Against a real S3 API (moto's server mode, tests/s3server.py)."""

# ruff: noqa: F811

from __future__ import annotations

import pytest

from tests.conftest import png_bytes, run_sql, upload
from tests.s3server import s3_server  # noqa: F401


@pytest.fixture
def empty_bucket(s3_server):
    s3 = s3_server.boto3_client()
    for found in s3.list_objects_v2(Bucket=s3_server.bucket).get("Contents", []):
        s3.delete_object(Bucket=s3_server.bucket, Key=found["Key"])
    return s3_server


def keys_with(s3_server, stored_name: str) -> set[str]:
    listed = s3_server.boto3_client().list_objects_v2(Bucket=s3_server.bucket).get("Contents", [])
    return {found["Key"] for found in listed if stored_name in found["Key"]}


def delete(client, answer) -> None:
    deleted = client.delete(answer.json()["delete_url"].replace("http://testserver.local", ""))
    assert deleted.status_code == 200, deleted.text


def delimiter_listings(s3_server) -> int:
    """How many times the bucket was asked for its `thumbs/` folders (a listing by delimiter)."""
    return len([line for line in s3_server.requests("delimiter=") if "prefix=thumbs" in line])


def test_a_delete_removes_the_thumbnails_of_earlier_sizes(make_client, empty_bucket, settings):
    s3_server = empty_bucket
    before = make_client(**s3_server.changes(), thumbnail_sizes=(160, 320))
    answers = [upload(before, png_bytes(600, 300, (n, 60, 90))) for n in range(3)]
    names = [answer.json()["filename"] for answer in answers]
    assert keys_with(s3_server, names[0]) == {names[0], f"thumbs/160/{names[0]}.webp", f"thumbs/320/{names[0]}.webp"}

    # THUMBNAIL_SIZES changed (the app restarted): 320 is no longer made, 480 is.
    after = make_client(**s3_server.changes(), thumbnail_sizes=(160, 480))
    old_link = f"/images/thumbs/320/{names[0]}.webp"
    assert after.get(old_link).status_code == 200  # still in the bucket, still served
    listed_before = delimiter_listings(s3_server)
    delete(after, answers[0])
    assert keys_with(s3_server, names[0]) == set()  # nothing with its name left in the bucket
    assert after.get(old_link).status_code == 404
    delete(after, answers[1])
    assert keys_with(s3_server, names[1]) == set()
    # One listing of the folders for both deletes, not one per delete.
    assert delimiter_listings(s3_server) - listed_before == 1
    assert run_sql(settings.database_url, "SELECT count(*) FROM pending_objects")[0][0] == 0

    # Once the sizes are due to be listed again, a size that appeared since is seen too.
    after.app.state.image_service.files.sizes_listed_for = 0
    s3_server.boto3_client().put_object(Bucket=s3_server.bucket, Key=f"thumbs/800/{names[2]}.webp", Body=b"RIFF")
    delete(after, answers[2])
    assert keys_with(s3_server, names[2]) == set()
    assert delimiter_listings(s3_server) - listed_before == 2


def test_the_sizes_present_include_earlier_ones(make_client, empty_bucket):
    """What thumbnail regeneration and repair see as present: every stored size, as in the folder."""
    s3_server = empty_bucket
    client = make_client(**s3_server.changes(), thumbnail_sizes=(160,))
    name = upload(client, png_bytes(600, 300)).json()["filename"]
    s3_server.boto3_client().put_object(Bucket=s3_server.bucket, Key=f"thumbs/480/{name}.webp", Body=b"RIFF")
    files = client.app.state.image_service.files
    files.sizes_listed_for = 0
    assert client.blocking_portal.call(files.thumbnail_sizes_present, name) == [160, 480]
    assert client.blocking_portal.call(files.thumbnail_sizes_present, "../not-a-name") == []


def test_folders_and_copy_stay_below_the_prefix(empty_bucket):
    """The two calls this needs of the store (storage/s3.py): the folders under `thumbs`, and a
    server-side copy (repair's quarantine), both below S3_PREFIX."""
    import asyncio

    from imagehost.storage.s3 import S3ObjectStore

    s3_server = empty_bucket
    s3 = s3_server.boto3_client()
    for key in ("mine/thumbs/160/a.webp", "mine/thumbs/320/a.webp", "other/thumbs/999/a.webp", "thumbs/7/a.webp"):
        s3.put_object(Bucket=s3_server.bucket, Key=key, Body=b"RIFF")
    store = S3ObjectStore(s3_server.settings(s3_prefix="mine/"))

    async def go() -> tuple[list[str], bytes | None]:
        folders = await store.folders("thumbs")
        await store.copy("thumbs/160/a.webp", ".quarantine/x/thumbs/160/a.webp")
        with pytest.raises(FileNotFoundError):
            await store.copy("thumbs/160/gone.webp", ".quarantine/x/gone.webp")
        return folders, await store.get(".quarantine/x/thumbs/160/a.webp")

    folders, copied = asyncio.run(go())
    assert folders == ["160", "320"] and copied == b"RIFF"
    assert "mine/.quarantine/x/thumbs/160/a.webp" in {
        found["Key"] for found in s3.list_objects_v2(Bucket=s3_server.bucket)["Contents"]
    }
