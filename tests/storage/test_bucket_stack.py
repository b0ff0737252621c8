"""STORAGE=s3 behind the real nginx with the project's nginx.conf: direct links and thumbnails are
not on nginx's disk, so nginx asks the app, which streams them from the bucket (moto's S3 server),
with the image headers; nginx keeps each for a minute, so the bucket is read once per link."""

# ruff: noqa: F811

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import httpx

from tests.conftest import png_bytes, run_sql
from tests.live import live_app, require
from tests.s3server import s3_server  # noqa: F401
from tests.test_stack import CURL, assert_inert, running_nginx


def test_direct_links_come_from_the_bucket_through_the_app_once_then_from_nginxs_cache(
    database_url, s3_server, tmp_path
):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    with (
        live_app(database_url, tmp_path, **s3_server.env("stack/"), THUMBNAIL_SIZES="160") as app,
        running_nginx(binary, tmp_path / "nginx", app) as port,
    ):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            made = client.post(
                "/upload",
                files={"file": ("p.png", png_bytes(320, 240), "image/png")},
                headers={"Accept": "application/json"},
            )
            assert made.status_code == 201, made.text
            stored = made.json()["filename"]
            assert not (app.images_dir / stored).exists()  # in the bucket only
            before = len(s3_server.requests(f'"GET /{s3_server.bucket}/stack/{stored} '))
            answers = [client.get(f"/images/{stored}", headers=CURL) for _ in range(3)]
            thumbnail = client.get(f"/images/thumbs/160/{stored}.webp", headers=CURL)
            missing = client.get("/images/AAAAAAAAAAAAAAAAAAAAAA.png", headers=CURL)
        # The bucket was read once for the three: nginx kept the first answer.
        gets = [line for line in s3_server.requests(f'"GET /{s3_server.bucket}/stack/{stored} ')[before:]]
        assert len(gets) == 1, gets
        body = s3_server.boto3_client().get_object(Bucket=s3_server.bucket, Key=f"stack/{stored}")["Body"].read()
        for answer in answers:
            assert answer.status_code == 200 and answer.content == body
            assert answer.headers["content-type"] == "image/png"
            assert_inert(answer.headers)
        assert thumbnail.status_code == 200 and thumbnail.content[:4] == b"RIFF"
        assert_inert(thumbnail.headers)
        assert missing.status_code == 404
        assert_inert(missing.headers)


def test_two_instances_on_one_bucket_and_database_serve_each_others_uploads(database_url, s3_server, tmp_path):
    """Nothing of an image lives on the instance that took it: the other one lists, serves, downloads
    and deletes it, and the rate limit counts a client's uploads on both."""
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    run_sql(database_url, "DELETE FROM shared_store")
    settings = {**s3_server.env("two/"), "THUMBNAIL_SIZES": "160", "UPLOAD_RATE_LIMIT": "3"}
    json = {"Accept": "application/json"}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with (
        live_app(database_url, tmp_path / "one", **settings) as one,
        live_app(database_url, tmp_path / "two", **settings) as two,
    ):
        made = httpx.post(
            f"{one.url}/upload", files={"file": ("p.png", png_bytes(200, 100), "image/png")}, headers=json, timeout=30
        )
        assert made.status_code == 201, made.text
        stored, image_id = made.json()["filename"], made.json()["id"]
        listed = httpx.get(f"{two.url}/images-list", headers=json, timeout=30).json()
        assert [item["filename"] for item in listed["data"]] == [stored]
        served = httpx.get(f"{two.url}/images/{stored}", timeout=30)
        downloaded = httpx.get(f"{two.url}/download/{image_id}", timeout=30)
        assert served.status_code == 200 and downloaded.content == served.content
        assert list(one.images_dir.rglob("*.png")) == list(two.images_dir.rglob("*.png")) == []
        # Two more on the second instance reach the limit of 3 the first one started counting.
        statuses = [
            httpx.post(
                f"{two.url}/upload",
                files={"file": (f"q{n}.png", png_bytes(50 + n, 40), "image/png")},
                headers=json,
                timeout=30,
            ).status_code
            for n in range(3)
        ]
        assert statuses == [201, 201, 429]
        key = made.json()["delete_url"].split("key=", 1)[1]
        deleted = httpx.delete(f"{two.url}/delete/{image_id}?key={key}", headers=json, timeout=30)
        assert deleted.status_code == 200, deleted.text
        assert httpx.get(f"{one.url}/images/{stored}", timeout=30).status_code == 404
    listed = s3_server.boto3_client().list_objects_v2(Bucket=s3_server.bucket, Prefix="two/").get("Contents", [])
    assert not any(stored in found["Key"] for found in listed)


def test_two_instances_behind_nginx_share_uploads_and_zip_jobs(clean_database, s3_server, tmp_path):
    """The compose profile's shape: nginx's upstream sends requests to both instances in turn; the
    first runs no jobs (JOB_CONCURRENCY=0), so every ZIP job, whichever instance accepted it, is run
    by the second's worker. Everything is asked of nginx, as a user would."""
    from tests.albums.test_jobs import follow, job_path
    from tests.albums.zips import make_zip, photo

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    settings = {
        **s3_server.env("behind/"),
        "THUMBNAIL_SIZES": "160",
        "ZIP_WAIT_SECONDS": "0",
        "ANONYMOUS_UPLOAD": "true",
    }
    json = {"Accept": "application/json"}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with (
        live_app(clean_database, tmp_path / "one", **settings, JOB_CONCURRENCY="0") as one,
        live_app(clean_database, tmp_path / "two", **settings, JOB_CONCURRENCY="2") as two,
        running_nginx(binary, tmp_path / "nginx", one, more=[two]) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        made = [
            client.post("/upload", files={"file": (f"p{n}.png", png_bytes(200 + n, 100), "image/png")}, headers=json)
            for n in range(4)
        ]
        assert [answer.status_code for answer in made] == [201] * 4
        took = [(app.log_dir / "app.log").read_text().count("Success: image") for app in (one, two)]
        assert sum(took) == 4 and min(took) >= 1, took  # the upstream sent uploads to both
        names = [answer.json()["filename"] for answer in made]
        for _ in range(2):  # each question answered by both instances in turn
            listed = client.get("/images-list", headers=json).json()
            assert sorted(item["filename"] for item in listed["data"]) == sorted(names)
        for answer in made:
            body = answer.json()
            assert client.get(f"/images/{body['filename']}", headers=CURL).status_code == 200
            assert client.get(f"/download/{body['id']}").status_code == 200
        assert list(one.images_dir.rglob("*.png")) == list(two.images_dir.rglob("*.png")) == []

        paths = [
            job_path(
                client.post(
                    "/api/upload",
                    files={
                        "zipfile": (f"shop{n}.zip", make_zip([(f"Shop{n}/SKU1/1.png", photo(n))]), "application/zip")
                    },
                    headers=json,
                )
            )
            for n in range(2)
        ]
        for path in paths:
            report = follow(client, path, 60)[-1]
            assert report["state"] == "done" and report["stored"] == 1, report
        ran = [(app.log_dir / "app.log").read_text().count("entries stored from shop") for app in (one, two)]
        assert ran == [0, 2], ran

        for answer in made:
            link = urlsplit(answer.json()["delete_url"])
            deleted = client.delete(f"{link.path}?{link.query}", headers=json)
            assert deleted.status_code == 200, deleted.text
        for _ in range(2):
            listed = {item["filename"] for item in client.get("/images-list", headers=json).json()["data"]}
            assert len(listed) == 2 and not listed & set(names)  # the ZIPs' two images are left
        # (A deleted image's direct link stays in nginx's cache for up to its minute: README, Serving.)
