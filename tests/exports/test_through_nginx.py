"""Exports through the real nginx (tests/test_stack.py's way of running it): the album ZIP is passed
through as the app makes it (proxy_buffering off), so a client that reads slowly holds its export
slot and the next export gets the app's 503 with Retry-After; the headers arrive as the app sent them;
the export routes wait EXPORT_TIMEOUT_SECONDS, not the other routes' 60 s and 30 s."""

from __future__ import annotations

import io
import re
import shutil
import time
import zipfile
from urllib.parse import quote

import httpx
import pytest

from imagehost.exports.slots import RETRY_AFTER_SECONDS
from tests.exports.shop import JSON
from tests.exports.test_busy import ZIP_FILES, big_album
from tests.live import live_app, require
from tests.test_compose import exported, nginx_env
from tests.test_stack import running_nginx

pytestmark = pytest.mark.stack


def export_locations(config: str) -> dict[str, str]:
    """The body of each export location in a rendered nginx.conf."""
    found = {}
    for match in re.finditer(
        r"location (~ \"\^/api/export-\(xlsx\|csv\)\$\"|/export/|/download/album/) \{(.*?)\}", config, re.S
    ):
        found[match.group(1)] = match.group(2)
    return found


def test_the_album_zip_streams_through_nginx_with_the_apps_headers(settings, tmp_path):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    with (
        live_app(
            settings.database_url, tmp_path, EXPORT_CONCURRENCY="1", EXPORT_TIMEOUT_SECONDS="900", WORKER_PROCESSES="0"
        ) as app,
        running_nginx(binary, tmp_path / "nginx", app) as port,
    ):
        files = big_album(settings.database_url, app.images_dir)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=JSON) as client:
            with client.stream("GET", "/download/album/big") as held:
                assert held.status_code == 200
                assert held.headers["server"] == "nginx"
                assert held.headers["content-type"] == "application/zip"
                assert held.headers["content-disposition"].startswith("attachment;")
                assert "big.zip" in held.headers["content-disposition"]
                assert "content-length" not in held.headers and held.headers["transfer-encoding"] == "chunked"
                assert len(held.headers.get_list("content-security-policy")) == 1  # the app's, once
                chunks = held.iter_bytes()
                received = [next(chunks)]
                # nginx buffers none of it to disk: however long the client waits, the app is still
                # sending (buffered, the whole archive would be in nginx's temporary file by now).
                time.sleep(1.5)
                busy = client.get("/export/images.csv")
                assert busy.status_code == 503, busy.text
                assert busy.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
                assert "Too many exports" in busy.json()["error"]
                received.extend(chunks)
            with zipfile.ZipFile(io.BytesIO(b"".join(received))) as archive:
                names = archive.namelist()
                assert len(names) == ZIP_FILES
                assert all(archive.read(name) == files[name.split("/", 1)[1]] for name in names)
            sheet = client.get(f"/api/export-xlsx?album_name={quote('big')}")
            assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("application/vnd.openxml")
            assert "links_big.xlsx" in sheet.headers["content-disposition"]
            catalogue = client.get("/export/images.csv")
            assert catalogue.status_code == 200 and catalogue.headers["content-type"].startswith("text/csv")
        locations = export_locations((tmp_path / "nginx" / "default.conf").read_text())
        assert len(locations) == 3
        for body in locations.values():
            assert "proxy_read_timeout 900s;" in body and "send_timeout 900s;" in body
        assert "proxy_buffering off;" in locations["/download/album/"]


@pytest.mark.parametrize("value", ["1", "600", "86400"])
def test_nginx_reads_the_export_timeout_as_the_app_does(value):
    from imagehost.settings import Settings

    seconds = Settings.from_env({"EXPORT_TIMEOUT_SECONDS": value}).export_timeout_seconds
    assert exported(nginx_env(EXPORT_TIMEOUT_SECONDS=value))["NGINX_EXPORT_TIMEOUT"] == f"{seconds}s"
    assert exported(nginx_env())["NGINX_EXPORT_TIMEOUT"] == f"{Settings().export_timeout_seconds}s"
