"""Link previews: the image page carries OpenGraph and Twitter card tags, absolute, from the
database, escaped; none with PRIVATE_IMAGES."""

from __future__ import annotations

import html
import re

from tests.conftest import HTML, png_bytes, upload

JSON = {"Accept": "application/json"}


def meta(page: str) -> dict[str, str]:
    found = {}
    for match in re.finditer(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', page):
        found[match[1]] = html.unescape(match[2])
    return found


def oembed_link(page: str) -> str | None:
    match = re.search(r'<link rel="alternate" type="application/json\+oembed" href="([^"]+)"', page)
    return html.unescape(match[1]) if match else None


def test_a_large_images_page_shows_its_1280_px_version(client):
    body = upload(client, png_bytes(2000, 1000), "Holiday.png", headers=JSON).json()
    page = client.get(f"/i/{body['filename']}", headers=HTML).text
    tags = meta(page)
    assert tags["og:title"] == "Holiday.png" and tags["og:image:alt"] == "Holiday.png"
    assert tags["og:type"] == "website" and tags["og:site_name"] == "ImageHost"
    assert tags["og:url"] == body["page_url"]
    assert tags["og:image"] == body["thumbnails"]["1280"]
    assert (tags["og:image:width"], tags["og:image:height"]) == ("1280", "640")
    assert tags["twitter:card"] == "summary_large_image"
    assert client.get(tags["og:image"].replace("http://testserver.local", "")).status_code == 200
    assert oembed_link(page).startswith("http://testserver.local/oembed?url=http")


def test_a_small_image_is_its_own_preview(client):
    body = upload(client, png_bytes(300, 200), headers=JSON).json()
    tags = meta(client.get(f"/i/{body['filename']}", headers=HTML).text)
    assert tags["og:image"] == body["url"]
    assert (tags["og:image:width"], tags["og:image:height"]) == ("300", "200")


def test_a_hostile_name_stays_inside_its_attribute(client):
    name = '"><script>alert(1)</script>.png'
    body = upload(client, png_bytes(), name, headers=JSON).json()
    page = client.get(f"/i/{body['filename']}", headers=HTML).text
    assert "<script>alert(1)" not in page
    assert meta(page)["og:title"] == body["original_name"]


def test_the_tags_are_on_the_images_base_url(make_client):
    client = make_client(images_base_url="https://img.example.com", public_base_url="https://site.example.com")
    body = upload(client, png_bytes(2000, 1000), headers=JSON).json()
    tags = meta(client.get(f"/i/{body['filename']}", headers=HTML).text)
    assert tags["og:image"].startswith("https://img.example.com/images/thumbs/1280/")
    assert tags["og:url"].startswith("https://site.example.com/i/")


def test_no_preview_with_private_images(make_oidc_client, sign_in):
    client = make_oidc_client(private_images=True)
    sign_in(client, "ulla", roles=["appuser"])
    body = upload(client, png_bytes(), headers=JSON).json()
    page = client.get(f"/i/{body['filename']}", headers=HTML).text
    assert 'class="original-name"' in page  # the page itself is shown to who may see it
    assert meta(page).keys().isdisjoint({"og:title", "og:image", "twitter:card"}) and oembed_link(page) is None


def test_album_and_article_pages_are_previewed_by_their_cover(client):
    from urllib.parse import quote

    from tests.albums.test_upload import send
    from tests.albums.zips import make_zip

    name = 'Весна "2026"'
    report = send(
        client,
        make_zip([("a/SKU1/1.png", png_bytes(2000, 1000)), ("a/SKU1/2.png", png_bytes(40, 30))]),
        album_name=name,
    ).json()
    first = next(item for item in report["results"] if item["entry"].endswith("1.png"))
    album = meta(client.get(f"/albums/{quote(name, safe='')}", headers=HTML).text)
    assert album["og:title"] == name and album["og:url"].endswith("/albums/" + quote(name, safe=""))
    article_page = client.get(f"/albums/{quote(name, safe='')}/SKU1", headers=HTML).text
    article = meta(article_page)
    assert article["og:title"] == f"{name} / SKU1"
    assert article["og:image"].endswith(f"/images/thumbs/1280/{first['filename']}.webp")
    assert article["og:image:alt"] == "1.png" and album["og:image"] == article["og:image"]
    assert oembed_link(article_page).startswith("http://testserver.local/oembed?url=")
