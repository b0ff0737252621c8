"""Managing albums: rename an album or an article, move images, reorder an article's photos.

Through the JSON API (PicHosting-style) and the album pages' forms (htmx and plain), with the
role rules (admins and an album's creator), the name rules, conflicts and the log lines.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import pytest

from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, run_sql

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
HTMX = {"HX-Request": "true", "Accept": "*/*"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OPERATOR = {**JSON, **ADMIN}
SPRING = quote("Весна", safe="")


def send(client, entries, name: str = "shop.zip", headers: dict | None = None) -> dict:
    response = client.post(
        "/api/upload",
        files={"zipfile": (name, make_zip(entries), "application/zip")},
        headers={**JSON, **(headers or {})},
    )
    assert response.status_code == 201, response.text
    return response.json()


def shop(client, headers: dict | None = None) -> dict[str, int]:
    """Весна: SKU1 (a, b, c), SKU2 (d). Returns each file's image id by its name."""
    body = send(
        client,
        [
            ("Весна/SKU1/a.png", photo(1)),
            ("Весна/SKU1/b.png", photo(2)),
            ("Весна/SKU1/c.png", photo(3)),
            ("Весна/SKU2/d.png", photo(4)),
        ],
        headers=headers,
    )
    return {result["entry"].rsplit("/", 1)[-1]: result["id"] for result in body["results"]}


def names_in(client, album: str, article: str) -> list[str]:
    """The article's photos in their order, as its page lists them."""
    answer = client.get(f"/albums/{quote(album, safe='')}/{quote(article, safe='')}", headers=JSON)
    assert answer.status_code == 200, answer.text
    return [item["original_name"] for item in answer.json()["data"]]


def post_json(client, url: str, body, headers: dict | None = None):
    return client.post(url, json=body, headers={**OPERATOR, **(headers or {})})


# --- Renaming ------------------------------------------------------------------------------------


def test_an_admin_renames_an_album_and_an_article(client, app_log):
    shop(client)
    answer = post_json(client, f"/api/rename-album/{SPRING}", {"new_name": "Лето 2025"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "success",
        "message": "The album Весна is now called Лето 2025.",
        "album_name": "Лето 2025",
    }
    assert client.get("/api/albums", headers=JSON).json() == ["Лето 2025"]
    assert client.get(f"/api/articles/{SPRING}", headers=JSON).status_code == 404
    assert names_in(client, "Лето 2025", "SKU1") == ["a.png", "b.png", "c.png"]  # the images went along

    summer = quote("Лето 2025", safe="")
    answer = post_json(client, f"/api/rename-article/{summer}/SKU1", {"new_name": "  Артикул-1 "})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "success",
        "message": "The article SKU1 of the album Лето 2025 is now called Артикул-1.",
        "album_name": "Лето 2025",
        "article_number": "Артикул-1",
    }
    assert client.get(f"/api/articles/{summer}", headers=JSON).json() == ["SKU2", "Артикул-1"]
    assert client.get(f"/api/count/article/{summer}/{quote('Артикул-1')}", headers=JSON).json() == {"count": 3}
    log = app_log()
    assert any("Success: album Весна renamed to Лето 2025 by operator." in line for line in log)
    assert any("Success: article SKU1 of album Лето 2025 renamed to Артикул-1 by operator." in line for line in log)


def test_names_are_stored_in_nfc_and_the_same_name_changes_nothing(client, settings):
    shop(client)
    decomposed = unicodedata.normalize("NFD", "Йогурт")
    assert decomposed != "Йогурт"
    answer = post_json(client, f"/api/rename-album/{SPRING}", {"new_name": decomposed})
    assert answer.json()["album_name"] == "Йогурт"
    assert run_sql(settings.database_url, "SELECT name FROM albums")[0][0] == "Йогурт"
    # A path in either form finds it; the same name again is no change and no error.
    again = post_json(client, f"/api/rename-album/{quote(decomposed, safe='')}", {"new_name": "Йогурт"})
    assert again.status_code == 200 and again.json()["album_name"] == "Йогурт"
    same = post_json(client, f"/api/rename-article/{quote('Йогурт')}/SKU1", {"new_name": "SKU1"})
    assert same.status_code == 200 and same.json()["article_number"] == "SKU1"


def test_a_taken_name_is_a_409_and_changes_nothing(client):
    shop(client)
    send(client, [("Осень/X/x.png", photo(9))], name="autumn.zip")
    taken = post_json(client, f"/api/rename-album/{SPRING}", {"new_name": "Осень"})
    assert taken.status_code == 409
    assert taken.json() == {"status": "error", "error": "There is already an album Осень: choose another name."}
    code = post_json(client, f"/api/rename-article/{SPRING}/SKU1", {"new_name": "SKU2"})
    assert code.status_code == 409
    assert code.json()["error"] == "There is already an article SKU2 in the album Весна: choose another code."
    russian = post_json(client, f"/api/rename-album/{SPRING}", {"new_name": "Осень"}, {"Accept-Language": "ru"})
    assert russian.json()["error"] == "Альбом Осень уже есть: выберите другое название."
    assert client.get("/api/albums", headers=JSON).json() == ["Весна", "Осень"]
    assert client.get(f"/api/articles/{SPRING}", headers=JSON).json() == ["SKU1", "SKU2"]


@pytest.mark.parametrize("bad", ["a/b", ".", "..", "", "   ", "x" * 201, "tab\there", "nul\x00", "\u202eevil"])
def test_bad_names_are_refused(client, bad):
    shop(client)
    for url in (f"/api/rename-album/{SPRING}", f"/api/rename-article/{SPRING}/SKU1"):
        answer = post_json(client, url, {"new_name": bad})
        assert answer.status_code == 400, (url, bad, answer.text)
        assert "names are 1 to 200 characters long" in answer.json()["error"]
    assert client.get("/api/albums", headers=JSON).json() == ["Весна"]


def test_bodies_that_are_not_a_json_object_or_lack_a_field(client):
    shop(client)
    url = f"/api/rename-album/{SPRING}"
    for raw in (b"[]", b'"name"', b"42", b"null", b"{not json", b"", "\xff".encode("latin-1")):
        answer = client.post(url, content=raw, headers={**OPERATOR, "Content-Type": "application/json"})
        assert answer.status_code == 422, (raw, answer.text)
        assert answer.json()["error"] == "The field body is invalid: a JSON object."
    assert post_json(client, url, {}).status_code == 400  # new_name missing
    assert post_json(client, url, {"new_name": 7}).json()["error"] == "The field new_name is invalid: a string."
    for ids in ("1", [1, "2"], [True], [1.5], {"a": 1}):
        answer = post_json(client, "/api/move-images", {"image_ids": ids, "album_name": "Весна", "article_name": "X"})
        assert answer.status_code == 422, (ids, answer.text)
    assert post_json(client, "/api/move-images", {"album_name": "Весна", "article_name": "X"}).status_code == 400
    assert post_json(client, f"/api/reorder/{SPRING}/SKU1", {"image_ids": "1,2"}).status_code == 422


# --- Moving --------------------------------------------------------------------------------------


def test_moving_images_appends_them_creates_the_article_and_drops_an_emptied_one(client, app_log, settings):
    ids = shop(client)
    answer = post_json(
        client,
        "/api/move-images",
        {"image_ids": [ids["d.png"], ids["a.png"]], "album_name": "Весна", "article_name": "SKU3"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "success",
        "message": "Images moved to the article SKU3 of the album Весна: 2.",
        "album_name": "Весна",
        "article_number": "SKU3",
        "moved": 2,
        "removed_articles": [{"album_name": "Весна", "article_number": "SKU2"}],  # d.png was its only image
    }
    assert client.get(f"/api/articles/{SPRING}", headers=JSON).json() == ["SKU1", "SKU3"]
    assert names_in(client, "Весна", "SKU3") == ["d.png", "a.png"]  # in the order given
    # Into an existing article: after its last photo.
    post_json(client, "/api/move-images", {"image_ids": [ids["c.png"]], "album_name": "Весна", "article_name": "SKU3"})
    assert names_in(client, "Весна", "SKU3") == ["d.png", "a.png", "c.png"]
    assert names_in(client, "Весна", "SKU1") == ["b.png"]
    # Another album (the operator manages both); the image's file and links stay the same.
    send(client, [("Осень/X/x.png", photo(9))], name="autumn.zip")
    link = client.get(f"/api/files/{SPRING}/SKU1", headers=JSON).json()[0]["public_link"]
    moved = post_json(
        client, "/api/move-images", {"image_ids": [ids["b.png"]], "album_name": "Осень", "article_name": "X"}
    )
    assert moved.json()["removed_articles"] == [{"album_name": "Весна", "article_number": "SKU1"}]
    assert [item["public_link"] for item in client.get("/api/files/Осень/X", headers=JSON).json()][-1] == link
    assert client.get(f"/api/count/album/{SPRING}", headers=JSON).json() == {"count": 3}
    assert client.get(f"/api/count/album/{quote('Осень')}", headers=JSON).json() == {"count": 2}
    log = app_log()
    assert any(
        "Success: 2 image(s) moved to article SKU3 of album Весна by operator (from article SKU1 of album Весна,"
        " article SKU2 of album Весна; article SKU2 of album Весна left empty, deleted)." in line
        for line in log
    ), log[-5:]
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 5  # nothing deleted


def test_moving_a_file_the_article_already_holds_is_refused_whole(client):
    ids = shop(client)
    # The same file as a.png, in SKU2 (a ZIP skips a duplicate only within one article).
    again = send(client, [("Весна/SKU2/a-again.png", photo(1))], headers=ADMIN)["results"][0]["id"]
    answer = post_json(
        client, "/api/move-images", {"image_ids": [ids["b.png"], again], "album_name": "Весна", "article_name": "SKU1"}
    )
    assert answer.status_code == 409
    assert answer.json()["error"] == (
        f"The article SKU1 of the album Весна already holds the same file as image {again} (image {ids['a.png']}):"
        " nothing was moved."
    )
    assert names_in(client, "Весна", "SKU2") == ["d.png", "a-again.png"]  # all or nothing
    # Two moved images that are the same file, into a third article: also refused.
    both = post_json(
        client, "/api/move-images", {"image_ids": [ids["a.png"], again], "album_name": "Весна", "article_name": "New"}
    )
    assert both.status_code == 409
    assert client.get(f"/api/articles/{SPRING}", headers=JSON).json() == ["SKU1", "SKU2"]  # New was not made


def test_moving_unknown_or_loose_images_or_into_an_unknown_album(client):
    ids = shop(client)
    loose = client.post("/upload", files={"file": ("loose.png", photo(8), "image/png")}, headers=JSON).json()["id"]
    for image_ids, status in (([loose], 404), ([ids["a.png"], 999_999], 404), ([2**40], 404), ([], 422), ([0], 404)):
        answer = post_json(
            client, "/api/move-images", {"image_ids": image_ids, "album_name": "Весна", "article_name": "S"}
        )
        assert answer.status_code == status, (image_ids, answer.text)
    nowhere = post_json(
        client, "/api/move-images", {"image_ids": [ids["a.png"]], "album_name": "Nope", "article_name": "S"}
    )
    assert nowhere.status_code == 404
    bad = post_json(
        client, "/api/move-images", {"image_ids": [ids["a.png"]], "album_name": "Весна", "article_name": "a/b"}
    )
    assert bad.status_code == 400
    assert client.get(f"/api/articles/{SPRING}", headers=JSON).json() == ["SKU1", "SKU2"]


# --- Reordering ----------------------------------------------------------------------------------


def test_reordering_an_article(client, app_log):
    ids = shop(client)
    order = [ids["c.png"], ids["a.png"], ids["b.png"]]
    answer = post_json(client, f"/api/reorder/{SPRING}/SKU1", {"image_ids": order})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "success",
        "message": "The photo order of the article SKU1 of the album Весна is saved (3 images).",
        "album_name": "Весна",
        "article_number": "SKU1",
    }
    assert names_in(client, "Весна", "SKU1") == ["c.png", "a.png", "b.png"]
    assert any("Success: article SKU1 of album Весна reordered by operator (3 images)." in line for line in app_log())


def test_a_new_order_must_name_exactly_the_articles_images(client):
    ids = shop(client)
    a, b, c, d = ids["a.png"], ids["b.png"], ids["c.png"], ids["d.png"]
    for order, expected in (
        ([a, b], f"missing: {c}; not in the article: —; repeated: —"),
        ([a, b, c, d], f"missing: —; not in the article: {d}; repeated: —"),
        ([a, b, c, a], f"missing: —; not in the article: —; repeated: {a}"),
        ([], f"missing: {a}, {b}, {c}; not in the article: —; repeated: —"),
        ([a, b, c, 2**40], f"missing: —; not in the article: {2**40}; repeated: —"),
    ):
        answer = post_json(client, f"/api/reorder/{SPRING}/SKU1", {"image_ids": order})
        assert answer.status_code == 422, (order, answer.text)
        assert answer.json()["error"] == (
            f"The new order must name each of the 3 images of the article SKU1 exactly once ({expected})."
        )
    assert names_in(client, "Весна", "SKU1") == ["a.png", "b.png", "c.png"]
    assert post_json(client, f"/api/reorder/{SPRING}/nope", {"image_ids": [a]}).status_code == 404


# --- Who may ------------------------------------------------------------------------------------


def test_anonymous_visitors_may_not_manage_even_their_own_upload(client):
    ids = shop(client)  # an anonymous upload (open service): the album has no creator
    for url, body in (
        (f"/api/rename-album/{SPRING}", {"new_name": "X"}),
        (f"/api/rename-article/{SPRING}/SKU1", {"new_name": "X"}),
        ("/api/move-images", {"image_ids": [ids["a.png"]], "album_name": "Весна", "article_name": "SKU2"}),
        (f"/api/reorder/{SPRING}/SKU1", {"image_ids": [ids["c.png"], ids["b.png"], ids["a.png"]]}),
    ):
        answer = client.post(url, json=body, headers=JSON)
        assert answer.status_code == 403, (url, answer.text)
    assert names_in(client, "Весна", "SKU1") == ["a.png", "b.png", "c.png"]


def test_roles(make_oidc_client, sign_in):
    client = make_oidc_client()

    def as_(sub: str, role: str) -> None:
        client.cookies.clear()
        sign_in(client, sub, roles=[role])

    def rename(album: str, new: str):
        return client.post(f"/api/rename-album/{quote(album, safe='')}", json={"new_name": new}, headers=JSON)

    as_("creator", "appuser")
    ids = shop(client)
    send(client, [("Creator2/Y/y.png", photo(7))], name="c2.zip")
    as_("boss", "appadmin")
    boss = send(client, [("Boss/Z/z.png", photo(8))], name="boss.zip")["results"][0]["id"]

    client.cookies.clear()
    assert rename("Весна", "X").status_code == 401  # ANONYMOUS_BROWSE and upload closed with OIDC
    as_("viewer", "appviewer")
    assert rename("Весна", "X").status_code == 403
    as_("colleague", "appuser")  # adds to the shared album, but does not manage it
    assert rename("Весна", "X").status_code == 403
    reorder = {"image_ids": [ids["c.png"], ids["b.png"], ids["a.png"]]}
    assert client.post(f"/api/reorder/{SPRING}/SKU1", json=reorder, headers=JSON).status_code == 403
    refused = rename("Весна", "X").json()["error"]
    assert (
        refused
        == "Only an administrator or the creator of the album Весна may rename it or move or reorder its images."
    )

    as_("creator", "appuser")
    assert rename("Весна", "Весна-2").status_code == 200
    spring = quote("Весна-2", safe="")
    assert client.post(f"/api/reorder/{spring}/SKU1", json=reorder, headers=JSON).status_code == 200
    between_own = {"image_ids": [ids["d.png"]], "album_name": "Creator2", "article_name": "Y"}
    assert client.post("/api/move-images", json=between_own, headers=JSON).status_code == 200
    # Out of the admin's album, or into it: the creator manages only one side.
    into = {"image_ids": [ids["a.png"]], "album_name": "Boss", "article_name": "Z"}
    assert client.post("/api/move-images", json=into, headers=JSON).status_code == 403
    out = {"image_ids": [boss], "album_name": "Весна-2", "article_name": "SKU1"}
    assert client.post("/api/move-images", json=out, headers=JSON).status_code == 403
    assert rename("Boss", "Mine").status_code == 403

    as_("admin2", "appadmin")
    assert client.post("/api/move-images", json=into, headers=JSON).status_code == 200
    assert rename("Boss", "Boss-renamed").status_code == 200
    assert client.get("/api/count/album/Boss-renamed", headers=JSON).json() == {"count": 2}


# --- The pages -----------------------------------------------------------------------------------


def test_the_article_page_offers_its_manager_the_forms_and_others_none(client):
    shop(client)
    anonymous = client.get(f"/albums/{SPRING}/SKU1", headers=HTML).text
    for absent in ("/reorder/", "/move-image/", "/rename-article/", "Delete the article"):
        assert absent not in anonymous
    html = client.get(f"/albums/{SPRING}/SKU1", headers={**HTML, **ADMIN}).text
    assert html.count('name="direction" value="earlier"') == 3 and html.count(f'action="/reorder/{SPRING}/SKU1"') == 3
    assert html.count(" disabled") == 2  # the first can go no earlier, the last no later
    assert "Photo 1 of 3" in html and 'list="article-codes"' in html and '<option value="SKU2">' in html
    assert f'action="/rename-article/{SPRING}/SKU1"' in html and 'value="SKU1"' in html
    assert 'hx-confirm="Delete the article SKU1 with all its images (3)?"' in html
    album = client.get(f"/albums/{SPRING}", headers={**HTML, **ADMIN}).text
    assert f'action="/rename-album/{SPRING}"' in album
    assert 'hx-confirm="Delete the album Весна with all its images (4)?"' in album


def test_reordering_on_the_page_with_htmx_and_without(client, app_log):
    ids = shop(client)
    url = f"/reorder/{SPRING}/SKU1"
    fragment = client.post(url, data={"image_id": ids["c.png"], "direction": "earlier"}, headers={**HTMX, **ADMIN})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="gallery"') and "<html" not in fragment.text
    assert fragment.text.index("c.png") < fragment.text.index("b.png")
    assert names_in(client, "Весна", "SKU1") == ["a.png", "c.png", "b.png"]
    # Without JavaScript: a form's POST, then back to the page where the image now is.
    plain = client.post(
        url, data={"image_id": ids["a.png"], "direction": "later"}, headers={**HTML, **ADMIN}, follow_redirects=False
    )
    assert (
        plain.status_code == 303 and plain.headers["location"] == f"/albums/{SPRING}/SKU1?page=1#image-{ids['a.png']}"
    )
    assert names_in(client, "Весна", "SKU1") == ["c.png", "a.png", "b.png"]
    # At the end it stays; a wrong direction or id is the client's mistake.
    client.post(url, data={"image_id": ids["b.png"], "direction": "later"}, headers={**HTMX, **ADMIN})
    assert names_in(client, "Весна", "SKU1") == ["c.png", "a.png", "b.png"]
    assert client.post(url, data={"image_id": ids["b.png"], "direction": "up"}, headers=OPERATOR).status_code == 422
    assert client.post(url, data={"image_id": "x", "direction": "later"}, headers=OPERATOR).status_code == 400
    assert client.post(url, data={"image_id": ids["d.png"], "direction": "later"}, headers=OPERATOR).status_code == 404
    assert client.post(url, data={"image_id": ids["a.png"], "direction": "later"}, headers=HTMX).status_code == 403
    assert any(f"Success: image #{ids['a.png']} moved from place 1 to 2 in article SKU1" in line for line in app_log())


def test_a_cross_site_form_is_refused(client):
    ids = shop(client)
    for url, data in (
        (f"/reorder/{SPRING}/SKU1", {"image_id": ids["c.png"], "direction": "earlier"}),
        (f"/rename-album/{SPRING}", {"new_name": "Hijacked"}),
        (f"/move-image/{SPRING}/SKU1", {"image_id": ids["a.png"], "article_name": "SKU2"}),
    ):
        answer = client.post(url, data=data, headers={**HTML, **ADMIN, "Sec-Fetch-Site": "cross-site"})
        assert answer.status_code == 403, url
    assert client.get("/api/albums", headers=JSON).json() == ["Весна"]
    assert names_in(client, "Весна", "SKU1") == ["a.png", "b.png", "c.png"]


def test_moving_and_renaming_on_the_page(client):
    ids = shop(client)
    moved = client.post(
        f"/move-image/{SPRING}/SKU1",
        data={"image_id": ids["a.png"], "article_name": "SKU2", "page": "1"},
        headers={**HTMX, **ADMIN},
    )
    assert moved.status_code == 200
    assert moved.text.lstrip().startswith('<div id="gallery"') and "a.png" not in moved.text.split("article-counts")[0]
    assert 'id="article-counts" hx-swap-oob="true"' in moved.text and "Images: 2" in moved.text
    # The Delete button's question counts what goes now.
    assert 'id="article-delete"' in moved.text and "Delete the article SKU1 with all its images (2)?" in moved.text
    assert names_in(client, "Весна", "SKU2") == ["d.png", "a.png"]
    # Without JavaScript; the last image leaves: the article is gone, so back to the album.
    client.post(
        f"/move-image/{SPRING}/SKU1", data={"image_id": ids["b.png"], "article_name": "SKU2"}, headers={**HTML, **ADMIN}
    )
    last = client.post(
        f"/move-image/{SPRING}/SKU1",
        data={"image_id": ids["c.png"], "article_name": "SKU2"},
        headers={**HTML, **ADMIN},
        follow_redirects=False,
    )
    assert last.status_code == 303 and last.headers["location"] == f"/albums/{SPRING}"
    assert client.get(f"/api/articles/{SPRING}", headers=JSON).json() == ["SKU2"]

    renamed = client.post(f"/rename-article/{SPRING}/SKU2", data={"new_name": "Все фото"}, headers={**HTMX, **ADMIN})
    assert renamed.headers["hx-redirect"] == f"/albums/{SPRING}/{quote('Все фото', safe='')}"
    plain = client.post(
        f"/rename-album/{SPRING}", data={"new_name": "Осень"}, headers={**HTML, **ADMIN}, follow_redirects=False
    )
    assert plain.status_code == 303 and plain.headers["location"] == f"/albums/{quote('Осень', safe='')}"
    # A refusal reaches the page's messages (htmx) with the reason.
    send(client, [("Зима/X/x.png", photo(9))], name="winter.zip")
    taken = client.post(f"/rename-album/{quote('Осень')}", data={"new_name": "Зима"}, headers={**HTMX, **ADMIN})
    assert taken.status_code == 409 and taken.headers["hx-retarget"] == "#messages"
    assert "There is already an album Зима" in taken.text


def test_moving_the_last_photo_of_the_last_page_shows_the_page_before(client):
    """25 photos: page 2 holds one. Moving it away leaves one page, so the gallery is page 1."""
    body = send(client, [(f"Big/A/{n:02d}.png", photo(n)) for n in range(25)] + [("Big/B/b.png", photo(99))])
    ids = {result["entry"].rsplit("/", 1)[-1]: result["id"] for result in body["results"]}
    form = {"image_id": ids["24.png"], "article_name": "B", "page": "2"}
    moved = client.post("/move-image/Big/A", data=form, headers={**HTMX, **ADMIN})
    assert moved.status_code == 200
    gallery = moved.text.split("article-counts")[0]
    assert gallery.count('class="copy"') == 24 and "00.png" in gallery and "24.png" not in gallery
    assert moved.headers.get("hx-push-url") is None and "Images: 24" in moved.text
    # The fragment has no datalist of codes (the page has it); the plain form lands on page 1 too.
    assert 'id="article-codes"' not in moved.text
    plain = client.post(
        "/move-image/Big/A",
        data={"image_id": ids["23.png"], "article_name": "B", "page": "2"},
        headers={**HTML, **ADMIN},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/albums/Big/A?page=1"
    page = client.get(plain.headers["location"], headers={**HTML, **ADMIN}).text
    assert '<datalist id="article-codes"><option value="B">' in page
    assert names_in(client, "Big", "B") == ["b.png", "24.png", "23.png"]


def test_without_javascript_deleting_asks_first_with_the_count(client, settings):
    shop(client)
    ask = client.get(f"/albums/{SPRING}/SKU1?delete=confirm", headers={**HTML, **ADMIN}).text
    assert 'role="alertdialog"' in ask and "Delete the article SKU1 with all its images (3)?" in ask
    assert f'<form action="/albums/{SPRING}/SKU1" method="post">' in ask
    assert 'role="alertdialog"' not in client.get(f"/albums/{SPRING}/SKU1?delete=confirm", headers=HTML).text
    album = client.get(f"/albums/{SPRING}?delete=confirm", headers={**HTML, **ADMIN}).text
    assert "Delete the album Весна with all its images (4)?" in album.split('role="alertdialog"')[1]
    # The page's Delete button without JavaScript is a GET to that question, never a delete.
    html = client.get(f"/albums/{SPRING}/SKU1", headers={**HTML, **ADMIN}).text
    assert f'<form class="manage" id="article-delete" action="/albums/{SPRING}/SKU1" method="get">' in html
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 4


def test_the_forms_speak_russian(client):
    shop(client)
    russian = {**HTML, **ADMIN, "Accept-Language": "ru"}
    html = client.get(f"/albums/{SPRING}/SKU1", headers=russian).text
    for phrase in ("Раньше", "Позже", "Переместить в артикул", "Фото 1 из 3", "Код артикула", "Переименовать"):
        assert phrase in html, phrase
    ask = client.get(f"/albums/{SPRING}/SKU1?delete=confirm", headers=russian).text
    assert "Отмена" in ask
    assert "Название альбома" in client.get(f"/albums/{SPRING}", headers=russian).text
    answer = client.post(
        f"/api/reorder/{SPRING}/SKU1", json={"image_ids": []}, headers={**OPERATOR, "Accept-Language": "ru"}
    )
    assert answer.json()["error"].startswith("Новый порядок должен назвать каждое из 3 изображений артикула SKU1")
