"""The embeds as other sites use them: a page for an iframe, a fragment for htmx, their headers
(framing, CORS, caching, no cookies), private mode, and the codes the pages offer."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from imagehost.embeds.framing import HTMX_REQUEST_HEADERS
from tests.albums.zips import make_zip, photo
from tests.conftest import ADMIN_TOKEN, png_bytes, upload
from tests.images.test_snippets import HOSTILE_NAMES, tags_of

JSON = {"Accept": "application/json"}
PAGE = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
FRAGMENT = {"Accept": "*/*", "HX-Request": "true", "HX-Current-URL": "https://blog.example/post"}
SITE = "http://testserver.local"
BLOG = "https://blog.example"


def send_zip(client, entries, name="shop.zip", headers=JSON) -> None:
    files = {"zipfile": (name, make_zip(entries), "application/zip")}
    response = client.post("/api/upload", files=files, headers=headers)
    assert response.status_code == 201, response.text


def stored(client, name="cat.png", size=(900, 600)) -> dict:
    response = upload(client, png_bytes(*size), name, headers=JSON)
    assert response.status_code == 201, response.text
    return response.json()


def policy_of(response) -> dict[str, list[str]]:
    values = response.headers.get_list("content-security-policy")
    assert len(values) == 1, values
    directives = {}
    for part in values[0].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def gallery_links(html: str) -> list[str]:
    return [attrs["href"] for tag, attrs in tags_of(html) if tag == "a" and "/i/" in (attrs.get("href") or "")]


# --- the image card --------------------------------------------------------------------------------


def test_the_image_card_is_a_small_page_for_an_iframe_and_a_fragment_for_htmx(client):
    image = stored(client)
    name = image["filename"]
    page = client.get(f"/embed/i/{name}", headers=PAGE)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert html.lstrip().startswith("<!doctype html>") and "<script" not in html
    assert "site-header" not in html  # no site around it
    tags = tags_of(html)
    img = next(attrs for tag, attrs in tags if tag == "img")
    # The picture at a sensible size (the 480 px thumbnail), the other versions in srcset, all absolute.
    assert img["src"] == f"{SITE}/images/thumbs/480/{name}.webp"
    assert f"{SITE}/images/thumbs/160/{name}.webp 160w" in img["srcset"]
    assert f"{SITE}/images/{name} 900w" in img["srcset"]
    assert (img["width"], img["height"], img["alt"]) == ("900", "600", "cat.png")
    links = [attrs for tag, attrs in tags if tag == "a"]
    assert {link["href"] for link in links} == {f"{SITE}/i/{name}"}
    assert all(link["target"] == "_blank" and link["rel"] == "noopener" for link in links)
    stylesheet = next(attrs for tag, attrs in tags if tag == "link")
    assert stylesheet["href"] == f"{SITE}/static/embed.css"
    assert client.get("/static/embed.css").status_code == 200

    fragment = client.get(f"/embed/i/{name}", headers=FRAGMENT)
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith(
        f'<figure class="imagehost-embed imagehost-card" id="imagehost-image-{name}"'
    )
    assert "<html" not in fragment.text and "<body" not in fragment.text
    assert ">cat.png<" in fragment.text

    answer = client.get(f"/embed/i/{name}", headers=JSON).json()
    assert answer["filename"] == name and answer["page_url"] == f"{SITE}/i/{name}"


def test_an_unknown_image_is_a_404_in_the_embeds_own_form(client):
    page = client.get("/embed/i/AAAAAAAAAAAAAAAAAAAAAA.png", headers=PAGE)
    assert page.status_code == 404
    assert 'class="imagehost-embed imagehost-error"' in page.text and "site-header" not in page.text
    fragment = client.get("/embed/i/AAAAAAAAAAAAAAAAAAAAAA.png", headers=FRAGMENT)
    assert fragment.status_code == 404 and "<html" not in fragment.text
    assert "hx-retarget" not in fragment.headers  # there is no #messages on another site's page
    # Framable like every embed answer, so the frame shows the message rather than a browser error.
    assert policy_of(fragment)["frame-ancestors"] == ["'self'", "*"]


def test_the_card_speaks_the_visitors_language(client):
    image = stored(client)
    russian = client.get(f"/embed/i/{image['filename']}", headers={**PAGE, "Accept-Language": "ru"})
    english = client.get(f"/embed/i/{image['filename']}", headers={**PAGE, "Accept-Language": "en"})
    assert 'lang="ru"' in russian.text and "на ImageHost" in russian.text
    assert "on ImageHost" in english.text
    assert russian.headers["etag"] != english.headers["etag"]


# --- galleries -----------------------------------------------------------------------------------------


def test_an_album_and_an_article_are_galleries_of_their_image_pages(client):
    send_zip(client, [(f"Весна/SKU{n % 2}/{n}.png", photo(n)) for n in range(1, 6)])
    album = client.get(f"/embed/album/{quote('Весна')}", headers=PAGE)
    assert album.status_code == 200 and "<script" not in album.text
    pages = gallery_links(album.text)
    assert len(pages) == 5 and all(link.startswith(f"{SITE}/i/") for link in pages)
    title = next(attrs for tag, attrs in tags_of(album.text) if tag == "a" and "/albums/" in attrs["href"])
    assert title["href"] == f"{SITE}/albums/{quote('Весна', safe='')}"

    article = client.get(f"/embed/album/{quote('Весна')}/SKU1", headers=FRAGMENT)
    assert article.status_code == 200
    assert article.text.lstrip().startswith('<section class="imagehost-embed imagehost-gallery"')
    in_order = client.get(f"/albums/{quote('Весна')}/SKU1", headers=JSON).json()["data"]
    assert gallery_links(article.text) == [image["page_url"] for image in in_order]  # the photo order
    assert "Весна / SKU1" in article.text

    assert client.get(f"/embed/album/{quote('Осень')}", headers=PAGE).status_code == 404
    assert client.get(f"/embed/album/{quote('Весна')}/SKU9", headers=FRAGMENT).status_code == 404


def test_a_gallery_pages_by_limit_and_its_pager_works_in_a_frame_and_through_htmx(client):
    send_zip(client, [(f"Shop/SKU1/{n:02d}.png", photo(n)) for n in range(1, 8)])
    first = client.get("/embed/album/Shop?limit=3", headers=PAGE)
    assert len(gallery_links(first.text)) == 3 and "page 1 of 3" in first.text
    following = next(attrs for tag, attrs in tags_of(first.text) if tag == "a" and attrs.get("rel") == "next")
    assert following["href"] == f"{SITE}/embed/album/Shop?page=2&limit=3"
    assert following["hx-get"] == following["href"]
    assert following["hx-target"] == "closest .imagehost-gallery" and following["hx-swap"] == "outerHTML"
    last = client.get("/embed/album/Shop?limit=3&page=3", headers=FRAGMENT)
    assert len(gallery_links(last.text)) == 1 and 'rel="next"' not in last.text and 'rel="prev"' in last.text
    everything = [
        gallery_links(client.get(f"/embed/album/Shop?limit=3&page={n}", headers=PAGE).text) for n in (1, 2, 3)
    ]
    assert len({link for links in everything for link in links}) == 7
    assert len(gallery_links(client.get("/embed/album/Shop", headers=PAGE).text)) == 7  # default limit 12
    for bad in ("0", "49", "x", "-1"):
        assert client.get(f"/embed/album/Shop?limit={bad}", headers=PAGE).status_code == 400, bad
    assert client.get("/embed/album/Shop?page=0", headers=PAGE).status_code == 400


def test_latest_shows_the_newest_images_first(client):
    names = [stored(client, f"n{n}.png", (40 + n, 30))["filename"] for n in range(5)]
    latest = client.get("/embed/latest?limit=3", headers=PAGE)
    assert latest.status_code == 200
    assert gallery_links(latest.text) == [f"{SITE}/i/{name}" for name in reversed(names[-3:])]
    assert "Newest images" in latest.text
    fragment = client.get("/embed/latest", headers=FRAGMENT)
    assert len(gallery_links(fragment.text)) == 5 and "<html" not in fragment.text
    assert client.get("/embed/latest?limit=100", headers=PAGE).status_code == 400


def test_an_empty_catalogue_says_so(client):
    assert "There are no images here yet." in client.get("/embed/latest", headers=PAGE).text


# --- headers -------------------------------------------------------------------------------------------


def embed_urls(client) -> list[str]:
    image = stored(client)
    send_zip(client, [("Shop/SKU1/a.png", photo(1))])
    return [f"/embed/i/{image['filename']}", "/embed/album/Shop", "/embed/album/Shop/SKU1", "/embed/latest"]


def test_embeds_may_be_framed_by_anyone_by_default_and_other_pages_by_nobody(client):
    for url in embed_urls(client):
        for headers in (PAGE, FRAGMENT):
            answer = client.get(url, headers=headers)
            assert answer.status_code == 200, url
            policy = policy_of(answer)
            assert policy["frame-ancestors"] == ["'self'", "*"], url
            assert policy["script-src" if "script-src" in policy else "default-src"] == ["'none'"]
            assert "x-frame-options" not in answer.headers
            assert answer.headers["vary"] == "HX-Request, Accept, Accept-Language, Origin"
            assert answer.headers["access-control-allow-origin"] == "*"
    for url in ("/", "/images/", "/albums/Shop", "/no-such-page"):
        assert policy_of(client.get(url, headers=PAGE))["frame-ancestors"] == ["'none'"], url


def test_embed_origins_limit_framing_and_cors_to_those_sites(make_client):
    client = make_client(embed_origins=(BLOG, "https://shop.example:8443"), public_base_url="https://img.example")
    for url in embed_urls(client):
        allowed = client.get(url, headers={**FRAGMENT, "Origin": BLOG})
        ancestors = policy_of(allowed)["frame-ancestors"]
        assert ancestors == ["'self'", "https://img.example", BLOG, "https://shop.example:8443"], url
        assert allowed.headers["access-control-allow-origin"] == BLOG
        assert "access-control-allow-credentials" not in allowed.headers
        refused = client.get(url, headers={**FRAGMENT, "Origin": "https://evil.example"})
        assert refused.status_code == 200  # the browser refuses to hand it over, without the header
        assert "access-control-allow-origin" not in refused.headers
        assert "x-frame-options" not in refused.headers
        own = client.get(url, headers={**FRAGMENT, "Origin": "https://img.example"})
        assert own.headers["access-control-allow-origin"] == "https://img.example"
    # An error answer echoes the origin too, and says it varies by it, so no cache hands it to another site.
    missing = client.get("/embed/i/AAAAAAAAAAAAAAAAAAAAAA.png", headers={**FRAGMENT, "Origin": BLOG})
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == BLOG
    assert "origin" in [part.strip().lower() for part in missing.headers["vary"].split(",")]


def test_the_htmx_preflight_is_answered_for_allowed_origins(make_client):
    client = make_client(embed_origins=(BLOG,))
    urls = embed_urls(client)
    asked = {
        "Origin": BLOG,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "hx-current-url,hx-request,hx-target,hx-trigger",
    }
    for url in urls:
        preflight = client.options(url, headers=asked)
        assert preflight.status_code in {200, 204}, url
        assert preflight.headers["access-control-allow-origin"] == BLOG
        assert preflight.headers["access-control-allow-methods"] == "GET"
        allowed = {name.strip() for name in preflight.headers["access-control-allow-headers"].split(",")}
        assert allowed == {"hx-request", "hx-current-url", "hx-target", "hx-trigger", "hx-trigger-name", "hx-boosted"}
        assert int(preflight.headers["access-control-max-age"]) > 0
        assert "access-control-allow-credentials" not in preflight.headers
        elsewhere = client.options(url, headers={**asked, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in elsewhere.headers
    assert HTMX_REQUEST_HEADERS.count(",") == 5


def test_an_unchanged_embed_answers_304_and_a_changed_one_does_not(client):
    send_zip(client, [("Shop/SKU1/a.png", photo(1))])
    first = client.get("/embed/album/Shop", headers=PAGE)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=60"
    again = client.get("/embed/album/Shop", headers={**PAGE, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["cache-control"] == "public, max-age=60"
    assert "x-frame-options" not in again.headers and policy_of(again)["frame-ancestors"] == ["'self'", "*"]
    # The fragment is another answer at the same URL: its own tag.
    assert client.get("/embed/album/Shop", headers={**FRAGMENT, "If-None-Match": etag}).status_code == 200
    admin = {**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    send_zip(client, [("Shop/SKU2/b.png", photo(2))], headers=admin)  # one more image in the album
    changed = client.get("/embed/album/Shop", headers={**PAGE, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert (
        client.get("/embed/album/Shop", headers={**PAGE, "If-None-Match": f"W/{changed.headers['etag']}"}).status_code
        == 304
    )


def test_embeds_set_no_cookie_even_for_a_signed_in_visitor(make_oidc_client, sign_in):
    client = make_oidc_client()
    assert sign_in(client, "ulla", roles=["appuser"]).status_code == 303
    assert client.cookies  # the session cookie is there, and is sent with every request below
    for url in embed_urls(client):
        for headers in (PAGE, FRAGMENT, JSON):
            answer = client.get(url, headers=headers)
            assert answer.status_code == 200, url
            assert "set-cookie" not in answer.headers, url
    assert "set-cookie" not in client.get("/embed/i/AAAAAAAAAAAAAAAAAAAAAA.png", headers=PAGE).headers
    assert "set-cookie" in client.get("/upload", headers=PAGE).headers  # other pages keep their session


# --- private mode ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [{"private_images": True}, {"anonymous_browse": False}])
def test_visitors_who_may_not_browse_get_401_where_a_viewer_gets_the_embed(make_oidc_client, sign_in, mode):
    client = make_oidc_client(**mode)
    sign_in(client, "ulla", roles=["appuser"])
    urls = embed_urls(client)
    for url in urls:
        seen = client.get(url, headers=PAGE)
        assert seen.status_code == 200 and seen.headers["cache-control"] == "private, max-age=60", url
    client.cookies.clear()  # what a browser sends from another site's frame: no SameSite=Lax cookie
    for url in urls:
        page = client.get(url, headers=PAGE, follow_redirects=False)
        assert page.status_code == 401, url  # not a redirect to the sign-in page, which may not be framed
        assert 'class="imagehost-embed imagehost-error"' in page.text and "sign in" in page.text
        assert policy_of(page)["frame-ancestors"] == ["'self'", "*"]
        fragment = client.get(url, headers=FRAGMENT, follow_redirects=False)
        assert fragment.status_code == 401 and "<html" not in fragment.text
        assert "hx-redirect" not in fragment.headers
        assert client.get(url, headers=JSON).status_code == 401


def test_without_private_mode_the_embeds_are_public(make_oidc_client, sign_in):
    client = make_oidc_client(private_images=False, anonymous_browse=True)
    sign_in(client, "ulla", roles=["appuser"])
    urls = embed_urls(client)
    client.cookies.clear()
    for url in urls:
        answer = client.get(url, headers=PAGE)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=60"


# --- the codes on the pages ------------------------------------------------------------------------------


def codes_on(html: str) -> dict[str, str]:
    return {
        attrs["id"]: attrs["value"] or ""
        for tag, attrs in tags_of(html)
        if tag == "input" and (attrs.get("id") or "").startswith("embed-")
    }


def preview_of(html: str) -> dict[str, str | None]:
    return next(attrs for tag, attrs in tags_of(html) if tag == "iframe")


def assert_inert(codes: dict[str, str], src: str, title: str | None) -> None:
    """Each code, as pasted, is exactly its own element: no attribute or element of the name's."""
    iframe = tags_of(codes["embed-iframe"])
    assert [tag for tag, _ in iframe] == ["iframe"]
    attrs = iframe[0][1]
    assert set(attrs) == {"src", "width", "height", "title", "loading", "style"}
    assert attrs["src"] == src and attrs["loading"] == "lazy"
    if title is not None:
        assert attrs["title"] == " ".join(title.split())
    htmx = tags_of(codes["embed-htmx"])
    assert htmx == [("div", {"hx-get": src, "hx-trigger": "load"})]
    config = tags_of(codes["embed-htmx-config"])
    assert config == [("meta", {"name": "htmx-config", "content": '{"selfRequestsOnly":false}'})]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_image_page_offers_inert_embed_codes_and_a_preview(client, name):
    image = stored(client, name)
    page = client.get(f"/i/{image['filename']}", headers=PAGE)
    assert page.status_code == 200
    src = f"{SITE}/embed/i/{image['filename']}"
    codes = codes_on(page.text)
    assert_inert(codes, src, image["original_name"])
    preview = preview_of(page.text)
    assert preview["src"] == src and preview["loading"] == "lazy"
    assert client.get(preview["src"].removeprefix(SITE), headers=PAGE).status_code == 200  # a working embed
    assert 'onerror="' not in page.text


@pytest.mark.parametrize("name", HOSTILE_NAMES[:4])
def test_the_album_and_article_pages_offer_inert_embed_codes(client, name):
    album = name.replace("/", "-").replace("\n", " ").replace("\r", " ")[:40].strip() or "x"
    send_zip(client, [(f"{album}/SKU 1/a.png", photo(1))])
    stored_album = client.get("/api/albums", headers=JSON).json()[0]
    src = f"{SITE}/embed/album/{quote(stored_album, safe='')}"
    album_page = client.get(f"/albums/{quote(stored_album, safe='')}", headers=PAGE)
    assert album_page.status_code == 200
    assert_inert(codes_on(album_page.text), src, stored_album)
    assert preview_of(album_page.text)["src"] == src
    article_page = client.get(f"/albums/{quote(stored_album, safe='')}/SKU%201", headers=PAGE)
    assert article_page.status_code == 200
    assert_inert(codes_on(article_page.text), f"{src}/SKU%201", f"{stored_album} / SKU 1")
    assert client.get(f"/embed/album/{quote(stored_album, safe='')}/SKU%201", headers=PAGE).status_code == 200


# --- the setting ---------------------------------------------------------------------------------------


def test_embed_origins_are_read_from_spaces_or_commas_and_nothing_but_origins_passes():
    from imagehost.settings import Settings, SettingsError

    assert Settings.from_env({}).embed_origins == ("*",)
    read = Settings.from_env({"EMBED_ORIGINS": " https://Blog.example/, https://shop.example:8443  http://[::1]:8080"})
    assert read.embed_origins == ("https://blog.example", "https://shop.example:8443", "http://[::1]:8080")
    for bad in (
        "blog.example",
        "https://blog.example/path",
        "https://a.example; script-src *",
        "'self'",
        "ftp://x.example",
    ):
        with pytest.raises(SettingsError, match="EMBED_ORIGINS"):
            Settings.from_env({"EMBED_ORIGINS": bad})
