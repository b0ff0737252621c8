"""ZIP uploads as jobs on the queue: 202 with the job's URL past ZIP_WAIT_SECONDS, the job's
progress and report at that URL, who may read it; a job cut by a SIGKILL taken again by the next
worker and finished with each entry stored once, or, on its last attempt, marked failed with the
entries it had stored kept and listed; a job accepted by one instance and run by another's worker."""

from __future__ import annotations

import hashlib
import io
import signal
import time
import zipfile
from urllib.parse import urlsplit

import httpx

from tests.albums.test_upload import JSON, noise_png, send
from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, run_sql
from tests.live import live_app

SHOP = [
    ("Shop/SKU1/front.png", photo(1)),
    ("Shop/SKU1/back.png", photo(2)),
    ("Shop/SKU2/only.png", photo(3)),
    ("Shop/SKU2/notes.txt", b"not an image"),
]


def job_path(answer: httpx.Response) -> str:
    body = answer.json()
    assert answer.status_code == 202, body
    assert set(body) == {"status", "message", "job_id", "job_url"} and body["status"] == "accepted"
    assert body["job_url"].endswith(f"/api/jobs/{body['job_id']}")
    assert len(body["job_id"]) >= 22  # 128 random bits, URL-safe
    return urlsplit(body["job_url"]).path


def follow(client, path: str, seconds: float = 30, headers: dict | None = None) -> list[dict]:
    """Every state the job URL showed until the job ended."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get(path, headers={**JSON, **(headers or {})})
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["state"] in {"done", "failed"}:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"the job did not end in {seconds} s: {seen[-1]}")


def test_a_job_past_the_wait_answers_202_and_its_url_shows_progress_then_the_report(make_client, settings):
    client = make_client(zip_wait_seconds=0)
    images = [(f"Big/SKU{n // 3}/{n}.png", noise_png(n, 160)) for n in range(24)]
    archive = make_zip([*images, ("Big/SKU9/notes.txt", b"text")])
    path = job_path(send(client, archive, name="big.zip"))
    seen = follow(client, path)
    final = seen[-1]
    assert final["state"] == "done" and final["status"] == "success"
    assert final["message"] == "Files uploaded successfully"
    assert (final["total"], final["done"], final["stored"], final["refused"], final["skipped"]) == (25, 25, 24, 1, 0)
    assert final["album_name"] == "Big" and final["archive_name"] == "big.zip" and final["error"] is None
    # The entries came in as they finished: some poll saw the job running part-way.
    assert any(s["state"] in {"queued", "running"} and s["done"] < s["total"] for s in seen)
    done = [s["done"] for s in seen]
    assert done == sorted(done)
    # The same items as the synchronous answer, in archive order, with working delete links.
    results = final["results"]
    assert [r["entry"] for r in results] == [f"Big/SKU{n // 3}/{n}.png" for n in range(24)] + ["Big/SKU9/notes.txt"]
    assert results[-1]["status"] == "refused" and "not a supported image" in results[-1]["error"]
    assert all(r["delete_url"] for r in results[:-1])
    assert client.get(urlsplit(results[0]["url"]).path).status_code == 200
    assert client.delete(results[0]["delete_url"], headers=JSON).status_code == 200
    # The archive's copy is gone once the job is done.
    assert not list((settings.images_dir / ".staging" / "jobs").glob("*.zip"))
    # In Russian too.
    russian = client.get(path, headers={**JSON, "Accept-Language": "ru"}).json()
    assert russian["message"] == "Файлы успешно загружены"


def test_a_job_ending_within_the_wait_answers_the_report_itself(client):
    response = send(client, make_zip(SHOP))
    assert response.status_code == 201 and response.json()["stored"] == 3


def test_who_may_read_a_job(make_client):
    client = make_client(zip_wait_seconds=0, api_tokens=("shop-a", "shop-b"))
    started = send(client, make_zip(SHOP), headers={"Authorization": "Bearer shop-a"})
    path = job_path(started)
    assert follow(client, path, 20, {"Authorization": "Bearer shop-a"})[-1]["state"] == "done"
    assert client.get(path, headers={**JSON, "Authorization": "Bearer shop-a"}).status_code == 200
    # Another token, or anyone without one, is told there is no such job; an admin sees it.
    other = client.get(path, headers={**JSON, "Authorization": "Bearer shop-b"})
    assert other.status_code == 404 and other.json()["error"] == "There is no such upload job."
    assert client.get(path, headers=JSON).status_code == 404
    assert client.get(path, headers={**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    # An anonymous upload's job: whoever holds its id.
    anonymous = job_path(send(client, make_zip(SHOP), name="other.zip", album_name="Other"))
    assert client.get(anonymous, headers={**JSON, "Authorization": "Bearer shop-b"}).status_code == 200
    # Unknown or guessed ids.
    assert client.get("/api/jobs/AAAAAAAAAAAAAAAAAAAAAA", headers=JSON).status_code == 404
    ru = client.get("/api/jobs/nope", headers={**JSON, "Accept-Language": "ru"}).json()
    assert ru["error"] == "Такой задачи загрузки нет."


def test_the_table_keeps_neither_job_ids_nor_delete_keys(make_client, settings):
    client = make_client(zip_wait_seconds=0)
    path = job_path(send(client, make_zip(SHOP)))
    final = follow(client, path)[-1]
    job_id = path.rsplit("/", 1)[-1]
    keys = [r["delete_url"].rsplit("key=", 1)[-1] for r in final["results"] if r["delete_url"]]
    everything = "SELECT j.*, e.* FROM upload_jobs j JOIN upload_job_entries e ON e.job = j.id"
    dump = str(run_sql(settings.database_url, everything))
    assert job_id not in dump and keys and not any(key in dump for key in keys)
    assert hashlib.sha256(job_id.encode()).hexdigest() in dump


def start_crash_job(app, entries) -> str:
    """A ZIP job of `entries` on `app`, its path once it has stored three entries."""
    answer = httpx.post(
        f"{app.url}/api/upload",
        files={"zipfile": ("crash.zip", make_zip(entries), "application/zip")},
        headers=JSON,
        timeout=30,
    )
    path = job_path(answer)
    deadline = time.monotonic() + 30
    while (progress := httpx.get(f"{app.url}{path}", headers=JSON).json())["stored"] < 3:
        assert progress["state"] != "done", "the job ended before it could be killed"
        assert time.monotonic() < deadline, progress
        time.sleep(0.01)
    return path


def stored_images(database_url: str) -> set[int]:
    return {
        row[0] for row in run_sql(database_url, "SELECT i.id FROM images i JOIN album_images ai ON ai.image = i.id")
    }


# Quick to notice a dead worker (heartbeats every half second), one image worker each.
KILL_SETTINGS = {
    "ZIP_WAIT_SECONDS": "0",
    "WORKER_PROCESSES": "1",
    "ANONYMOUS_UPLOAD": "true",
    "JOB_STALLED_SECONDS": "3",
}


def test_a_job_killed_mid_way_is_taken_again_and_ends_with_every_entry_stored_once(clean_database, tmp_path):
    entries = [(f"Crash/SKU{n // 4}/{n}.png", noise_png(n, 300)) for n in range(60)]
    with live_app(clean_database, tmp_path, **KILL_SETTINGS) as app:
        path = start_crash_job(app, entries)
        before = httpx.get(f"{app.url}{path}", headers=JSON).json()
        app.process.send_signal(signal.SIGKILL)
        app.process.wait(10)
    first = {r["entry"]: r for r in before["results"] if r["status"] == "stored"}
    spooled = list((tmp_path / "images" / ".staging" / "jobs").glob("*.zip"))
    assert len(spooled) == 1  # the kill left the archive's copy for the next attempt

    # The next start's worker finds the dead worker's job (its heartbeat stopped) and goes on.
    with live_app(clean_database, tmp_path, **KILL_SETTINGS) as app:
        report = follow(httpx.Client(base_url=app.url), path, 60)[-1]
        assert report["state"] == "done" and report["status"] == "success", report
        assert report["stored"] == 60 and report["total"] == 60
        stored = report["results"]
        assert [r["entry"] for r in stored] == [entry for entry, _ in entries]
        # Each entry once: no image stored twice, the first attempt's images kept as they were.
        assert {r["id"] for r in stored} == stored_images(clean_database) and len(stored_images(clean_database)) == 60
        for result in stored:
            if result["entry"] in first:
                assert result["id"] == first[result["entry"]]["id"]
            assert httpx.get(f"{app.url}/images/{result['filename']}").status_code == 200
        # A delete key of the first attempt still deletes its image.
        some = next(iter(first.values()))
        assert (
            httpx.delete(
                f"{app.url}{urlsplit(some['delete_url']).path}?{urlsplit(some['delete_url']).query}", headers=JSON
            ).status_code
            == 200
        )
        assert not spooled[0].exists()
        log = (app.log_dir / "app.log").read_text()
        assert "a zip_upload job's worker stopped answering: queued again." in log


def test_a_job_killed_on_its_last_attempt_is_failed_with_its_stored_entries_listed(clean_database, tmp_path):
    entries = [(f"Crash/SKU{n // 4}/{n}.png", noise_png(n, 300)) for n in range(60)]
    with live_app(clean_database, tmp_path, **KILL_SETTINGS) as app:
        path = start_crash_job(app, entries)
        # As if two attempts had died already: this is the last.
        run_sql(clean_database, "UPDATE procrastinate_jobs SET attempts = 2 WHERE status = 'doing'")
        app.process.send_signal(signal.SIGKILL)
        app.process.wait(10)
    spooled = list((tmp_path / "images" / ".staging" / "jobs").glob("*.zip"))
    assert len(spooled) == 1

    with live_app(clean_database, tmp_path, **KILL_SETTINGS) as app:
        report = follow(httpx.Client(base_url=app.url), path, 60)[-1]
        assert report["state"] == "failed" and report["status"] == "error"
        assert "interrupted by a restart" in report["error"]
        stored = [r for r in report["results"] if r["status"] == "stored"]
        assert len(stored) >= 3 and report["stored"] == len(stored) < 60 and report["total"] == 60
        assert {r["id"] for r in stored} == stored_images(clean_database)  # every stored image listed, no more
        for result in stored:
            assert (tmp_path / "images" / result["filename"]).is_file()
            assert httpx.get(f"{app.url}/images/{result['filename']}").status_code == 200
        assert not spooled[0].exists()
        log = (app.log_dir / "app.log").read_text()
        assert "a zip_upload job's worker stopped answering: given up after 3 attempts." in log
        assert "upload job of crash.zip (album Crash) was interrupted: marked failed" in log


def test_a_job_accepted_by_one_instance_is_run_by_another(clean_database, tmp_path):
    """The accepting instance runs no jobs (JOB_CONCURRENCY=0); the other's worker takes it."""
    shared = {
        "ZIP_WAIT_SECONDS": "0",
        "WORKER_PROCESSES": "1",
        "IMAGES_DIR": str(tmp_path / "images"),
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with live_app(clean_database, tmp_path / "a", JOB_CONCURRENCY="0", INSTANCE_NAME="a", **shared) as front:
        answer = httpx.post(
            f"{front.url}/api/upload",
            files={"zipfile": ("shop.zip", make_zip(SHOP), "application/zip")},
            headers={**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        path = job_path(answer)
        time.sleep(1.5)  # nobody takes it while only the front runs
        waiting = httpx.get(f"{front.url}{path}", headers={**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        assert waiting["state"] == "queued" and waiting["done"] == 0
        with live_app(clean_database, tmp_path / "b", INSTANCE_NAME="b", **shared):
            client = httpx.Client(base_url=front.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            report = follow(client, path, 30)[-1]
        assert report["state"] == "done" and report["stored"] == 3
        runner = run_sql(clean_database, "SELECT runner FROM upload_jobs")[0][0]
        assert runner.startswith("b:")


def test_a_job_cut_by_a_clean_shutdown_is_finished_by_the_next_start(clean_database, tmp_path):
    entries = [(f"Stop/SKU{n // 4}/{n}.png", noise_png(n, 300)) for n in range(60)]
    with live_app(clean_database, tmp_path, **KILL_SETTINGS) as app:
        path = start_crash_job(app, entries)
    # live_app's exit is SIGTERM: the running job was cut and put back in the queue, not failed.
    state = run_sql(clean_database, "SELECT state FROM upload_jobs")[0][0]
    assert state == "queued"
    # The entries being stored when the cut came finished, each recorded as its entry's result: no image
    # of the job without its entry (the next attempt would store it again beside it).
    recorded = {
        row[0] for row in run_sql(clean_database, "SELECT image FROM upload_job_entries WHERE status = 'stored'")
    }
    first = stored_images(clean_database)
    assert len(first) >= 3 and first == recorded
    with live_app(clean_database, tmp_path, **KILL_SETTINGS) as app:
        report = follow(httpx.Client(base_url=app.url), path, 60)[-1]
        assert report["state"] == "done" and report["stored"] == 60
        assert len(stored_images(clean_database)) == 60 and first < stored_images(clean_database)


def test_a_ticket_opens_only_with_its_secret_key():
    from imagehost.albums.jobs import job_id_of, job_key, new_job_id, ticket

    job_id = new_job_id()
    sealed = ticket("the instances' key", job_id)
    assert job_id not in sealed
    assert job_id_of("the instances' key", job_key(job_id), sealed) == job_id
    assert job_id_of("another key", job_key(job_id), sealed) is None
    assert job_id_of("the instances' key", job_key(job_id), "not hex") is None


def test_a_job_its_instance_never_handed_to_the_queue_is_failed_after_ten_minutes(make_client, settings):
    """An instance that died between making the job's row and queueing its task leaves no task: the
    job waits ten minutes (a slow deferral may still come), then a reader sees it failed."""
    client = make_client(zip_wait_seconds=0, job_concurrency=0)  # no worker here: the job stays queued
    path = job_path(send(client, make_zip([("Lost/SKU1/1.png", photo(1))]), name="lost.zip"))
    run_sql(settings.database_url, "DELETE FROM procrastinate_jobs")
    run_sql(settings.database_url, "UPDATE upload_jobs SET task_id = NULL, created_at = now() - interval '9 minutes'")
    assert client.get(path, headers=JSON).json()["state"] == "queued"  # within the ten minutes: waits
    run_sql(settings.database_url, "UPDATE upload_jobs SET created_at = now() - interval '11 minutes'")
    report = client.get(path, headers=JSON).json()
    assert report["state"] == "failed" and "interrupted by a restart" in report["error"]
    assert not list((settings.images_dir / ".staging" / "jobs").glob("*.zip"))  # its archive's copy removed


def test_a_result_recorded_for_another_entry_under_the_same_number_is_not_taken(make_client, settings):
    """An attempt by an older version numbered the folders' entries too: its number 0 was the folder
    Shop/. The next attempt's entry 0 is a file, which is stored, not reported as that folder."""
    client = make_client(zip_wait_seconds=0, job_concurrency=0)  # no worker: the job waits
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.mkdir("Shop/")
        archive.writestr("Shop/A/a.png", photo(1))
        archive.writestr("Shop/A/b.png", photo(2))
    path = job_path(send(client, raw.getvalue(), name="old.zip"))
    run_sql(
        settings.database_url,
        "INSERT INTO upload_job_entries (job, number, entry, status, album_name, reason_template)"
        " SELECT id, 0, 'Shop/', 'skipped', 'Shop', 'A system file or folder: skipped.' FROM upload_jobs",
    )
    worker = make_client(zip_wait_seconds=0)
    report = follow(worker, path, 30)[-1]
    assert report["state"] == "done", report
    assert [(r["entry"], r["status"]) for r in report["results"]] == [
        ("Shop/A/a.png", "stored"),
        ("Shop/A/b.png", "stored"),
    ]
    assert names_in_album(worker) == ["a.png", "b.png"]


def names_in_album(client) -> list[str]:
    return [item["original_name"] for item in client.get("/albums/Shop/A", headers=JSON).json()["data"]]
