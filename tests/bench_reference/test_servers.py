"""The reference servers of `just bench` still work: an upload to each, started for real, is stored."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench_reference.direct_links import bare_nginx, keep_alive_gets, load, nginx_binary
from tests.bench_reference.servers import bare_asgi, naive_flask
from tests.bench_support import small_png
from tests.conftest import run_sql
from tests.live import require

BYTES = small_png()


def post(url: str, name: str, content: bytes) -> httpx.Response:
    return httpx.post(f"{url}/upload", files={"file": (name, content, "image/png")}, timeout=30)


def test_bare_asgi_writes_the_uploaded_bytes(tmp_path: Path) -> None:
    with bare_asgi(tmp_path) as server:
        response = post(server.url, "small.png", BYTES)
        assert response.status_code == 201, response.text
        stored = server.upload_dir / response.json()["stored_name"]
        assert stored.read_bytes() == BYTES
        assert response.json()["size_bytes"] == len(BYTES)
        large = os.urandom(3_000_000)  # reaches the app in many chunks
        response = post(server.url, "large.png", large)
        assert (server.upload_dir / response.json()["stored_name"]).read_bytes() == large
        refused = httpx.post(f"{server.url}/upload", data={"file": "not a file"}, timeout=30)
        assert refused.status_code == 400


@pytest.fixture
def reference_database(database_url: str) -> Iterator[str]:
    """A database of its own: the naive host's table stays out of ImageHost's schema."""
    run_sql(database_url, "DROP DATABASE IF EXISTS bench_reference_test")
    run_sql(database_url, "CREATE DATABASE bench_reference_test")
    yield database_url.replace("/images_test?", "/bench_reference_test?", 1)
    run_sql(database_url, "DROP DATABASE bench_reference_test WITH (FORCE)")


def test_naive_flask_saves_the_file_and_inserts_its_row(tmp_path: Path, reference_database: str) -> None:
    with naive_flask(tmp_path, reference_database) as server:
        response = post(server.url, "holiday.PNG", BYTES)
        assert response.status_code == 201, response.text
        stored_name = response.json()["stored_name"]
        assert (server.upload_dir / stored_name).read_bytes() == BYTES
        rows = run_sql(reference_database, "SELECT stored_name, original_name, size_bytes FROM naive_uploads")
        assert [tuple(row) for row in rows] == [(stored_name, "holiday.PNG", len(BYTES))]
        assert post(server.url, "script.sh", b"#!/bin/sh").status_code == 415
    assert len(run_sql(reference_database, "SELECT 1 FROM naive_uploads")) == 1


def test_the_bare_nginx_serves_its_folder_and_both_load_clients_count_its_answers(tmp_path: Path) -> None:
    binary = nginx_binary()
    require(binary or "nginx")
    folder = tmp_path / "images"
    (folder / "thumbs" / "480").mkdir(parents=True)
    (folder / "picture.png").write_bytes(BYTES)
    (folder / "thumbs" / "480" / "picture.png.webp").write_bytes(b"RIFF....WEBP")
    with bare_nginx(binary, tmp_path / "nginx", folder, "picture.png") as port:
        served = httpx.get(f"http://127.0.0.1:{port}/picture.png")
        assert served.status_code == 200 and served.content == BYTES
        assert served.headers["content-type"] == "image/png"
        assert "x-content-type-options" not in served.headers and "content-security-policy" not in served.headers
        assert httpx.get(f"http://127.0.0.1:{port}/thumbs/480/picture.png.webp").content == b"RIFF....WEBP"
        fallback = asyncio.run(keep_alive_gets(port, "/picture.png", 0.2))
        assert fallback.requests > 0 and fallback.failures == 0
        assert asyncio.run(keep_alive_gets(port, "/missing.png", 0.2)).failures > 0
        if shutil.which("wrk"):
            run = load(port, "/picture.png", 1, with_wrk=True)
            assert run.requests > 0 and run.failures == 0
            assert load(port, "/missing.png", 1, with_wrk=True).failures > 0
