"""`just thumbnails` as tasks of the job queue: the running instances' workers take the batches."""

# ruff: noqa: F811

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from tests.conftest import PROJECT_ROOT, png_bytes, run_sql
from tests.live import live_app
from tests.s3server import s3_server  # noqa: F401
from tests.storage.test_bucket_faults import bucket_keys


def thumbnails_command(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagehost", "thumbnails", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def uploaded_without_thumbnails(app, count: int, size: tuple[int, int]) -> list[str]:
    """`count` images of `size` uploaded to `app`, their thumbnails removed; their stored names."""
    names = []
    for shade in range(count):
        response = httpx.post(
            f"{app.url}/upload",
            files={"file": ("p.png", png_bytes(*size, (shade * 10, 90, 90)), "image/png")},
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 201, response.text
        names.append(response.json()["filename"])
    for thumbnail in (app.images_dir / "thumbs").rglob("*.webp"):
        thumbnail.unlink()
    return names


def test_the_batches_are_made_by_a_running_instances_worker(clean_database, tmp_path):
    with live_app(clean_database, tmp_path, JOB_CONCURRENCY="2", THUMBNAIL_SIZES="160,480") as app:
        names = uploaded_without_thumbnails(app, 5, (900, 600))

        # The command queues three batches and makes none itself: only the app's worker can.
        command_logs = tmp_path / "command-logs"
        result = thumbnails_command({**app.env, "LOG_DIR": str(command_logs)}, "--queue-only", "--batch", "2")
        assert result.returncode == 0, result.stderr
        assert "3 batch(es) of up to 2 images queued; the app instances' workers make them" in result.stdout
        assert "5 of 5 images got new thumbnails." in result.stdout
        for name in names:
            for size in (160, 480):
                assert (app.images_dir / "thumbs" / str(size) / f"{name}.webp").is_file()
            assert httpx.get(f"{app.url}/images/thumbs/160/{name}.webp").status_code == 200
        app_log = (app.log_dir / "app.log").read_text()
        batches = [line for line in app_log.splitlines() if "Thumbnails:" in line]
        assert len(batches) == 3, batches
        assert "2 of 2 images with ids 1 to 2 got new thumbnails." in app_log
        assert "1 of 1 images with ids 5 to 5 got new thumbnails." in app_log
        assert "got new thumbnails" not in (command_logs / "app.log").read_text()
        # The run's rows are gone with the command, and the queue holds nothing of it.
        assert run_sql(clean_database, "SELECT count(*) FROM thumbnail_batches")[0][0] == 0
        assert (
            run_sql(clean_database, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'thumbnails'")[0][0] == 0
        )

        # Nothing missing: the batches look and make nothing; --all remakes every one.
        again = thumbnails_command({**app.env, "LOG_DIR": str(command_logs)}, "--queue-only")
        assert "0 of 5 images got new thumbnails." in again.stdout
        remade = thumbnails_command({**app.env, "LOG_DIR": str(command_logs)}, "--all")
        assert "5 of 5 images got new thumbnails." in remade.stdout


def test_a_batch_cut_by_a_killed_worker_is_made_by_the_next(clean_database, tmp_path):
    import signal
    import time

    settings = {"JOB_CONCURRENCY": "1", "JOB_STALLED_SECONDS": "3", "WORKER_PROCESSES": "1"}
    with live_app(clean_database, tmp_path, **settings) as app:
        names = uploaded_without_thumbnails(app, 24, (3000, 2400))
        env = {**app.env, "LOG_DIR": str(tmp_path / "command-logs")}
        command = subprocess.Popen(
            [sys.executable, "-m", "imagehost", "thumbnails", "--queue-only", "--batch", "8"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        query = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'thumbnails' AND status = 'doing'"
        deadline = time.monotonic() + 30
        while run_sql(clean_database, query)[0][0] == 0:
            assert time.monotonic() < deadline and command.poll() is None
            time.sleep(0.02)
        app.process.send_signal(signal.SIGKILL)  # mid-batch: its worker is gone with it
        app.process.wait(10)
    unfinished = run_sql(clean_database, "SELECT count(*) FROM thumbnail_batches WHERE finished_at IS NULL")[0][0]
    assert unfinished >= 1  # the kill cut a batch (or left batches waiting)

    # The next instance's sweep finds the dead worker's batch and queues it again; its worker makes it.
    with live_app(clean_database, tmp_path, **settings) as app:
        output, errors = command.communicate(timeout=90)
        assert command.returncode == 0, errors
        # Every image looked at once; those the cut attempt had already made are not missing any more.
        made = re.search(r"^(\d+) of 24 images got new thumbnails\.$", output, re.MULTILINE)
        assert made is not None and 16 <= int(made.group(1)) <= 24, output
        for name in names:
            for size in (160, 480, 1280):
                assert (app.images_dir / "thumbs" / str(size) / f"{name}.webp").is_file(), (name, size)
        assert "a thumbnails job's worker stopped answering: queued again." in (app.log_dir / "app.log").read_text()


def remove_bucket_thumbnails(s3_server, prefix: str) -> None:
    s3 = s3_server.boto3_client()
    for key in bucket_keys(s3_server, prefix):
        if key.startswith("thumbs/"):
            s3.delete_object(Bucket=s3_server.bucket, Key=prefix + key)
    assert {key for key in bucket_keys(s3_server, prefix) if key.startswith("thumbs/")} == set()


def test_the_batches_make_a_buckets_thumbnails_in_the_bucket(clean_database, s3_server, tmp_path):
    prefix = "thumbnail-batches/"
    with live_app(clean_database, tmp_path, **s3_server.env(prefix), THUMBNAIL_SIZES="160,480") as app:
        names = uploaded_without_thumbnails(app, 3, (900, 600))
        remove_bucket_thumbnails(s3_server, prefix)

        result = thumbnails_command({**app.env, "LOG_DIR": str(tmp_path / "command-logs")}, "--batch", "2")
        assert result.returncode == 0, result.stderr
        assert "3 of 3 images got new thumbnails." in result.stdout
        thumbs = {f"thumbs/{size}/{name}.webp" for name in names for size in (160, 480)}
        assert thumbs <= bucket_keys(s3_server, prefix)
        assert list(app.images_dir.rglob("*.webp")) == []  # nothing of them on the local disk
        assert httpx.get(f"{app.url}/images/thumbs/480/{names[0]}.webp").status_code == 200


def test_batches_that_fail_every_attempt_make_the_command_exit_1_and_say_so(clean_database, s3_server, tmp_path):
    prefix = "thumbnail-outage/"
    with live_app(clean_database, tmp_path, **s3_server.env(prefix), THUMBNAIL_SIZES="160") as app:
        uploaded_without_thumbnails(app, 2, (400, 300))
        remove_bucket_thumbnails(s3_server, prefix)
        command_logs = tmp_path / "command-logs"
        with s3_server.stopped():  # the store away through all three attempts of every batch
            result = thumbnails_command({**app.env, "LOG_DIR": str(command_logs)}, "--batch", "1")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "0 of 0 images got new thumbnails." in result.stdout
        assert "2 of 2 batches failed: app.log says why." in result.stdout
        assert not run_sql(clean_database, "SELECT 1 FROM thumbnail_batches")  # its rows removed all the same
        # The store is back: the same command makes them.
        again = thumbnails_command({**app.env, "LOG_DIR": str(command_logs)}, "--batch", "1")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "2 of 2 images got new thumbnails." in again.stdout


def test_a_batch_size_below_one_is_refused_with_a_message(clean_database, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"), "DATABASE_URL": clean_database}
    result = thumbnails_command(env, "--batch", "0")
    assert result.returncode == 2
    assert "--batch takes a number of images, 1 or more" in result.stderr
