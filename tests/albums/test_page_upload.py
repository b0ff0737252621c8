"""A ZIP sent to POST /upload (the upload page's route): unpacked through the same job path, within
MAX_UPLOAD_BYTES; a larger one is sent to /api/upload."""

from __future__ import annotations

from tests.albums.test_upload import JSON, SHOP, noise_png, placement
from tests.albums.zips import make_zip


def test_a_zip_on_the_page_route_is_unpacked_into_its_album(client, settings):
    for field in ("file", "zipfile"):
        client.cookies.clear()
        album = f"Page {field}"
        response = client.post(
            "/upload",
            files={field: ("shop.zip", make_zip(SHOP), "application/zip")},
            data={"album_name": album},
            headers=JSON,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["album_name"] == album and body["stored"] == 3
        assert {row[0] for row in placement(settings)} >= {album}


def test_a_zip_over_the_page_limit_is_sent_to_the_api(make_client, settings):
    client = make_client(max_upload_bytes=100_000)
    big = make_zip([(f"Big/SKU1/{n}.png", noise_png(n, 120)) for n in range(3)], compression=0)
    assert 100_000 < len(big) < 100_000 + 60_000
    response = client.post("/upload", files={"file": ("big.zip", big, "application/zip")}, headers=JSON)
    assert response.status_code == 413, response.text
    assert "/api/upload" in response.json()["error"]
    russian = client.post(
        "/upload", files={"file": ("big.zip", big)}, headers={**JSON, "Accept-Language": "ru"}
    ).json()["error"]
    assert "предела этой страницы" in russian
    assert placement(settings) == []
