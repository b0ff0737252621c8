"""The conversion API (POST/GET /api/images) and GET /logs, with and without tokens."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from tests.conftest import CORPUS, png_bytes, run_sql, stored_files

TOKEN = "api-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(make_client):
    return make_client(api_tokens=("other-token", TOKEN))


def convert(client, content: bytes, name: str = "in.png", headers: dict | None = None, **fields):
    data = {key: str(value) for key, value in fields.items()}
    return client.post(
        "/api/images", files={"file": (name, content)}, data=data, headers=AUTH if headers is None else headers
    )


def jpeg_of(response_content: bytes) -> PILImage.Image:
    image = PILImage.open(io.BytesIO(response_content))
    assert image.format == "JPEG"
    return image


def test_without_a_token_or_with_a_wrong_one_it_is_401(api, settings):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN}):
        response = convert(api, png_bytes(), headers=headers)
        assert response.status_code == 401
        assert "token" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert api.get("/api/images/1", headers=headers).status_code == 401
        assert api.get("/logs", headers=headers).status_code == 401
    assert stored_files(settings) == []


def test_no_tokens_configured_means_no_access(make_client):
    client = make_client(api_tokens=())
    assert convert(client, png_bytes(), headers={"Authorization": "Bearer "}).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        CORPUS / "accepted" / "hopper.jpg",
        CORPUS / "accepted" / "hopper.png",
        CORPUS / "accepted" / "transparent.png",
        CORPUS / "accepted" / "iss634.gif",
        CORPUS / "other-formats" / "hopper.webp",
        CORPUS / "other-formats" / "hopper.bmp",
    ],
    ids=lambda p: p.name,
)
def test_each_accepted_format_becomes_a_progressive_jpeg(api, path, settings):
    response = convert(api, path.read_bytes(), path.name)
    assert response.status_code == 201, response.text
    body = response.json()
    # The image's one JSON shape (as in the catalogue), plus what the conversion API adds.
    assert {"id", "width", "height", "content_type", "filename", "url", "size", "thumbnails"} <= set(body)
    assert {"quality", "size_bytes", "source_format"} <= set(body)
    listed = api.get("/images-list").json()["data"][0]
    assert {key: body[key] for key in listed} == listed
    with PILImage.open(path) as source:
        assert body["source_format"] == source.format
        assert (body["width"], body["height"]) == source.size
    assert body["quality"] == 85 and body["content_type"] == "image/jpeg"
    assert body["filename"].endswith(".jpg")
    fetched = api.get(f"/api/images/{body['id']}", headers=AUTH)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    assert len(fetched.content) == body["size_bytes"]
    with jpeg_of(fetched.content) as result:
        assert result.info.get("progressive") or result.info.get("progression")
        assert result.size == (body["width"], body["height"])
    # Stored as a normal image: file, row, catalogue, direct link.
    assert (settings.images_dir / body["filename"]).read_bytes() == fetched.content
    row = run_sql(settings.database_url, "SELECT * FROM images WHERE id = $1", body["id"])[0]
    assert (row["source_format"], row["quality"], row["width"]) == (body["source_format"], 85, body["width"])
    listed = api.get("/images-list").json()["data"][0]
    assert listed["filename"] == body["filename"] and listed["file_type"] == "jpg"
    assert api.get(body["url"].replace("http://testserver.local", "")).content == fetched.content


def test_the_box_fits_the_image_keeping_proportions_never_cropping(api):
    content = png_bytes(1000, 500)
    assert convert(api, content, x=200, y=200).json()["width"] == 200
    assert convert(api, content, x=200, y=200).json()["height"] == 100
    only_y = convert(api, content, y=50).json()
    assert (only_y["width"], only_y["height"]) == (100, 50)
    tall_box = convert(api, content, x=400, y=1000).json()
    assert (tall_box["width"], tall_box["height"]) == (400, 200)


def test_quality_changes_the_result(api):
    noisy = io.BytesIO()
    PILImage.effect_noise((300, 300), 80).convert("RGB").save(noisy, "PNG")
    low = convert(api, noisy.getvalue(), quality=10).json()
    high = convert(api, noisy.getvalue(), quality=95).json()
    assert low["quality"] == 10 and high["quality"] == 95
    assert low["size_bytes"] < high["size_bytes"]


def test_default_quality_setting(make_client):
    client = make_client(api_tokens=(TOKEN,), default_quality=60)
    assert convert(client, png_bytes()).json()["quality"] == 60


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quality", "0"),
        ("quality", "96"),
        ("quality", "high"),
        ("quality", "8_0"),  # int() would take these three
        ("quality", "+80"),
        ("x", "1" * 5000),
        ("x", "0"),
        ("x", "-5"),
        ("y", "1.5"),
        ("y", "abc"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(api, settings, field, value):
    response = convert(api, png_bytes(), **{field: value})
    assert response.status_code == 422
    assert field in response.json()["error"]
    assert stored_files(settings) == []


def test_refusals_through_the_api(api, settings):
    assert convert(api, b"plain text", "notes.txt").status_code == 415
    assert convert(api, (CORPUS / "malformed" / "broken.png").read_bytes(), "broken.png").status_code == 400
    assert convert(api, (CORPUS / "malformed" / "decompression_bomb.gif").read_bytes(), "bomb.gif").status_code == 413
    assert convert(api, (CORPUS / "other-formats" / "multipage.tiff").read_bytes(), "pages.tiff").status_code == 415
    assert api.post("/api/images", data={"quality": "80"}, headers=AUTH).status_code == 400
    assert stored_files(settings) == []


def test_the_api_takes_files_up_to_its_own_limit(make_client, settings):
    client = make_client(api_tokens=(TOKEN,), api_max_upload_bytes=8 * 1024 * 1024)
    big = io.BytesIO()
    PILImage.frombytes("RGB", (1400, 1400), bytes(range(256)) * (1400 * 1400 * 3 // 256 + 1)).save(big, "BMP")
    assert 5 * 1024 * 1024 < len(big.getvalue()) < 8 * 1024 * 1024  # over the upload limit, under the API's
    assert convert(client, big.getvalue(), "big.bmp").status_code == 201
    assert client.post("/upload", files={"file": ("big.bmp", big.getvalue())}).status_code == 413
    too_big = convert(client, b"\0" * (9 * 1024 * 1024), "huge.png")
    assert too_big.status_code == 413


def test_get_unknown_id_is_404(api):
    assert api.get("/api/images/999999", headers=AUTH).status_code == 404


def test_logs_returns_the_last_lines_from_the_end(api, settings):
    for i in range(30):
        convert(api, b"text", f"file-{i:02d}.txt")
    response = api.get("/logs?limit=5", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert len(lines) == 5
    assert lines[-1].endswith("Error: unsupported file format (file-29.txt).")
    everything = (settings.log_dir / "app.log").read_text().splitlines()
    assert lines == everything[-5:]
    assert len(api.get("/logs", headers=AUTH).text.splitlines()) == min(200, len(everything))
    for bad in ("0", "10001", "many", "99999999999999999999", "1_0"):
        response = api.get(f"/logs?limit={bad}", headers=AUTH)
        assert response.status_code == 400 and "limit" in response.json()["error"]
    whole = api.get("/logs?limit=10000", headers=AUTH).text.splitlines()
    assert whole == (settings.log_dir / "app.log").read_text().splitlines()


def test_tail_reads_only_the_end_of_a_large_log(tmp_path):
    from imagehost.logging import tail_lines

    log = tmp_path / "app.log"
    with log.open("w") as file:
        for i in range(200_000):
            file.write(f"[2026-11-24 00:00:00] Info: line {i}\n")
    assert tail_lines(log, 3) == [f"[2026-11-24 00:00:00] Info: line {i}" for i in (199_997, 199_998, 199_999)]
    assert len(tail_lines(log, 10_000)) == 10_000
    assert tail_lines(tmp_path / "missing.log", 5) == []
