"""The image and article counts the database keeps for every album and article (albums_0003):
what /api/count, the album grid and the album and article pages show, after every way images
come and go, and for the albums that existed before the counts did."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import asyncpg

from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, run_sql
from tests.test_migrations import piccolo

JSON = {"Accept": "application/json"}
OPERATOR = {**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}
BEFORE_THE_COUNTS = "2026-12-02T00:10:00:000000"  # albums_0002_jobs
SHOP = [
    ("Shop/A/1.png", photo(1)),
    ("Shop/A/2.png", photo(2)),
    ("Shop/A/3.png", photo(3)),
    ("Shop/B/4.png", photo(4)),
    ("Shop/B/5.png", photo(5)),
    ("Shop/C/6.png", photo(6)),
]


def send(client, entries, headers=None) -> dict:
    response = client.post(
        "/api/upload",
        files={"zipfile": ("shop.zip", make_zip(entries), "application/zip")},
        headers={**JSON, **(headers or {})},
    )
    assert response.status_code == 201, response.text
    return response.json()


def counts(client, album: str = "Shop") -> dict:
    """Every count a visitor sees for the album: the API's, the grid card's and the pages'."""
    name = quote(album)
    page = client.get(f"/albums/{name}", headers=JSON).json()
    card = next(card for card in client.get("/albums", headers=JSON).json()["data"] if card["album_name"] == album)
    articles = {card["article_number"]: card["images"] for card in page["data"]}
    for code, images in articles.items():
        assert client.get(f"/api/count/article/{name}/{quote(code)}", headers=JSON).json() == {"count": images}
        assert client.get(f"/albums/{name}/{quote(code)}", headers=JSON).json()["images"] == images
    album_count = client.get(f"/api/count/album/{name}", headers=JSON).json()["count"]
    assert card["images"] == page["images"] == album_count
    assert card["articles"] == page["articles"] == len(articles)
    return {"images": album_count, "articles": articles}


def counted_by_the_database(database_url: str) -> dict:
    """The kept counts against a count of the rows themselves, for every album and article."""
    albums = run_sql(
        database_url,
        "SELECT al.name, al.image_count, al.article_count,"
        " (SELECT count(*) FROM album_images ai WHERE ai.album = al.id) AS images,"
        " (SELECT count(*) FROM articles ar WHERE ar.album = al.id) AS articles FROM albums al",
    )
    articles = run_sql(
        database_url,
        "SELECT ar.code, ar.image_count, (SELECT count(*) FROM album_images ai WHERE ai.article = ar.id) AS images"
        " FROM articles ar",
    )
    for row in albums:
        assert (row["image_count"], row["article_count"]) == (row["images"], row["articles"]), dict(row)
    for row in articles:
        assert row["image_count"] == row["images"], dict(row)
    return {row["name"]: row["image_count"] for row in albums}


def test_counts_after_a_zip_and_a_second_one_merged(client, settings):
    send(client, SHOP)
    assert counts(client) == {"images": 6, "articles": {"A": 3, "B": 2, "C": 1}}
    send(client, [("Shop/C/7.png", photo(7)), ("Shop/D/8.png", photo(8)), ("Shop/A/1.png", photo(1))], OPERATOR)
    assert counts(client) == {"images": 8, "articles": {"A": 3, "B": 2, "C": 2, "D": 1}}  # A/1.png: a duplicate
    assert counted_by_the_database(settings.database_url) == {"Shop": 8}


def test_a_single_delete_counts_down(client, settings):
    results = send(client, SHOP)["results"]
    b4 = next(result for result in results if result["entry"] == "Shop/B/4.png")
    assert client.delete(b4["delete_url"], headers=JSON).status_code == 200
    assert counts(client) == {"images": 5, "articles": {"A": 3, "B": 1, "C": 1}}
    assert counted_by_the_database(settings.database_url) == {"Shop": 5}


def test_deleting_an_article_and_an_album(client, settings):
    send(client, SHOP)
    send(client, [("Other/X/9.png", photo(9))])
    assert client.delete("/api/delete-article/Shop/A", headers=OPERATOR).status_code == 200
    assert counts(client) == {"images": 3, "articles": {"B": 2, "C": 1}}
    assert client.get("/api/count/article/Shop/A", headers=JSON).status_code == 404
    assert client.delete("/api/delete-album/Shop", headers=OPERATOR).status_code == 200
    assert client.get("/api/count/album/Shop", headers=JSON).status_code == 404
    assert counts(client, "Other") == {"images": 1, "articles": {"X": 1}}
    # An album made again under the same name starts from its own images.
    send(client, [("Shop/A/10.png", photo(10))])
    assert counts(client) == {"images": 1, "articles": {"A": 1}}
    assert counted_by_the_database(settings.database_url) == {"Other": 1, "Shop": 1}


def test_moving_a_row_to_another_article_or_album(client, settings):
    """What moving images between articles does to album_images: an UPDATE of album and article."""
    send(client, SHOP)
    send(client, [("Other/X/9.png", photo(9))])
    url = settings.database_url
    run_sql(
        url,
        "UPDATE album_images SET article = (SELECT id FROM articles WHERE code = 'B')"
        " WHERE image = (SELECT id FROM images WHERE original_name = '1.png')",
    )
    assert counts(client) == {"images": 6, "articles": {"A": 2, "B": 3, "C": 1}}
    run_sql(
        url,
        "UPDATE album_images SET album = ar.album, article = ar.id FROM articles ar WHERE ar.code = 'X'"
        " AND album_images.image IN (SELECT id FROM images WHERE original_name IN ('2.png', '3.png'))",
    )
    assert counts(client) == {"images": 4, "articles": {"A": 0, "B": 3, "C": 1}}
    assert counts(client, "Other") == {"images": 3, "articles": {"X": 3}}
    run_sql(url, "UPDATE album_images SET position = position + 10")  # a reorder counts nothing
    assert counted_by_the_database(url) == {"Shop": 4, "Other": 3}


def test_moving_images_through_the_api(client, settings):
    """POST /api/move-images moves rows, creates the target article and deletes the emptied ones
    in one transaction; the counts follow every part of it."""
    results = send(client, SHOP)["results"]
    send(client, [("Other/X/9.png", photo(9))])
    ids = {result["entry"]: result["id"] for result in results}
    move = {"image_ids": [ids["Shop/C/6.png"], ids["Shop/A/1.png"]], "album_name": "Other", "article_name": "New"}
    assert client.post("/api/move-images", json=move, headers=OPERATOR).status_code == 200
    assert counts(client) == {"images": 4, "articles": {"A": 2, "B": 2}}  # C left empty: deleted
    assert counts(client, "Other") == {"images": 3, "articles": {"New": 2, "X": 1}}
    order = {"image_ids": [ids["Shop/B/5.png"], ids["Shop/B/4.png"]]}
    assert client.post("/api/reorder/Shop/B", json=order, headers=OPERATOR).status_code == 200
    assert counted_by_the_database(settings.database_url) == {"Shop": 4, "Other": 3}


def test_an_upload_and_a_delete_in_the_same_album_at_once_both_succeed(client, settings):
    """An upload's transaction counts the image (image_totals), then links it to its album; a
    delete's removes the link with the image. Interleaved, both go through and the counts hold."""
    send(client, SHOP)
    url = settings.database_url

    async def race() -> None:
        upload, delete = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            victim = await upload.fetchval("SELECT id FROM images WHERE original_name = '6.png'")
            await upload.execute("BEGIN")
            image = await upload.fetchval(
                "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash)"
                " VALUES ('ZZZZZZZZZZZZZZZZZZZZZZ.png', 'new.png', 1, 'PNG', '', '') RETURNING id"
            )
            await delete.execute("BEGIN")
            deleting = asyncio.create_task(delete.execute("DELETE FROM images WHERE id = $1", victim))
            await asyncio.sleep(0.5)  # the delete now waits for the upload's image_totals row
            await upload.execute(
                "INSERT INTO album_images (image, album, article, source_sha256) SELECT $1, album, id, 'new'"
                " FROM articles WHERE code = 'C'",
                image,
            )
            await asyncio.wait_for(upload.execute("COMMIT"), 10)
            await asyncio.wait_for(deleting, 10)
            await delete.execute("COMMIT")
        finally:
            await upload.close()
            await delete.close()

    asyncio.run(race())
    assert counted_by_the_database(url) == {"Shop": 6}
    assert client.get("/api/count/article/Shop/C", headers=JSON).json() == {"count": 1}


def test_the_migration_counts_the_albums_already_there(database_url):
    run_sql(database_url, "DROP DATABASE IF EXISTS album_counts_migration_test")
    run_sql(database_url, "CREATE DATABASE album_counts_migration_test")
    fresh = database_url.replace("/images_test?", "/album_counts_migration_test?")
    piccolo(fresh, "forwards", "images")
    piccolo(fresh, "forwards", "albums", f"--migration_id={BEFORE_THE_COUNTS}")
    run_sql(
        fresh,
        "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash)"
        " SELECT lpad(g::text, 22, 'A') || '.png', 'x', 1, 'PNG', '', '' FROM generate_series(1, 7) g",
    )
    run_sql(fresh, "INSERT INTO albums (name) VALUES ('Old'), ('Empty'), ('Small')")
    run_sql(
        fresh,
        "INSERT INTO articles (album, code) VALUES (1, 'A'), (1, 'B'), (2, 'Nothing'), (3, 'S')",
    )
    run_sql(
        fresh,
        "INSERT INTO album_images (image, album, article, source_sha256) VALUES"
        " (1, 1, 1, ''), (2, 1, 1, ''), (3, 1, 1, ''), (4, 1, 2, ''), (5, 1, 2, ''), (6, 3, 4, '')",
    )
    piccolo(fresh, "forwards", "all")
    kept = {
        row["name"]: (row["image_count"], row["article_count"])
        for row in run_sql(fresh, "SELECT name, image_count, article_count FROM albums")
    }
    assert kept == {"Old": (5, 2), "Empty": (0, 1), "Small": (1, 1)}
    assert {row["code"]: row["image_count"] for row in run_sql(fresh, "SELECT code, image_count FROM articles")} == {
        "A": 3,
        "B": 2,
        "Nothing": 0,
        "S": 1,
    }
    assert counted_by_the_database(fresh) == {"Old": 5, "Empty": 0, "Small": 1}
    # Taken back and made again, the counts are right again, and kept from then on.
    piccolo(fresh, "backwards", "albums", "--migration_id=2026-12-02T00:20:00:000000", "--auto_agree")
    assert not run_sql(
        fresh,
        "SELECT 1 FROM information_schema.columns WHERE column_name = 'image_count'"
        " AND table_name IN ('albums', 'articles')",
    )
    run_sql(fresh, "DELETE FROM images WHERE id = 1")
    piccolo(fresh, "forwards", "all")
    run_sql(fresh, "INSERT INTO album_images (image, album, article, source_sha256) VALUES (7, 2, 3, '')")
    assert counted_by_the_database(fresh) == {"Old": 4, "Empty": 1, "Small": 1}
    run_sql(database_url, "DROP DATABASE album_counts_migration_test")


def test_tables_emptied_by_hand_leave_every_count_at_zero(client, settings):
    """An operator's TRUNCATE fires no row triggers: the statement triggers zero the counts instead."""
    send(client, SHOP)
    run_sql(settings.database_url, "TRUNCATE album_images CASCADE")
    assert counts(client) == {"images": 0, "articles": {"A": 0, "B": 0, "C": 0}}
    run_sql(settings.database_url, "TRUNCATE articles CASCADE")
    assert counts(client) == {"images": 0, "articles": {}}
    assert counted_by_the_database(settings.database_url) == {"Shop": 0}
    send(client, [("Shop/A/1.png", photo(1))], OPERATOR)  # and they count up again from there
    assert counts(client) == {"images": 1, "articles": {"A": 1}}
