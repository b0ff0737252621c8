"""PicHosting's JSON API over albums: shapes, order, counts, deletes, and who may do what."""

from __future__ import annotations

from urllib.parse import quote

from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, run_sql

JSON = {"Accept": "application/json"}


def send(client, raw: bytes, name: str = "shop.zip", headers: dict | None = None, **form):
    return client.post(
        "/api/upload",
        files={"zipfile": (name, raw, "application/zip")},
        data=form or None,
        headers={**JSON, **(headers or {})},
    )


CATALOGUE = [
    ("Весна/SKU10/a.png", photo(1)),
    ("Весна/SKU2/b.png", photo(2)),
    ("Весна/SKU2/c.png", photo(3)),
    ("Весна/Артикул 1/d.png", photo(4, (2000, 1000))),
]


def test_lists_counts_and_shapes(client, settings):
    assert client.get("/api/albums", headers=JSON).json() == []
    send(client, make_zip(CATALOGUE))
    send(client, make_zip([("B-album/x/y.png", photo(9))]))
    assert client.get("/api/albums", headers=JSON).json() == ["B-album", "Весна"]
    album = quote("Весна")
    assert client.get(f"/api/articles/{album}", headers=JSON).json() == ["SKU2", "SKU10", "Артикул 1"]
    send(client, make_zip([("Весна/SKU2/later.png", photo(5))]), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    files = client.get(f"/api/files/{album}", headers=JSON).json()
    assert files[0]["original_name"] == "later.png"  # newest first
    assert [item["id"] for item in files] == sorted((item["id"] for item in files), reverse=True)
    assert {item["original_name"] for item in files} == {"a.png", "b.png", "c.png", "d.png", "later.png"}
    assert set(files[0]) == {
        "id", "filename", "original_name", "album_name", "article_number", "public_link", "created_at"
    }  # fmt: skip
    d = next(item for item in files if item["original_name"] == "d.png")
    assert d["album_name"] == "Весна" and d["article_number"] == "Артикул 1"
    assert files[0]["public_link"] == f"http://testserver.local/images/{files[0]['filename']}"
    assert files[0]["created_at"][:4].isdigit() and "T" in files[0]["created_at"]
    one = client.get(f"/api/files/{album}/SKU2", headers=JSON).json()
    assert {item["original_name"] for item in one} == {"later.png", "c.png", "b.png"}
    thumbs = client.get(f"/api/thumbnails/{album}/{quote('Артикул 1')}", headers=JSON).json()
    assert len(thumbs) == 1
    item = thumbs[0]
    assert set(item) - set(files[0]) == {"thumbnail_url", "preview_url", "file_size", "width", "height"}
    assert item["thumbnail_url"].endswith(f"/images/thumbs/160/{item['filename']}.webp")
    assert item["preview_url"].endswith(f"/images/thumbs/480/{item['filename']}.webp")
    assert (item["width"], item["height"]) == (2000, 1000) and item["file_size"] > 0
    assert client.get(item["thumbnail_url"]).status_code == 200
    assert client.get(f"/api/count/album/{album}", headers=JSON).json() == {"count": 5}
    assert client.get(f"/api/count/article/{album}/SKU2", headers=JSON).json() == {"count": 3}


def test_unknown_album_or_article_is_404(client):
    send(client, make_zip(CATALOGUE))
    for url in ("/api/articles/nope", "/api/files/nope", "/api/files/Весна/nope", "/api/count/album/nope",
                "/api/count/article/Весна/nope", "/api/thumbnails/nope/x"):  # fmt: skip
        response = client.get(url, headers=JSON)
        assert response.status_code == 404, url
        assert response.json()["status"] == "error"
    # The message names what is missing: the album, or the article of an album that exists.
    assert client.get("/api/count/article/nope/SKU1", headers=JSON).json()["error"] == "There is no album nope."
    missing = client.get("/api/count/article/Весна/nope", headers=JSON).json()["error"]
    assert missing == "There is no article nope in the album Весна."


def test_deleting_an_article_and_an_album_takes_files_and_thumbnails(client, settings, app_log):
    body = send(client, make_zip(CATALOGUE)).json()
    operator = {**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    stored = {r["original_name"] if "original_name" in r else r["entry"]: r["filename"] for r in body["results"]}
    response = client.delete(f"/api/delete-article/{quote('Весна')}/SKU2", headers=operator)
    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "The article SKU2 of the album Весна was deleted with its 2 images.",
    }
    assert client.get(f"/api/articles/{quote('Весна')}", headers=JSON).json() == ["SKU10", "Артикул 1"]
    gone = {stored["Весна/SKU2/b.png"], stored["Весна/SKU2/c.png"]}
    assert not any((settings.images_dir / name).exists() for name in gone)
    assert not [path for path in settings.images_dir.rglob("*.webp") if path.stem in gone]
    assert client.delete(f"/api/delete-album/{quote('Весна')}", headers=operator).json()["status"] == "success"
    assert client.get("/api/albums", headers=JSON).json() == []
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 0
    assert [path for path in settings.images_dir.rglob("*") if path.is_file() and "staging" not in str(path)] == []
    assert any("album Весна deleted by operator (2 images)" in line for line in app_log())
    assert sum("deleted by operator (album Весна)" in line for line in app_log()) == 4


def test_anonymous_visitors_may_not_delete(client, settings):
    send(client, make_zip(CATALOGUE))
    response = client.delete(f"/api/delete-album/{quote('Весна')}", headers=JSON)
    assert response.status_code == 403
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 4


def test_roles(make_oidc_client, sign_in, settings):
    client = make_oidc_client()
    assert client.get("/api/albums", headers=JSON).status_code == 401  # ANONYMOUS_BROWSE closed with OIDC
    assert send(client, make_zip(CATALOGUE)).status_code == 401

    sign_in(client, "viewer", roles=["appviewer"])
    assert send(client, make_zip(CATALOGUE)).status_code == 403
    assert client.get("/api/albums", headers=JSON).json() == []

    client.cookies.clear()
    sign_in(client, "creator", roles=["appuser"])
    assert send(client, make_zip(CATALOGUE)).status_code == 201

    client.cookies.clear()
    sign_in(client, "colleague", roles=["appuser"])
    # A user adds to someone else's album (a shop's team shares it), but may not replace or delete it.
    assert send(client, make_zip([("Весна/SKU2/e.png", photo(5))])).status_code == 201
    assert send(client, make_zip([("Весна/SKU2/f.png", photo(6))]), mode="replace").status_code == 403
    assert client.delete(f"/api/delete-article/{quote('Весна')}/SKU2", headers=JSON).status_code == 403
    assert client.get(f"/api/count/album/{quote('Весна')}", headers=JSON).json() == {"count": 5}

    client.cookies.clear()
    sign_in(client, "creator", roles=["appuser"])
    response = send(client, make_zip([("Весна/SKU2/f.png", photo(6))]), mode="replace")
    assert response.status_code == 201
    assert client.get(f"/api/count/album/{quote('Весна')}", headers=JSON).json() == {"count": 1}
    assert client.delete(f"/api/delete-album/{quote('Весна')}", headers=JSON).status_code == 200

    client.cookies.clear()
    sign_in(client, "boss", roles=["appadmin"])
    send(client, make_zip([("Лето/A/a.png", photo(7))]))
    client.cookies.clear()
    sign_in(client, "creator", roles=["appuser"])
    assert client.delete(f"/api/delete-album/{quote('Лето')}", headers=JSON).status_code == 403
    client.cookies.clear()
    sign_in(client, "admin2", roles=["appadmin"])
    assert client.delete(f"/api/delete-album/{quote('Лето')}", headers=JSON).status_code == 200
