"""Every archive hazard, each in an archive built for real and sent to POST /api/upload."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.albums.zips import (
    corrupt_data,
    flag_encrypted,
    lie_about_size,
    make_zip,
    overlapping_bomb,
    photo,
    with_symlink,
)
from tests.conftest import run_sql

JSON = {"Accept": "application/json"}


def send(client, raw: bytes, name: str = "shop.zip", field: str = "zipfile", **form: str):
    return client.post("/api/upload", files={field: (name, raw, "application/zip")}, data=form or None, headers=JSON)


def by_entry(body: dict) -> dict[str, dict]:
    return {result["entry"]: result for result in body["results"]}


def image_rows(settings) -> int:
    return run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0]


def stored_files(settings) -> list[Path]:
    return [path for path in settings.images_dir.rglob("*") if path.is_file()]


def test_a_ratio_bomb_is_refused_without_inflating_it(client, settings):
    bomb = b"\0" * (4 * 1024 * 1024)  # deflates about 1000 to 1
    raw = make_zip([("Shop/SKU1/bomb.png", bomb), ("Shop/SKU1/real.png", photo(1))])
    assert zipfile.ZipFile(io.BytesIO(raw)).getinfo("Shop/SKU1/bomb.png").compress_size < 10_000
    response = send(client, raw)
    assert response.status_code == 201, response.text
    results = by_entry(response.json())
    assert results["Shop/SKU1/bomb.png"]["status"] == "refused"
    assert "zip bomb" in results["Shop/SKU1/bomb.png"]["error"]
    assert results["Shop/SKU1/real.png"]["status"] == "stored"


def test_a_lying_size_is_caught_while_reading(client, settings):
    real = photo(2, (300, 300))
    raw = lie_about_size(make_zip([("Shop/A/liar.png", real), ("Shop/A/ok.png", photo(3))]), 0, 100)
    body = send(client, raw).json()
    results = by_entry(body)
    assert results["Shop/A/liar.png"]["status"] == "refused"
    assert results["Shop/A/ok.png"]["status"] == "stored"


def test_an_overlapping_entry_bomb_is_refused_whole(client, settings):
    raw = overlapping_bomb(photo(4))
    response = send(client, raw)
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    assert "overlap" in response.json()["error"]
    assert image_rows(settings) == 0


def test_too_many_entries_are_counted_before_unpacking(make_client, settings):
    client = make_client(zip_max_entries=5)
    raw = make_zip([(f"Shop/A/{index}.png", photo(index)) for index in range(6)])
    response = send(client, raw)
    assert response.status_code == 413
    assert "6" in response.json()["error"] and "5" in response.json()["error"]
    assert image_rows(settings) == 0
    assert send(client, make_zip([(f"Shop/A/{index}.png", photo(index)) for index in range(5)])).status_code == 201


def test_the_total_uncompressed_size_is_limited(make_client, settings):
    client = make_client(zip_max_uncompressed_bytes=1000)
    raw = make_zip([("Shop/A/a.png", photo(1, (200, 200))), ("Shop/A/b.png", photo(2, (200, 200)))])
    response = send(client, raw)
    assert response.status_code == 413
    assert image_rows(settings) == 0


def test_zip_slip_names_are_metadata_only(client, settings, tmp_path):
    names = ["../../escaped.png", "/absolute/abs.png", "C:\\Windows\\drive.png", "..\\..\\back.png"]
    raw = make_zip([(name, photo(index)) for index, name in enumerate(names)])
    response = send(client, raw, name="slip.zip")
    assert response.status_code == 201, response.text
    results = by_entry(response.json())
    assert {results[name]["status"] for name in names} == {"stored"}
    assert results["../../escaped.png"]["article_number"] == "escaped"
    assert results["/absolute/abs.png"]["article_number"] == "absolute"
    assert results["C:\\Windows\\drive.png"]["article_number"] == "Windows"
    assert response.json()["album_name"] == "slip"
    # Nothing landed anywhere but the store, under the store's own names.
    pngs = [path for path in tmp_path.rglob("*") if path.suffix == ".png"]
    assert [path for path in pngs if settings.images_dir not in path.parents] == []
    assert all(path.name not in {"escaped.png", "abs.png", "drive.png", "back.png"} for path in stored_files(settings))


def test_nested_archives_are_refused(client):
    inner = make_zip([("x.png", photo(1))])
    raw = make_zip([("Shop/A/inner.zip", inner), ("Shop/A/disguised.png", inner), ("Shop/A/ok.png", photo(2))])
    results = by_entry(send(client, raw).json())
    assert results["Shop/A/inner.zip"]["status"] == "refused"
    assert "nested" in results["Shop/A/inner.zip"]["error"]
    assert results["Shop/A/disguised.png"]["status"] == "refused"
    assert "nested" in results["Shop/A/disguised.png"]["error"]
    assert results["Shop/A/ok.png"]["status"] == "stored"


def test_encrypted_entries_are_refused(client):
    raw = flag_encrypted(make_zip([("Shop/A/secret.png", photo(1)), ("Shop/A/ok.png", photo(2))]), 0)
    results = by_entry(send(client, raw).json())
    assert results["Shop/A/secret.png"]["status"] == "refused"
    assert "encrypted" in results["Shop/A/secret.png"]["error"]
    assert results["Shop/A/ok.png"]["status"] == "stored"


def test_symlinks_are_refused(client):
    raw = with_symlink([("Shop/A/ok.png", photo(2))], "Shop/A/link.png", "/etc/passwd")
    results = by_entry(send(client, raw).json())
    assert results["Shop/A/link.png"]["status"] == "refused"
    assert "symbolic link" in results["Shop/A/link.png"]["error"]
    assert results["Shop/A/ok.png"]["status"] == "stored"


def test_a_corrupt_entry_does_not_stop_the_others(client):
    raw = corrupt_data(make_zip([("Shop/A/broken.png", photo(1, (300, 300))), ("Shop/A/ok.png", photo(2))]), 0)
    response = send(client, raw)
    assert response.status_code == 201
    results = by_entry(response.json())
    assert results["Shop/A/broken.png"]["status"] == "refused"
    assert results["Shop/A/ok.png"]["status"] == "stored"


def test_depth_and_name_length(client):
    deep = "Shop/" + "/".join(f"d{index}" for index in range(9)) + "/deep.png"
    long_name = "Shop/A/" + "x" * 256 + ".png"
    raw = make_zip([(deep, photo(1)), (long_name, photo(2)), ("Shop/" + "/".join("d" * 7) + "/ok.png", photo(3))])
    results = by_entry(send(client, raw).json())
    assert results[deep]["status"] == "refused"
    assert "8 folders" in results[deep]["error"]
    assert results[long_name]["status"] == "refused"
    assert "255" in results[long_name]["error"]
    assert results["Shop/d/d/d/d/d/d/d/ok.png"]["status"] == "stored"  # 8 folders: the limit


def test_system_files_and_folders_are_skipped(client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.mkdir("Shop/")
        archive.mkdir("Shop/A/")
        archive.writestr("Shop/A/ok.png", photo(1))
        archive.writestr("__MACOSX/Shop/A/._ok.png", b"\0\5\26\7")
        archive.writestr("Shop/A/._ok.png", b"\0\5\26\7")
        archive.writestr("Shop/.DS_Store", b"Bud1")
        archive.writestr("Shop/A/Thumbs.db", b"\xd0\xcf")
        archive.writestr("Shop/desktop.ini", b"[.ShellClassInfo]")
        archive.writestr("Shop\\B\\", b"")  # a folder as an old Windows archiver writes it
    body = send(client, buffer.getvalue()).json()
    assert body["album_name"] == "Shop"  # the system folder beside it does not count
    # The folders' own entries are no files: neither stored nor counted nor listed.
    assert (body["stored"], body["refused"], body["skipped"]) == (1, 0, 5)
    assert [result["entry"] for result in body["results"]] == [
        "Shop/A/ok.png", "__MACOSX/Shop/A/._ok.png", "Shop/A/._ok.png", "Shop/.DS_Store", "Shop/A/Thumbs.db",
        "Shop/desktop.ini",
    ]  # fmt: skip


def test_an_archive_of_folders_alone_is_empty(client, settings):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.mkdir("Shop/")
        archive.mkdir("Shop/A/")
    response = send(client, buffer.getvalue(), name="folders.zip")
    assert response.status_code == 422
    assert response.json()["error"] == "The archive folders.zip has no files in it."
    assert client.get("/api/albums", headers=JSON).json() == [] and image_rows(settings) == 0


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x05\x06" + b"\0" * 18])
def test_not_a_zip_or_an_empty_one(client, settings, content):
    response = send(client, content)
    assert response.status_code in {400, 422}
    assert response.json()["status"] == "error"
    assert image_rows(settings) == 0


def test_an_archive_of_refusals_is_422_with_the_report(client, settings):
    raw = make_zip([("Shop/A/a.txt", b"hello"), ("Shop/A/b.webp", b"RIFF\0\0\0\0WEBPVP8 ")])
    response = send(client, raw)
    assert response.status_code == 422
    body = response.json()
    assert (body["stored"], body["refused"], body["skipped"]) == (0, 2, 0)
    assert all(result["error"] for result in body["results"])
    assert image_rows(settings) == 0
