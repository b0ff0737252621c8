"""GET /metrics: the numbers move with what happens (uploads, refusals, deletes, ZIP entries, jobs,
workers, outages), their labels stay within fixed sets and route templates, counters only grow,
and who may read it."""

from __future__ import annotations

import itertools
import math
import re
import secrets
import shutil
import time

import psutil
import pytest
from litestar.routes import HTTPRoute

from imagehost.metrics import instruments
from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, png_bytes, run_sql, upload
from tests.metrics.conftest import METRICS_TOKEN, label_values, parse, scrape, value

JSON = {"Accept": "application/json"}


@pytest.fixture
def client(make_client):
    return make_client(metrics_token=METRICS_TOKEN)


def delta(before, after, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def jpeg_bytes(width: int = 600, height: int = 300) -> bytes:
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), (20, 140, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


def thumbnail_files(settings) -> int:
    thumbs = settings.images_dir / "thumbs"
    return sum(1 for path in thumbs.rglob("*.webp")) if thumbs.exists() else 0


# --- the numbers move ----------------------------------------------------------------------------


def test_uploads_and_refusals_are_counted_by_outcome_and_format(client, settings):
    before = scrape(client)
    wide_png, photo_jpg = png_bytes(600, 300), jpeg_bytes()
    assert upload(client, wide_png, "wide.png", headers=JSON).status_code == 201
    assert upload(client, photo_jpg, "photo.JPEG", headers=JSON).status_code == 201
    assert upload(client, b"not an image at all", "notes.txt", headers=JSON).status_code == 415
    assert upload(client, b"\x89PNG broken", "broken.png", headers=JSON).status_code in (400, 415)
    after = scrape(client)

    name = "imagehost_uploads_total"
    assert delta(before, after, name, outcome="stored", format="png") == 1
    assert delta(before, after, name, outcome="stored", format="jpg") == 1
    assert delta(before, after, name, outcome="refused", format="other") == 1
    assert delta(before, after, name, outcome="refused", format="png") == 1
    assert delta(before, after, name) == 4
    assert delta(before, after, "imagehost_upload_duration_seconds_count", outcome="stored") == 2
    assert delta(before, after, "imagehost_upload_duration_seconds_count", outcome="refused") == 2
    assert delta(before, after, "imagehost_upload_duration_seconds_sum") > 0
    assert delta(before, after, "imagehost_upload_size_bytes_sum", outcome="stored") == len(wide_png) + len(photo_jpg)
    # Every thumbnail written to the thumbs folder, and only those.
    assert delta(before, after, "imagehost_thumbnails_made_total") == thumbnail_files(settings) > 0
    # The scrape-time readings: the database's own totals.
    stored = run_sql(settings.database_url, "SELECT count(*), coalesce(sum(size_bytes), 0) FROM images")[0]
    assert value(after, "imagehost_images_stored") == stored[0] == 2
    assert value(after, "imagehost_stored_bytes") == stored[1]
    assert value(after, "imagehost_database_up") == 1


def test_a_delete_is_counted_and_the_totals_follow(client):
    body = upload(client, png_bytes(), "gone.png", headers=JSON).json()
    before = scrape(client)
    assert (
        client.delete(f"/delete/{body['id']}", headers={**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code
        == 200
    )
    after = scrape(client)
    assert delta(before, after, "imagehost_deletes_total") == 1
    assert value(before, "imagehost_images_stored") - value(after, "imagehost_images_stored") == 1


def test_zip_entries_are_counted_by_outcome_and_jobs_by_state(client, settings):
    archive = make_zip(
        [
            ("Shop/SKU1/front.png", photo(1)),
            ("Shop/SKU1/back.png", photo(2)),
            ("Shop/SKU1/again.png", photo(1)),  # the same bytes as front.png: skipped
            ("Shop/SKU2/notes.txt", b"hello"),  # refused
            ("Shop/.DS_Store", b"x"),  # a system file: skipped
        ]
    )
    before = scrape(client)
    response = client.post("/api/upload", files={"zipfile": ("shop.zip", archive, "application/zip")}, headers=JSON)
    assert response.status_code == 201, response.text
    body = response.json()
    after = scrape(client)
    assert (body["stored"], body["refused"], body["skipped"]) == (2, 1, 2)
    assert delta(before, after, "imagehost_zip_entries_total", outcome="stored") == 2
    assert delta(before, after, "imagehost_zip_entries_total", outcome="refused") == 1
    assert delta(before, after, "imagehost_zip_entries_total", outcome="skipped") == 2
    # Entries that reached the upload checks count as uploads too (the refused .txt never did).
    assert delta(before, after, "imagehost_uploads_total", outcome="stored", format="png") == 2
    # Each job the archive made went queued -> running -> done, as its row says.
    jobs = run_sql(settings.database_url, "SELECT state, count(*) FROM upload_jobs GROUP BY state")
    finished = dict((row[0], row[1]) for row in jobs)
    assert delta(before, after, "imagehost_zip_jobs_total", state="done") == finished.get("done", 0)
    assert delta(before, after, "imagehost_zip_jobs_total", state="failed") == finished.get("failed", 0) == 0
    for state in ("queued", "running"):
        assert delta(before, after, "imagehost_zip_jobs_total", state=state) == finished.get("done", 0)


def test_a_storage_failure_is_counted_as_a_store_outage(client, settings):
    before = scrape(client)
    shutil.rmtree(settings.images_dir)
    settings.images_dir.write_text("a file where the images folder should be")
    try:
        response = upload(client, png_bytes(), "nowhere.png", headers=JSON)
    finally:
        settings.images_dir.unlink()
        settings.images_dir.mkdir()
    assert response.status_code == 503, response.text
    after = scrape(client)
    assert delta(before, after, "imagehost_store_outages_total", reason="unavailable") == 1
    assert delta(before, after, "imagehost_uploads_total", outcome="refused", format="png") == 1


def test_a_lost_database_is_counted_once_per_outage(client):
    database = client.app.state.database
    before = scrape(client)
    database.lost("ConnectionDoesNotExistError: connection was closed in the middle of operation")
    database.lost("ConnectionDoesNotExistError: the same outage, noticed again")
    after = scrape(client)
    assert delta(before, after, "imagehost_database_outages_total") == 1


def test_the_pool_and_the_last_backup_and_check(client, settings):
    empty = scrape(client)
    assert math.isnan(value(empty, "imagehost_last_backup_age_seconds"))
    assert value(empty, "imagehost_last_backup_outcome") == 0  # no outcome yet
    run_sql(
        settings.database_url,
        "INSERT INTO operations_state (kind, at, outcome, detail) VALUES"
        " ('backup', now() - interval '1 hour', 'ok', 'backup made'),"
        " ('check', now() - interval '2 hours', 'problems', '3 problems')",
    )
    samples = scrape(client)
    assert 3600 <= value(samples, "imagehost_last_backup_age_seconds") < 3600 + 60
    assert 7200 <= value(samples, "imagehost_last_check_age_seconds") < 7200 + 60
    assert value(samples, "imagehost_last_backup_outcome", outcome="ok") == 1
    assert value(samples, "imagehost_last_backup_outcome") == 1  # that one, and no other
    assert value(samples, "imagehost_last_check_outcome", outcome="problems") == 1
    assert value(samples, "imagehost_last_check_outcome") == 1
    assert label_values(samples, "imagehost_last_check_outcome", "outcome") == set(instruments.OPERATION_OUTCOMES)
    pool = client.app.state.database.engine.pool
    assert value(samples, "imagehost_database_pool_connections") >= 1
    assert 0 <= value(samples, "imagehost_database_pool_connections_in_use") <= pool.get_max_size()


def test_worker_pool_gauges_and_a_restart(make_client):
    client = make_client(metrics_token=METRICS_TOKEN, worker_processes=1)
    samples = scrape(client)
    assert (value(samples, "imagehost_workers_busy"), value(samples, "imagehost_workers_idle")) == (0, 1)
    workers = [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    assert len(workers) == 1
    workers[0].kill()
    workers[0].wait(10)
    time.sleep(0.2)  # the pool sees the exit on its event loop
    before = scrape(client)
    assert upload(client, png_bytes(), "after-a-kill.png", headers=JSON).status_code == 201
    after = scrape(client)
    assert delta(before, after, "imagehost_worker_restarts_total") == 1
    assert (value(after, "imagehost_workers_busy"), value(after, "imagehost_workers_idle")) == (0, 1)


# --- bounded labels ------------------------------------------------------------------------------


def route_templates(app) -> set[str]:
    """As the middleware labels them: /images/{stored_name}, without the parameters' types."""
    return {route.path_format for route in app.routes if isinstance(route, HTTPRoute)}


def test_labels_stay_within_fixed_sets_and_route_templates(client):
    scrape(client)
    before = scrape(client)
    marks = [secrets.token_hex(6) for _ in range(30)]
    for index, mark in enumerate(marks):
        extension = ("png", "PNG", "exe", "jpeg", "gif", "webp", f"x{mark}")[index % 7]
        content = png_bytes(20 + index, 20) if index % 2 else b"garbage " + mark.encode()
        assert upload(client, content, f"{mark}.{extension}", headers=JSON).status_code < 500
    for index, mark in enumerate(marks):
        path = (f"/{mark}", f"/images/{mark}.png", f"/albums/{mark}", f"/static/{mark}.css", f"/{mark}/x/y")[index % 5]
        assert client.get(path, headers=JSON).status_code == 404
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    after = parse(response.text)
    assert not any(mark in response.text for mark in marks), "a name or a path became a label value"
    assert label_values(after, "imagehost_uploads", "format") == set(instruments.FORMATS)
    assert label_values(after, "imagehost_uploads", "outcome") == set(instruments.UPLOAD_OUTCOMES)
    assert label_values(after, "imagehost_request", "path") <= route_templates(client.app)
    # The uploads and 404s added series only for routes already declared, none per name or path.
    new = {name_labels for name_labels in after if name_labels not in before}
    new_paths = {dict(labels).get("path") for _, labels in new if "path" in dict(labels)}
    assert new_paths <= route_templates(client.app)
    # Bounded by the fixed sets (formats x outcomes x buckets, routes x statuses), not by the 60 names:
    # counted as what this test added, since the process's registry holds every earlier test's series.
    assert len(new) < 400


def test_counters_only_grow(client):
    scrapes = [scrape(client)]
    for round_number in range(3):
        upload(client, png_bytes(30 + round_number, 20), "grow.png", headers=JSON)
        upload(client, b"nope", "grow.txt", headers=JSON)
        client.get("/images/", headers=JSON)
        scrapes.append(scrape(client))
    counter_like = re.compile(r"(_total|_count|_sum|_bucket)$")
    for earlier, later in itertools.pairwise(scrapes):
        for key, number in earlier.items():
            if counter_like.search(key[0]) and "in_progress" not in key[0]:
                assert key in later, f"{key} disappeared"
                assert later[key] >= number, f"{key} went down: {number} -> {later[key]}"
    assert value(scrapes[-1], "imagehost_requests_total", path="/metrics") > value(
        scrapes[0], "imagehost_requests_total", path="/metrics"
    )


def test_http_requests_are_labelled_by_route_template_and_status(client):
    body = upload(client, png_bytes(), "labelled.png", headers=JSON).json()
    before = scrape(client)
    assert client.get(f"/images/{body['filename']}").status_code == 200
    assert client.get("/images/AAAAAAAAAAAAAAAAAAAAAA.png").status_code == 404
    after = scrape(client)
    template = "/images/{stored_name}"
    name = "imagehost_requests_total"
    assert delta(before, after, name, path=template, status_code="200", method="GET", app_name="imagehost") == 1
    assert delta(before, after, name, path=template, status_code="404", method="GET") == 1
    assert delta(before, after, "imagehost_request_duration_seconds_count", path=template) == 2


# --- who may read it -----------------------------------------------------------------------------


def get_metrics(client, token: str | None = None):
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get("/metrics", headers=headers)


def test_the_token_rule(make_oidc_client, sign_in):
    client = make_oidc_client(metrics_token=METRICS_TOKEN, api_tokens=("service-token",))
    assert get_metrics(client).status_code == 401
    assert get_metrics(client, "wrong-token").status_code == 401
    assert get_metrics(client, METRICS_TOKEN).status_code == 200
    assert get_metrics(client, ADMIN_TOKEN).status_code == 200
    assert get_metrics(client, "service-token").status_code == 403  # a service token is no metrics token
    # The metrics token opens /metrics alone: anywhere else it is a token nobody issued.
    assert client.get("/ops/stats", headers={**JSON, "Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 401
    assert sign_in(client, "plain-user", roles=["appuser"]).status_code == 303
    assert get_metrics(client).status_code == 403
    client.cookies.clear()
    assert sign_in(client, "the-admin", roles=["appadmin"]).status_code == 303
    assert get_metrics(client).status_code == 200
    assert get_metrics(client).headers["cache-control"] == "no-store"


def test_without_a_metrics_token_admins_only(make_client):
    client = make_client(metrics_token="")
    assert get_metrics(client).status_code == 401
    assert get_metrics(client, METRICS_TOKEN).status_code == 401
    assert get_metrics(client, "").status_code == 401
    assert get_metrics(client, ADMIN_TOKEN).status_code == 200


def test_a_service_token_that_is_also_the_metrics_token_reads_it(make_client):
    client = make_client(metrics_token=METRICS_TOKEN, api_tokens=(METRICS_TOKEN,))
    assert get_metrics(client, METRICS_TOKEN).status_code == 200


def test_refusals_are_in_russian_for_russian_browsers(make_client):
    client = make_client(metrics_token=METRICS_TOKEN)
    response = client.get("/metrics", headers={"Accept": "application/json", "Accept-Language": "ru"})
    assert response.status_code == 401
    assert re.search("[а-яА-Я]", response.json()["error"]), response.text
