"""The catalogue: page, fragment and JSON, paging, the empty state, download."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from tests.conftest import HTML, png_bytes, run_sql, upload


def upload_many(client, count: int) -> list[dict]:
    return [upload(client, png_bytes(color=(i, 0, 0)), f"img-{i:02d}.png").json() for i in range(1, count + 1)]


def rows(html: str) -> list[str]:
    return re.findall(r'<td class="original-name">([^<]*)</td>', html)


def test_empty_catalogue_says_so_and_points_to_upload(client):
    html = client.get("/images/", headers=HTML).text
    assert "The catalogue is empty." in html
    assert 'href="/upload"' in html


def test_images_without_slash_redirects_to_the_catalogue(client):
    response = client.get("/images", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "/images/"


def test_pages_of_ten_newest_first_with_page_n_of_m(client):
    upload_many(client, 23)
    first = client.get("/images/", headers=HTML).text
    assert rows(first) == [f"img-{i:02d}.png" for i in range(23, 13, -1)]
    assert "page 1 of 3" in first
    assert "Next page" in first and "Previous page" not in first
    assert 'href="/images/?page=2"' in first  # a plain link without JavaScript
    last = client.get("/images/?page=3", headers=HTML).text
    assert rows(last) == ["img-03.png", "img-02.png", "img-01.png"]
    assert "page 3 of 3" in last and "Previous page" in last and "Next page" not in last
    middle = client.get("/images/?page=2", headers=HTML).text
    assert rows(middle) == [f"img-{i:02d}.png" for i in range(13, 3, -1)]


def test_htmx_paging_returns_only_the_table(client):
    upload_many(client, 11)
    response = client.get("/images/?page=2", headers={"HX-Request": "true", "Accept": "*/*"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="catalogue"')
    assert "<html" not in response.text
    assert "HX-Request" in response.headers["vary"]
    assert rows(response.text) == ["img-01.png"]
    # A history restore or a boosted request wants the whole page.
    for header in ("HX-History-Restore-Request", "HX-Boosted"):
        whole = client.get("/images/?page=2", headers={"HX-Request": "true", header: "true", **HTML})
        assert "<html" in whole.text


def test_images_list_json(client):
    uploaded = upload_many(client, 12)
    body = client.get("/images-list?page=1").json()
    assert body["status"] == "success" and body["page"] == 1
    assert body["pagination"] == {"total_pages": 2, "total_items": 12}
    assert len(body["data"]) == 10
    item = body["data"][0]
    assert set(item) == {
        "id",
        "filename",
        "original_name",
        "size",
        "size_kb",
        "upload_time",
        "file_type",
        "content_type",
        "url",
        "width",
        "height",
        "thumbnails",
        "page_url",
        "download_url",
    }
    newest = uploaded[-1]
    assert item["id"] == newest["id"] and item["filename"] == newest["filename"]
    assert isinstance(item["size_kb"], int) and item["file_type"] == "png"
    assert item["url"] == newest["url"] and item["upload_time"] == newest["upload_time"]
    assert [i["original_name"] for i in client.get("/images-list?page=2").json()["data"]] == [
        "img-02.png",
        "img-01.png",
    ]
    past = client.get("/images-list?page=9").json()
    assert past["data"] == [] and past["page"] == 9
    assert client.get("/images-list?page=nonsense").status_code == 400
    # The catalogue URL itself answers JSON to API clients.
    assert client.get("/images/", headers={"Accept": "application/json"}).json()["pagination"]["total_items"] == 12


def test_total_follows_uploads_and_deletes(client, settings):
    uploaded = upload_many(client, 3)
    client.delete(uploaded[0]["delete_url"].replace("http://testserver.local", ""))
    assert client.get("/images-list").json()["pagination"]["total_items"] == 2
    assert run_sql(settings.database_url, "SELECT total FROM image_totals")[0][0] == 2


def test_links_use_images_base_url_then_public_base_url(make_client):
    client = make_client(public_base_url="https://img.example.org")
    body = upload(client, png_bytes()).json()
    assert body["url"] == f"https://img.example.org/images/{body['filename']}"
    assert body["delete_url"].startswith("https://img.example.org/delete/")
    client = make_client(public_base_url="https://img.example.org", images_base_url="https://cdn.example.net")
    body = upload(client, png_bytes()).json()
    assert body["url"] == f"https://cdn.example.net/images/{body['filename']}"
    assert body["delete_url"].startswith("https://img.example.org/delete/")


def test_download_gets_the_original_name_for_any_name(client):
    name = 'кот "на" крыше;.png'
    body = upload(client, png_bytes(), name).json()
    response = client.get(f"/download/{body['id']}")
    assert response.status_code == 200
    assert response.content == client.get(f"/images/{body['filename']}").content
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(name, safe='')}" in disposition
    assert '"на"' not in disposition  # the ASCII fallback cannot break out of its quotes
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/download/99999").status_code == 404


def test_download_through_nginx_is_an_accel_redirect(make_client):
    client = make_client(accel_downloads=True)
    body = upload(client, png_bytes(), "a.png").json()
    response = client.get(f"/download/{body['id']}")
    assert response.headers["x-accel-redirect"] == f"/_stored/{body['filename']}"
    assert response.content == b""


def test_unknown_page_is_a_404_page_or_json(client):
    assert client.get("/nowhere", headers=HTML).status_code == 404
    assert "There is no page at this address." in client.get("/nowhere", headers=HTML).text
    assert client.get("/nowhere").json() == {"status": "error", "error": "There is no page at this address."}


def test_home_page_links_to_upload_and_catalogue(client):
    html = client.get("/", headers=HTML).text
    assert 'href="/upload"' in html and 'href="/images/"' in html
    assert "direct link" in html.lower()


def test_health_and_ready(client, settings):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    # The images folder vanishes (an unmounted volume): not ready, and the answer says why.
    settings.images_dir.rename(settings.images_dir.with_name("moved-away"))
    response = client.get("/ready")
    assert response.status_code == 503
    assert "not writable" in response.json()["reason"]
    assert client.get("/health").status_code == 200


def test_head_on_direct_links_and_downloads_without_nginx(client):
    body = upload(client, png_bytes(), "head.png").json()
    image = client.head(f"/images/{body['filename']}")
    assert image.status_code == 200 and image.content == b""
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert int(image.headers["content-length"]) == body["size"]
    download = client.head(f"/download/{body['id']}")
    assert download.status_code == 200 and download.headers["content-disposition"].startswith("attachment")
    assert client.head("/images/AAAAAAAAAAAAAAAAAAAAAA.png").status_code == 404


def test_a_download_takes_the_real_formats_extension(client):
    """`report.html` holding a PNG downloads as `report.png`; a name with the right extension stays."""
    cases = {
        "report.html": "report.png",
        "archive.tar.gz": "archive.tar.png",
        "noextension": "noextension.png",
        ".hidden": ".hidden.png",
        "Photo.PNG": "Photo.PNG",
        "кот.png": "кот.png",
    }
    for original, downloaded in cases.items():
        body = upload(client, png_bytes(), original).json()
        disposition = client.get(f"/download/{body['id']}").headers["content-disposition"]
        assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == downloaded, original
        assert body["original_name"] == original  # the catalogue keeps what was uploaded


def test_an_image_has_one_json_shape_everywhere(client):
    """The upload's answer, the list, the catalogue as JSON and the image page describe an image alike."""
    uploaded = upload(client, png_bytes(), "same.png").json()
    assert uploaded.pop("status") == "success" and uploaded.pop("delete_url")
    listed = client.get("/images-list").json()["data"][0]
    catalogue = client.get("/images/", headers={"Accept": "application/json"}).json()["data"][0]
    page = client.get(f"/i/{uploaded['filename']}").json()
    assert page.pop("status") == "success"
    assert uploaded == listed == catalogue == page
    assert client.get(page["download_url"].replace("http://testserver.local", "")).status_code == 200


def cards(html: str) -> list[str]:
    return re.findall(r'<span class="card-name original-name">([^<]*)</span>', html)


def test_the_grid_view_shows_the_same_page_as_cards_and_keeps_itself_when_paging(client):
    upload_many(client, 13)
    grid = client.get("/images/?view=grid", headers=HTML).text
    assert cards(grid) == [f"img-{i:02d}.png" for i in range(13, 3, -1)] and rows(grid) == []
    assert 'href="/images/?page=2&amp;view=grid"' in grid  # the pager stays in the grid
    assert 'href="/images/?page=1"' in grid  # the switch back to the table
    second = client.get("/images/?page=2&view=grid", headers={"HX-Request": "true"}).text
    assert second.lstrip().startswith('<div id="catalogue"') and cards(second) == [
        "img-03.png",
        "img-02.png",
        "img-01.png",
    ]
    table = client.get("/images/?page=1", headers=HTML).text
    assert cards(table) == [] and len(rows(table)) == 10
    assert 'href="/images/?page=1&amp;view=grid"' in table


def test_the_grid_view_keeps_the_filters_and_a_bad_view_is_refused(client):
    upload_many(client, 2)
    grid = client.get("/images/?view=grid&uploader=me", headers=HTML).text
    assert "view=grid" in grid
    refused = client.get("/images/?view=mosaic", headers={"Accept": "application/json"})
    assert refused.status_code == 422 and "table or grid" in refused.json()["error"]
