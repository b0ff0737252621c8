"""POST /api/upload: the answer's shape, the mapping applied, duplicates, merge and replace,
limits of the route, the rate limit, and a failure in the middle."""

from __future__ import annotations

import asyncpg
import pytest

from tests.albums.zips import make_zip, photo, with_cp866_names
from tests.conftest import run_sql

JSON = {"Accept": "application/json"}
SHOP_TOKEN = "shop-team-token"


@pytest.fixture
def team(make_client):
    """A client with a user's role (a service token): it may add to existing albums."""
    client = make_client(api_tokens=(SHOP_TOKEN,))
    client.headers["Authorization"] = f"Bearer {SHOP_TOKEN}"
    return client


def noise_png(seed: int, side: int = 100) -> bytes:
    """A PNG that does not compress: its size is about 3 bytes a pixel."""
    import io
    import random

    from PIL import Image as PILImage

    pixels = random.Random(seed).randbytes(side * side * 3)
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (side, side), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def send(client, raw: bytes, name: str = "shop.zip", field: str = "zipfile", headers: dict | None = None, **form):
    return client.post(
        "/api/upload",
        files={field: (name, raw, "application/zip")},
        data=form or None,
        headers={**JSON, **(headers or {})},
    )


SHOP = [
    ("Shop/SKU1/front.png", photo(1)),
    ("Shop/SKU1/back.png", photo(2)),
    ("Shop/SKU2/only.png", photo(3)),
]


def placement(settings) -> list[tuple]:
    return [
        tuple(row)
        for row in run_sql(
            settings.database_url,
            "SELECT al.name, ar.code, ai.position, i.original_name FROM album_images ai"
            " JOIN albums al ON al.id = ai.album JOIN articles ar ON ar.id = ai.article"
            " JOIN images i ON i.id = ai.image ORDER BY ar.code, ai.position",
        )
    ]


def test_the_answer_has_pichostings_shape(client, settings, app_log):
    response = send(client, make_zip([*SHOP, ("Shop/SKU2/notes.txt", b"hello"), ("Shop/.DS_Store", b"x")]))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"status", "message", "album_name", "stored", "refused", "skipped", "results"}
    assert body["status"] == "success"
    assert body["message"] == "Files uploaded successfully"
    assert body["album_name"] == "Shop"
    assert (body["stored"], body["refused"], body["skipped"]) == (3, 1, 1)
    first = body["results"][0]
    assert set(first) == {
        "entry", "status", "album_name", "article_number", "id", "filename", "url", "delete_url", "error"
    }  # fmt: skip
    assert first["entry"] == "Shop/SKU1/front.png" and first["status"] == "stored"
    assert first["album_name"] == "Shop" and first["article_number"] == "SKU1"
    assert first["url"].endswith("/images/" + first["filename"]) and first["error"] is None
    refused = body["results"][3]
    assert refused["status"] == "refused" and refused["id"] is None and "not a supported image" in refused["error"]
    assert placement(settings) == [
        ("Shop", "SKU1", 1, "back.png"),  # natural name order within the folder
        ("Shop", "SKU1", 2, "front.png"),
        ("Shop", "SKU2", 2, "only.png"),  # after notes.txt's place: refused entries leave a gap
    ]
    # Each entry went through the single-upload path (its log line), then one line for the archive.
    lines = app_log()
    assert sum("uploaded (front.png" in line or "uploaded (back.png" in line for line in lines) == 2
    assert any("Success: album Shop: 3 of 5 entries stored from shop.zip" in line for line in lines)
    # An anonymous uploader deletes an entry with its delete_url, as after a single upload.
    assert client.delete(first["delete_url"], headers=JSON).status_code == 200
    assert len(placement(settings)) == 2


def test_the_field_may_be_called_file_and_the_album_named(client, settings):
    response = send(client, make_zip(SHOP), field="file", album_name="Лето 2026")
    assert response.status_code == 201
    assert response.json()["album_name"] == "Лето 2026"
    assert {row[0] for row in placement(settings)} == {"Лето 2026"}


def test_no_archive_and_a_bad_mode(client):
    response = client.post("/api/upload", data={"album_name": "x"}, headers=JSON)
    assert response.status_code == 400
    assert "zipfile" in response.json()["error"]
    assert send(client, make_zip(SHOP), mode="overwrite").status_code == 422


def test_a_russian_archive_from_windows(client, settings):
    raw = with_cp866_names([("Каталог/Артикул 1/фото_1.png", photo(1)), ("Каталог/Артикул 1/фото_2.png", photo(2))])
    response = send(client, raw, name="Каталог.zip", headers={"Accept-Language": "ru"})
    body = response.json()
    assert response.status_code == 201, body
    assert body["album_name"] == "Каталог"
    assert body["message"] == "Файлы успешно загружены"
    assert [r["article_number"] for r in body["results"]] == ["Артикул 1", "Артикул 1"]
    assert client.get("/api/articles/Каталог", headers=JSON).json() == ["Артикул 1"]


def test_the_same_archive_twice_stores_nothing_twice(team, settings):
    first = send(team, make_zip(SHOP)).json()
    again = send(team, make_zip(SHOP))
    assert again.status_code == 200
    body = again.json()
    assert (body["stored"], body["refused"], body["skipped"]) == (0, 0, 3)
    assert [r["id"] for r in body["results"]] == [r["id"] for r in first["results"]]
    assert "already in the article SKU1" in body["results"][0]["error"]
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 3


def test_the_same_file_in_another_article_is_not_a_duplicate(client, settings):
    body = send(client, make_zip([("Shop/A/x.png", photo(1)), ("Shop/B/x.png", photo(1)), ("Shop/B/y.png", photo(1))]))
    results = body.json()["results"]
    assert [r["status"] for r in results] == ["stored", "stored", "skipped"]


def test_merge_appends_after_the_photos_already_there(team, settings):
    send(team, make_zip(SHOP))
    response = send(team, make_zip([("Shop/SKU1/side.png", photo(9)), ("Shop/SKU3/new.png", photo(10))]))
    assert response.status_code == 201
    assert placement(settings) == [
        ("Shop", "SKU1", 1, "back.png"),
        ("Shop", "SKU1", 2, "front.png"),
        ("Shop", "SKU1", 3, "side.png"),
        ("Shop", "SKU2", 1, "only.png"),
        ("Shop", "SKU3", 1, "new.png"),
    ]


def test_replace_removes_the_earlier_images_after_storing_the_new(team, settings):
    first = send(team, make_zip(SHOP)).json()
    old_files = {r["filename"] for r in first["results"]}
    # front.png stays (same bytes: a duplicate kept), the others go; a new one arrives.
    response = send(
        team, make_zip([("Shop/SKU1/front.png", photo(1)), ("Shop/SKU9/new.png", photo(7))]), mode="replace"
    )
    assert response.status_code == 201
    assert placement(settings) == [("Shop", "SKU1", 2, "front.png"), ("Shop", "SKU9", 1, "new.png")]
    on_disk = {path.name for path in settings.images_dir.glob("*.png")}
    assert old_files - on_disk == old_files - {first["results"][0]["filename"]}
    assert team.get("/api/articles/Shop", headers=JSON).json() == ["SKU1", "SKU9"]


def test_replace_keeps_everything_when_nothing_new_is_stored(team, settings):
    send(team, make_zip(SHOP))
    response = send(team, make_zip([("Shop/SKU1/a.txt", b"not an image")]), mode="replace")
    assert response.status_code == 422
    assert len(placement(settings)) == 3


def test_anonymous_uploaders_only_create_new_albums(client, settings):
    assert send(client, make_zip(SHOP)).status_code == 201
    response = send(client, make_zip([("Shop/SKU5/x.png", photo(5))]))
    assert response.status_code == 409
    assert "already an album Shop" in response.json()["error"]
    assert len(placement(settings)) == 3


def test_the_route_has_its_own_body_limit(make_client, settings):
    client = make_client(zip_max_bytes=200_000, max_upload_bytes=50_000)
    large = make_zip([(f"Shop/A/{index}.png", noise_png(index)) for index in range(10)], compression=0)
    assert len(large) > 200_000 + 64 * 1024
    response = send(client, large)
    assert response.status_code == 413
    assert "195 KB" in response.json()["error"]  # the limit of this route, not the 48 KB of /upload
    # Larger than /upload takes, within this route's limit.
    fits = make_zip([(f"Shop/A/{index}.png", noise_png(index)) for index in range(5)], compression=0)
    assert 50_000 + 64 * 1024 < len(fits) < 200_000
    assert send(client, fits).status_code == 201


def test_an_archive_counts_once_against_the_upload_rate_limit(make_client):
    client = make_client(upload_rate_limit=2)
    assert send(client, make_zip(SHOP)).status_code == 201  # three images, one request
    assert client.post("/upload", files={"file": ("a.png", photo(20))}, headers=JSON).status_code == 201
    assert send(client, make_zip([("Other/A/x.png", photo(21))])).status_code == 429


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("a bug between two entries"),
        asyncpg.exceptions.ConnectionDoesNotExistError("the database went away between two entries"),
    ],
)
def test_a_failure_in_the_middle_leaves_only_whole_images_and_the_job_goes_on(client, settings, monkeypatch, failure):
    """A failure that is not an entry's own cuts the job's attempt; the queue runs it again and the
    next attempt stores the entries the first did not, each once."""
    from imagehost.albums.tables import AlbumImage

    real_raw = AlbumImage.raw
    calls = []

    def failing_insert(sql, *values):
        if sql.startswith("INSERT INTO album_images"):
            calls.append(values)
            if len(calls) == 2:
                raise failure
        return real_raw(sql, *values)

    monkeypatch.setattr(AlbumImage, "raw", failing_insert)
    response = send(
        client, make_zip([("Shop/A/1.png", photo(1)), ("Shop/A/2.png", photo(2)), ("Shop/A/3.png", photo(3))])
    )
    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 3 and len(calls) >= 4  # the failed insert was tried again
    images = run_sql(settings.database_url, "SELECT stored_name FROM images")
    links = run_sql(settings.database_url, "SELECT image FROM album_images")
    assert len(images) == len(links) == 3  # every stored image has its place, none is half there or twice
    assert {path.name for path in settings.images_dir.glob("*.png")} == {row["stored_name"] for row in images}


@pytest.mark.parametrize("name", ["..", "a/b", "tab\there"])
def test_a_bad_album_name_is_400(client, settings, name):
    response = send(client, make_zip(SHOP), album_name=name)
    assert response.status_code == 400
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 0


def test_an_album_created_meanwhile_stays_closed_to_anonymous_uploads(client, settings, monkeypatch):
    from imagehost.albums.service import AlbumService

    assert send(client, make_zip(SHOP)).status_code == 201

    async def not_yet(self, name):  # the album appears between the check and the first entry's link
        return None

    monkeypatch.setattr(AlbumService, "find_album", not_yet)
    response = send(client, make_zip([("Shop/SKU5/x.png", photo(5))]))
    assert response.status_code == 422
    assert "already an album Shop" in response.json()["results"][0]["error"]
    assert len(placement(settings)) == 3
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 3  # its row rolled back


def test_entries_go_through_the_isolated_workers(make_client, settings):
    client = make_client(worker_processes=2)
    entries = [(f"Shop/SKU{index % 3}/{index}.png", photo(index, (400, 300))) for index in range(8)]
    response = send(client, make_zip(entries))
    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 8
    assert sorted(row[2] for row in placement(settings) if row[1] == "SKU0") == [1, 2, 3]
    thumbnails = list(settings.images_dir.rglob("*.webp"))
    assert len(thumbnails) == 8  # 160 px for each (480 and 1280 are larger than the image)
