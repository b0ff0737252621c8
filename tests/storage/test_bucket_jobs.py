"""A ZIP job over STORAGE=s3 while the bucket goes away (moto's S3 server behind its front,
tests/s3server.py): an outage is not the archive's fault, so the job's attempt ends and the queue
runs the next one, which goes on from the recorded entries; on the last attempt the job ends failed
with the outage's message and its stored entries listed."""

# ruff: noqa: F811

from __future__ import annotations

import time

import httpx

from tests.albums.test_jobs import KILL_SETTINGS, follow, start_crash_job
from tests.albums.test_upload import JSON, noise_png
from tests.conftest import run_sql
from tests.live import live_app
from tests.s3server import S3Server, s3_server  # noqa: F401
from tests.storage.test_bucket_faults import bucket_keys


def wait_for_line(log, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"no {text!r} in app.log within {seconds} s"
        time.sleep(0.05)


def stored_ids(database_url: str) -> set[int]:
    return {row["id"] for row in run_sql(database_url, "SELECT id FROM images")}


ENTRIES = [(f"Outage/SKU{n // 4}/{n}.png", noise_png(n, 300)) for n in range(60)]


def bucket_settings(s3_server: S3Server, prefix: str) -> dict[str, str]:
    return {**KILL_SETTINGS, **s3_server.env(prefix), "THUMBNAIL_SIZES": "160"}


def test_a_bucket_outage_during_a_zip_job_ends_its_attempt_and_the_next_stores_the_rest(
    clean_database, s3_server: S3Server, tmp_path
):
    prefix = "zip-outage/"
    with live_app(clean_database, tmp_path, **bucket_settings(s3_server, prefix)) as app:
        path = start_crash_job(app, ENTRIES)
        with s3_server.stopped():
            # The entries in flight get the store's 503 after its retries: the attempt ends, the
            # entries are not refused, and the job waits for its next attempt.
            wait_for_line(app.log_dir / "app.log", "was cut by an outage", 30)
            middle = httpx.get(f"{app.url}{path}", headers=JSON).json()
            assert middle["state"] in {"queued", "running"}, middle
            assert not [r for r in middle["results"] if r["status"] == "refused"], middle["results"]
        report = follow(httpx.Client(base_url=app.url), path, 90)[-1]
        assert report["state"] == "done" and report["status"] == "success", report
        assert report["stored"] == 60 and report["total"] == 60
        assert [r["entry"] for r in report["results"]] == [entry for entry, _ in ENTRIES]
        assert {r["id"] for r in report["results"]} == stored_ids(clean_database)  # each entry once
        keys = bucket_keys(s3_server, prefix)
        for result in report["results"]:
            assert result["filename"] in keys
            assert httpx.get(f"{app.url}/images/{result['filename']}").status_code == 200
        assert not [key for key in keys if key.startswith("jobs/")]  # the archive's copy went with the job
        assert list(app.images_dir.rglob("*.png")) == []
        log = (app.log_dir / "app.log").read_text()
        assert "queued again for attempt 2 of 3." in log


def test_a_bucket_outage_on_a_zip_jobs_last_attempt_fails_it_with_the_stores_message(
    clean_database, s3_server: S3Server, tmp_path
):
    prefix = "zip-outage-last/"
    with live_app(clean_database, tmp_path, **bucket_settings(s3_server, prefix)) as app:
        path = start_crash_job(app, ENTRIES)
        run_sql(clean_database, "UPDATE procrastinate_jobs SET attempts = 2 WHERE status = 'doing'")  # the last
        with s3_server.stopped():
            deadline = time.monotonic() + 30
            while (report := httpx.get(f"{app.url}{path}", headers=JSON).json())["state"] != "failed":
                assert time.monotonic() < deadline, report
                time.sleep(0.05)
        assert report["status"] == "error"
        assert "image store is not available right now" in report["error"]
        stored = [r for r in report["results"] if r["status"] == "stored"]
        assert report["stored"] == len(stored) >= 3 and report["total"] == 60
        assert not [r for r in report["results"] if r["status"] == "refused"]
        assert {r["id"] for r in stored} == stored_ids(clean_database)  # every stored image listed, no more
        keys = bucket_keys(s3_server, prefix)
        for result in stored:
            assert result["filename"] in keys
            assert httpx.get(f"{app.url}/images/{result['filename']}").status_code == 200
