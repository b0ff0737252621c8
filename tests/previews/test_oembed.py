"""GET /oembed: photo answers fitted to maxwidth x maxheight, rich answers for albums, every value
from the database; 404 for other sites and unknown images, 501 for XML, 401 when closed."""

from __future__ import annotations

from urllib.parse import quote

from tests.albums.test_upload import SHOP, send
from tests.albums.zips import make_zip
from tests.conftest import png_bytes, upload

JSON = {"Accept": "application/json"}


def oembed(client, url: str, **params):
    query = "&".join(f"{key}={quote(str(value))}" for key, value in {"url": url, **params}.items())
    return client.get(f"/oembed?{query}")


def test_an_image_page_is_a_photo_fitted_into_the_box(client):
    body = upload(client, png_bytes(2000, 1000), "Sea.png", headers=JSON).json()
    whole = oembed(client, body["page_url"]).json()
    assert whole["type"] == "photo" and whole["version"] == "1.0"
    assert (whole["url"], whole["width"], whole["height"]) == (body["url"], 2000, 1000)
    assert whole["title"] == "Sea.png" and whole["provider_name"] == "ImageHost"
    assert whole["provider_url"] == "http://testserver.local/"
    fitted = oembed(client, body["url"], maxwidth=1000, maxheight=900).json()  # the direct link works too
    assert (fitted["url"], fitted["width"], fitted["height"]) == (body["thumbnails"]["480"], 480, 240)
    narrow = oembed(client, body["page_url"], maxwidth=100).json()  # nothing fits: the smallest
    assert (narrow["url"], narrow["width"]) == (body["thumbnails"]["160"], 160)
    assert narrow["thumbnail_url"] == body["thumbnails"]["160"]
    response = oembed(client, body["page_url"], maxheight=700)
    assert response.json()["width"] == 1280 and response.headers["content-type"].startswith("application/json")


def test_values_never_come_from_the_query(client):
    body = upload(client, png_bytes(), "Real.png", headers=JSON).json()
    answer = oembed(client, body["page_url"], title="Fake", provider_name="Evil", author_name="x").json()
    assert answer["title"] == "Real.png" and answer["provider_name"] == "ImageHost" and "author_name" not in answer


def test_an_album_and_an_article_are_rich_iframes(client):
    assert send(client, make_zip(SHOP)).status_code == 201
    album = oembed(client, "http://testserver.local/albums/Shop").json()
    assert album["type"] == "rich" and album["title"] == "Shop" and (album["width"], album["height"]) == (600, 400)
    assert album["html"].startswith('<iframe src="http://testserver.local/embed/album/Shop"')
    article = oembed(client, "http://testserver.local/albums/Shop/SKU1", maxwidth=300).json()
    assert article["title"] == "Shop / SKU1" and article["width"] == 300
    assert 'src="http://testserver.local/embed/album/Shop/SKU1"' in article["html"]


def test_a_hostile_album_name_is_escaped_in_the_iframe(client):
    name = 'x" onload="alert(1)'
    assert send(client, make_zip([("a.png", png_bytes())]), album_name=name).status_code == 201
    answer = oembed(client, f"http://testserver.local/albums/{quote(name, safe='')}").json()
    assert 'onload="alert' not in answer["html"] and "&quot; onload=&quot;alert(1)" in answer["html"]
    assert answer["title"] == name


def test_refusals(client):
    body = upload(client, png_bytes(), headers=JSON).json()
    cases = [
        (oembed(client, "https://elsewhere.example/i/" + body["filename"]), 404),
        (oembed(client, "http://testserver.local/i/AAAAAAAAAAAAAAAAAAAAAA.png"), 404),
        (oembed(client, "http://testserver.local/upload"), 404),
        (oembed(client, "http://testserver.local/albums/Nothing"), 404),
        (oembed(client, body["page_url"], format="xml"), 501),
        (oembed(client, body["page_url"], maxwidth="wide"), 400),
        (client.get("/oembed"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.json()["status"] == "error" and response.json()["error"]


def test_closed_to_visitors_who_may_not_browse(make_oidc_client, sign_in):
    client = make_oidc_client()
    sign_in(client, "ulla", roles=["appuser"])
    body = upload(client, png_bytes(), headers=JSON).json()
    assert oembed(client, body["page_url"]).status_code == 200
    client.cookies.clear()
    refused = oembed(client, body["page_url"])
    assert refused.status_code == 401
