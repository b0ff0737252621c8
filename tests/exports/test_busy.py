"""EXPORT_CONCURRENCY: past it an export is refused at once with 503 and Retry-After, in the form
the client asked for; a slot comes back when its answer ends, however it ends. And the app's own
deadline (UPLOAD_READ_TIMEOUT_SECONDS, for request bodies) never cuts an export a client reads slowly."""

from __future__ import annotations

import io
import os
import time
import zipfile

import httpx
import pytest

from imagehost.exports.slots import RETRY_AFTER_SECONDS
from tests.conftest import HTML, HTMX, run_sql
from tests.exports.bulk import bulk_album
from tests.exports.shop import JSON, upload_shop
from tests.live import live_app

RUSSIAN = {"Accept-Language": "ru"}
EXPORTS = [
    "/api/export-xlsx?album_name=%D0%92%D0%B5%D1%81%D0%BD%D0%B0",
    "/api/export-csv?album_name=%D0%92%D0%B5%D1%81%D0%BD%D0%B0",
    "/export/images.csv",
    "/export/images.xlsx",
    "/download/album/%D0%92%D0%B5%D1%81%D0%BD%D0%B0",
]


def exports_of(client):
    """The app's ExportService, whose slots the test takes as a running export would."""
    return client.app.dependencies["exports"].dependency()


@pytest.mark.parametrize("path", EXPORTS)
def test_past_the_limit_each_export_answers_503_with_retry_after(make_client, path):
    client = make_client(export_concurrency=1)
    upload_shop(client)
    slot = exports_of(client).slots.take("export held by the test", "test")
    try:
        busy = client.get(path, headers=JSON)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert "at most 1 at once" in busy.json()["error"]
    finally:
        slot.release()
    assert client.get(path, headers=JSON).status_code == 200  # the slot is back


def test_the_503_in_every_representation_and_in_russian(make_client):
    client = make_client(export_concurrency=1)
    upload_shop(client)
    slot = exports_of(client).slots.take("export held by the test", "test")
    try:
        page = client.get("/export/images.xlsx", headers={**HTML, **RUSSIAN})
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert "слишком много выгрузок" in page.text and "<html" in page.text
        fragment = client.get("/export/images.csv", headers=HTMX)
        assert fragment.status_code == 503 and fragment.headers["hx-retarget"] == "#messages"
        assert "Too many exports" in fragment.text and "<html" not in fragment.text
        assert fragment.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        # A request the export would refuse anyway is refused for its own reason, not sent to retry.
        assert client.get("/api/export-csv?album_name=nothing", headers=JSON).status_code == 404
        assert client.get("/download/album/nothing", headers=JSON).status_code == 404
        assert client.get("/export/images.csv?format=tiff", headers=JSON).status_code == 422
    finally:
        slot.release()


def test_each_refusal_is_logged_with_who_asked(make_client, app_log):
    client = make_client(export_concurrency=1)
    upload_shop(client)
    slot = exports_of(client).slots.take("export held by the test", "test")
    try:
        client.get("/export/images.csv", headers=JSON)
    finally:
        slot.release()
    assert any("export csv catalogue by anonymous refused: 1 export(s) already running" in line for line in app_log())


ZIP_FILES, FILE_BYTES = 40, 1024 * 1024  # far more than the sockets between server and client buffer


def big_album(database_url: str, images_dir) -> dict[str, bytes]:
    """An album of ZIP_FILES images of FILE_BYTES random bytes each (rows by SQL, files written here)."""
    bulk_album(database_url, "big", articles=2, per_article=ZIP_FILES // 2)
    rows = run_sql(database_url, "SELECT stored_name, original_name FROM images WHERE stored_name LIKE 'bulk%'")
    files = {}
    for row in rows:
        content = os.urandom(FILE_BYTES)
        (images_dir / row["stored_name"]).write_bytes(content)
        files[row["original_name"]] = content
    return files


def test_a_slow_reader_holds_its_slot_the_deadline_never_cuts_it_and_a_client_that_leaves_frees_it(settings, tmp_path):
    with live_app(
        settings.database_url, tmp_path, EXPORT_CONCURRENCY="1", UPLOAD_READ_TIMEOUT_SECONDS="1", WORKER_PROCESSES="0"
    ) as app:
        files = big_album(settings.database_url, app.images_dir)
        with httpx.Client(base_url=app.url, timeout=60, headers=JSON) as client:
            with client.stream("GET", "/download/album/big") as held:
                assert held.status_code == 200
                chunks = held.iter_bytes()
                received = [next(chunks)]
                # The first answer is far from done (the client stopped reading): a second export waits.
                busy = client.get("/export/images.csv")
                assert busy.status_code == 503 and busy.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
                page = client.get("/export/images.csv", headers=HTML)
                assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
                time.sleep(2)  # past UPLOAD_READ_TIMEOUT_SECONDS: a deadline for bodies, not for answers
                received.extend(chunks)
            with zipfile.ZipFile(io.BytesIO(b"".join(received))) as archive:
                assert len(archive.namelist()) == ZIP_FILES
                for name in archive.namelist():
                    assert archive.read(name) == files[name.split("/", 1)[1]]  # complete, byte for byte
            assert client.get("/export/images.csv").status_code == 200  # its slot came back

            # A client that goes away mid-answer gives its slot back too.
            with client.stream("GET", "/download/album/big") as left:
                assert left.status_code == 200
                next(left.iter_bytes())
            deadline = time.monotonic() + 10
            while (answer := client.get("/export/images.csv")).status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert answer.status_code == 200
