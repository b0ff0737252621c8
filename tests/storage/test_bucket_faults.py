"""STORAGE=s3 under faults, with real processes throughout (uvicorn, PostgreSQL, moto's S3 server behind
its front, tests/s3server.py): the app killed with SIGKILL during uploads (the folder's crash test,
tests/ops/test_faults.py, for the bucket), and the bucket stopped during uploads. Afterwards, and once
the pending records are old enough to be settled, every 201 has its row and its objects, no object
under the test's prefix lives without its row, and nothing is left pending."""

# ruff: noqa: F811

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from imagehost.images.pipeline import sizes_below
from imagehost.images.storage import THUMBS
from tests.conftest import run_sql
from tests.live import live_app
from tests.ops.test_faults import (
    CrashLedger,
    _process_state,
    crash_client,
    crash_launcher,
    keep_uploading,
    small_png,
    wait_for,
)
from tests.s3server import S3Server, s3_server  # noqa: F401

SIZES = (160,)
REQUEST_SECONDS = 60  # far above what an upload takes, even through the store's retries: a hang fails


def bucket_keys(s3_server: S3Server, prefix: str) -> set[str]:
    """Every key under `prefix`, without it, read straight from moto (not through the front)."""
    s3 = s3_server.boto3_client()
    found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket, Prefix=prefix):
        found.update(item["Key"].removeprefix(prefix) for item in page.get("Contents", []))
    return found


def settle(database_url: str) -> None:
    """Make every pending record old enough for the next start to settle it (the grace is 10 minutes)."""
    run_sql(database_url, "UPDATE pending_objects SET started_at = now() - interval '1 hour'")


def pending(database_url: str) -> int:
    return run_sql(database_url, "SELECT count(*) FROM pending_objects")[0][0]


def assert_bucket_matches_rows(
    s3_server: S3Server, prefix: str, database_url: str, app_url: str, accepted: dict[str, dict]
) -> dict:
    """What a user would check: each 201 has its row; each row has its original (the bytes the app serves,
    with the row's size and SHA-256) and its thumbnails; no object without a row; nothing pending."""
    rows = {
        row["stored_name"]: row
        for row in run_sql(database_url, "SELECT stored_name, sha256, size_bytes, width, height FROM images")
    }
    assert set(accepted) <= set(rows), f"answered 201 but no row: {sorted(set(accepted) - set(rows))[:5]}"
    for name, answer in accepted.items():
        assert rows[name]["size_bytes"] == answer["size"], name
    keys = bucket_keys(s3_server, prefix)
    expected = {
        *rows,
        *(
            f"{THUMBS}/{size}/{name}.webp"
            for name, row in rows.items()
            for size in sizes_below(SIZES, row["width"], row["height"])
        ),
    }
    assert keys == expected, {
        "objects without a row": sorted(keys - expected)[:5],
        "missing": sorted(expected - keys)[:5],
    }
    s3 = s3_server.boto3_client()
    with httpx.Client(timeout=REQUEST_SECONDS) as client:
        for name, row in rows.items():
            stored = s3.get_object(Bucket=s3_server.bucket, Key=f"{prefix}{name}")["Body"].read()
            assert len(stored) == row["size_bytes"] and hashlib.sha256(stored).hexdigest() == row["sha256"], name
            served = client.get(f"{app_url}/images/{name}")
            assert served.status_code == 200 and served.content == stored, name
    assert pending(database_url) == 0
    return rows


def test_sigkill_during_uploads_to_the_bucket_loses_no_answered_upload_and_leaves_no_object_without_a_row(
    clean_database, s3_server, tmp_path
):
    prefix = "crash/"
    ledger = CrashLedger()
    rng = random.Random(20261125)
    kills = 0
    with crash_launcher(
        clean_database, tmp_path, SECRET_KEY="bucket-crash-secret", **s3_server.env(prefix)
    ) as launcher:
        uploaders = [crash_client() for _ in range(4)]
        with ThreadPoolExecutor(max_workers=len(uploaders)) as pool:
            # 4 kills at least, and more (up to 12) until 8 uploads were answered and a kill left a record
            # pending: on a loaded machine a kill may land before any upload is in flight.
            while kills < 12 and (kills < 4 or len(ledger.accepted) < 8 or not pending(clean_database)):
                pid = launcher.start()
                stop = threading.Event()
                work = [
                    pool.submit(keep_uploading, client, launcher.url, ledger, stop, rng.randrange(10**9))
                    for client in uploaders
                ]
                time.sleep(rng.uniform(0.5, 1.5))
                os.kill(pid, signal.SIGKILL)
                kills += 1
                stop.set()
                for future in work:
                    future.result()
        # The records the kills left are younger than the grace: age them, and the next start settles them.
        left_pending = pending(clean_database)
        settle(clean_database)
        pid = launcher.start()
        wait_for(lambda: pending(clean_database) == 0, 20, "every pending record settled at start")
        rows = assert_bucket_matches_rows(s3_server, prefix, clean_database, launcher.url, ledger.accepted)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in _process_state(pid), 15, "app stopped")

    assert not ledger.unexpected, ledger.unexpected[:5]
    log = (tmp_path / "logs" / "app.log").read_text(encoding="utf-8")
    settled = log.count("interrupted upload or delete of")
    print(
        f"{kills} kills: {len(ledger.accepted)} uploads answered 201, {len(rows)} images at the end,"
        f" {left_pending} records pending after the kills, {settled} settled"
    )
    assert len(ledger.accepted) >= 8, "too few uploads answered between the kills to test anything"
    assert settled == left_pending > 0, "no kill landed while an upload was in flight: the test did not test that"


def test_the_bucket_stopped_during_uploads_costs_503s_never_a_500_or_a_hang_and_loses_nothing(
    clean_database, s3_server, tmp_path
):
    prefix = "outage/"
    settings = {**s3_server.env(prefix), "THUMBNAIL_SIZES": "160"}
    accepted: dict[str, dict] = {}
    statuses: list[int] = []
    problems: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def keep_uploading_through(url: str, seed: int) -> None:
        with httpx.Client(timeout=REQUEST_SECONDS) as client:
            while not stop.is_set():
                seed += 1000
                began = time.monotonic()
                try:
                    answer = client.post(
                        f"{url}/upload",
                        files={"file": ("outage.png", small_png(seed), "image/png")},
                        headers={"Accept": "application/json"},
                    )
                except httpx.HTTPError as error:  # a timeout included: the app must always answer
                    with lock:
                        problems.append(f"no answer after {time.monotonic() - began:.1f} s: {error!r}")
                    return
                with lock:
                    statuses.append(answer.status_code)
                    if answer.status_code == 201:
                        accepted[answer.json()["filename"]] = answer.json()
                    elif answer.status_code != 503:
                        problems.append(f"{answer.status_code} {answer.text[:200]}")

    (tmp_path / "during").mkdir()
    (tmp_path / "after").mkdir()
    with live_app(clean_database, tmp_path / "during", **settings) as app:
        with ThreadPoolExecutor(max_workers=4) as pool:
            work = [pool.submit(keep_uploading_through, app.url, seed) for seed in range(4)]
            try:
                time.sleep(1.5)
                before = len(statuses)
                # Longer than the store's retries (about 3 s): uploads in flight and new ones get their 503.
                with s3_server.stopped():
                    time.sleep(5)
                during = len(statuses) - before
                time.sleep(2)
            finally:
                stop.set()
            for future in work:
                future.result()
        assert not problems, problems[:5]
        assert 503 in statuses and 201 in statuses, statuses
        # Once the store is back, the app takes uploads again at once.
        again = httpx.post(
            f"{app.url}/upload",
            files={"file": ("again.png", small_png(1), "image/png")},
            headers={"Accept": "application/json"},
            timeout=REQUEST_SECONDS,
        )
        assert again.status_code == 201, again.text
        accepted[again.json()["filename"]] = again.json()
    left_pending = pending(clean_database)
    settle(clean_database)
    with live_app(clean_database, tmp_path / "after", **settings) as app:
        wait_for(lambda: pending(clean_database) == 0, 20, "every pending record settled at start")
        rows = assert_bucket_matches_rows(s3_server, prefix, clean_database, app.url, accepted)
        after = httpx.post(
            f"{app.url}/upload",
            files={"file": ("after.png", small_png(2), "image/png")},
            headers={"Accept": "application/json"},
            timeout=REQUEST_SECONDS,
        )
        assert after.status_code == 201, after.text
        assert after.json()["filename"] in bucket_keys(s3_server, prefix)
    print(
        f"{statuses.count(201)} uploads answered 201, {statuses.count(503)} answered 503 ({during} while the store"
        f" was down); {left_pending} records pending after the outage, {len(rows)} images at the end"
    )
