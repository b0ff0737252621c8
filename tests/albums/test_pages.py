"""The album pages: the grid and its search, an album's articles, an article's gallery, deletes."""

from __future__ import annotations

from urllib.parse import quote

from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, run_sql

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
HTMX = {"HX-Request": "true"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ODD = 'Лето <b>"&?#%'  # escaped in pages, percent-encoded in paths


def send(client, raw: bytes, name: str = "shop.zip"):
    response = client.post("/api/upload", files={"zipfile": (name, raw, "application/zip")}, headers=JSON)
    assert response.status_code == 201, response.text
    return response.json()


def shop(client) -> None:
    send(
        client,
        make_zip([("Весна/SKU1/a.png", photo(1)), ("Весна/SKU1/b.png", photo(2)), ("Весна/SKU2/c.png", photo(3))]),
    )
    send(client, make_zip([(f"{ODD}/x/y.png", photo(4))]), name="odd.zip")


def test_the_grid_lists_albums_with_covers_and_counts(client):
    shop(client)
    page = client.get("/albums", headers=HTML)
    assert page.status_code == 200 and "HX-Request" in page.headers["vary"]
    html = page.text
    assert 'id="albums"' in html and 'id="album-search"' in html
    assert f'href="/albums/{quote("Весна", safe="")}"' in html
    assert "Articles: 2 · Images: 3" in html
    assert 'href="/albums/' + quote(ODD, safe="") + '"' in html
    assert "<b>" not in html.split("<main>")[1] and "Лето &lt;b&gt;&#34;&amp;?#%" in html
    assert html.count('loading="lazy"') == 2
    assert '<a href="/albums">Albums</a>' in html  # the site header's link

    fragment = client.get("/albums?q=вес", headers=HTMX)
    assert fragment.text.lstrip().startswith('<div id="albums"')
    assert "Весна" in fragment.text and "Лето" not in fragment.text
    assert "<html" not in fragment.text
    # % and _ are searched for as themselves, not as patterns
    assert "Весна" not in client.get("/albums?q=%25", headers=HTMX).text
    assert "Лето" in client.get("/albums?q=%25", headers=HTMX).text
    assert "No album" in client.get("/albums?q=nothing-like-it", headers=HTMX).text

    answer = client.get("/albums", headers=JSON).json()
    assert answer["pagination"] == {"total_pages": 1, "total_items": 2}
    spring = next(item for item in answer["data"] if item["album_name"] == "Весна")
    assert (spring["articles"], spring["images"]) == (2, 3)
    assert spring["cover_url"].startswith("http://testserver.local/images/")


def test_an_album_lists_its_articles_and_an_article_its_gallery(client):
    shop(client)
    album = quote("Весна", safe="")
    html = client.get(f"/albums/{album}", headers=HTML).text
    assert 'aria-label="Breadcrumbs"' in html and 'href="/albums">Albums</a>' in html
    assert f'href="/albums/{album}/SKU1"' in html and f'href="/albums/{album}/SKU2"' in html
    assert "Delete the album" not in html  # an anonymous visitor
    only = client.get(f"/albums/{album}?q=sku2", headers=HTMX).text
    assert only.lstrip().startswith('<div id="articles"') and "SKU2" in only and "SKU1" not in only
    answer = client.get(f"/albums/{album}", headers=JSON).json()
    assert [item["article_number"] for item in answer["data"]] == ["SKU1", "SKU2"]
    assert (answer["articles"], answer["images"]) == (2, 3)

    page = client.get(f"/albums/{album}/SKU1", headers=HTML).text
    # The gallery itself (the page also has its embed codes, with their own copy buttons and preview).
    gallery = page[page.index('<div id="gallery"') :]
    gallery = gallery[: gallery.index("</ul>")]
    assert gallery.count('class="copy"') == 2 and gallery.count('loading="lazy"') == 2
    assert "/i/" in gallery and f'href="/albums/{album}"' in page
    items = client.get(f"/albums/{album}/SKU1", headers=JSON).json()
    assert [item["original_name"] for item in items["data"]] == ["a.png", "b.png"]  # photo order
    assert client.get(f"/albums/{quote(ODD, safe='')}/x", headers=JSON).json()["images"] == 1
    assert client.get(f"/albums/{album}/SKU9", headers=JSON).status_code == 404
    assert client.get("/albums/nope", headers=HTML).status_code == 404


def test_listings_page(client, settings):
    send(client, make_zip([(f"Big/SKU{n:02d}/p.png", photo(n)) for n in range(30)]))
    first = client.get("/albums/Big", headers=HTML).text
    assert first.count('class="card"') == 24 and 'href="/albums/Big?page=2"' in first
    second = client.get("/albums/Big?page=2", headers=HTMX).text
    assert second.count('class="card"') == 6 and "SKU29" in second and "SKU00" not in second
    assert client.get("/albums/Big?page=0", headers=JSON).status_code == 400
    assert client.get("/albums/Big?page=99", headers=JSON).json()["data"] == []


def test_an_admin_deletes_an_article_then_the_album(client, settings):
    shop(client)
    album = quote("Весна", safe="")
    assert client.delete(f"/albums/{album}/SKU1", headers=HTMX).status_code == 403
    html = client.get(f"/albums/{album}/SKU1", headers={**HTML, **ADMIN}).text
    assert "Delete the article" in html and "with all its images (2)?" in html
    answer = client.delete(f"/albums/{album}/SKU1", headers={**HTMX, **ADMIN})
    assert answer.status_code == 200 and answer.headers["hx-redirect"] == f"/albums/{album}"
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 2
    # a form without JavaScript: POST, then the album list
    gone = client.post(f"/albums/{album}", headers={**HTML, **ADMIN}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/albums"
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 1
    assert client.get(f"/albums/{album}", headers=JSON).status_code == 404


def test_the_catalogue_filters_by_album_and_article(client):
    shop(client)
    single = client.post("/upload", files={"file": ("loose.png", photo(7), "image/png")}, headers=JSON)
    assert single.status_code == 201
    everything = client.get("/images-list", headers=JSON).json()
    assert everything["pagination"]["total_items"] == 5
    album = client.get(f"/images/?album_name={quote('Весна')}", headers=JSON).json()
    assert album["pagination"]["total_items"] == 3
    assert {item["original_name"] for item in album["data"]} == {"a.png", "b.png", "c.png"}
    article = client.get(f"/images-list?album_name={quote('Весна')}&article_name=SKU1", headers=JSON).json()
    assert {item["original_name"] for item in article["data"]} == {"a.png", "b.png"}
    assert article["pagination"]["total_items"] == 2  # from the kept counts, as the album's 3 above
    odd = client.get(f"/images/?album_name={quote(ODD)}", headers=JSON).json()
    assert [item["original_name"] for item in odd["data"]] == ["y.png"]
    assert client.get("/images/?album_name=nope", headers=JSON).json()["pagination"]["total_items"] == 0

    html = client.get(f"/images/?album_name={quote(ODD)}&article_name=x", headers=HTML).text
    assert "Images of the article x in the album Лето &lt;b&gt;" in html
    assert f'href="/albums/{quote(ODD, safe="")}/x"' in html
    # the table's own reload (after a delete) and its pager keep the filter
    assert f"&amp;album_name={quote(ODD, safe='')}&amp;article_name=x" in html


def test_the_pages_speak_russian(client):
    shop(client)
    russian = {**HTML, "Accept-Language": "ru", **ADMIN}
    grid = client.get("/albums", headers=russian).text
    assert "Альбомы" in grid and "Найти альбом" in grid and "Артикулов: 2 · Изображений: 3" in grid
    gallery = client.get(f"/albums/{quote('Весна', safe='')}/SKU1", headers=russian).text
    assert "Удалить артикул SKU1 вместе со всеми изображениями (2)?" in gallery
    assert "Навигационная цепочка" in gallery
