"""A delete_url opened in a browser (ShareX opens its DeletionURL so; people click links from chats)
asks first and never deletes on GET; its form deletes."""

from __future__ import annotations

import re

from tests.conftest import HTML, png_bytes, run_sql, upload
from tests.images.test_delete import path_of

JSON = {"Accept": "application/json"}


def stored_ids(settings) -> list[int]:
    return [row["id"] for row in run_sql(settings.database_url, "SELECT id FROM images")]


def test_opening_the_link_shows_what_it_would_delete_and_deletes_nothing(client, settings):
    body = upload(client, png_bytes(), "Cat.png", headers=JSON).json()
    client.cookies.clear()  # someone else's browser, with only the link
    page = client.get(path_of(body["delete_url"]), headers=HTML)
    assert page.status_code == 200, page.text
    assert "Delete this image?" in page.text and "Cat.png" in page.text
    assert f'action="/delete/{body["id"]}" method="post"' in page.text
    key = body["delete_url"].split("?key=", 1)[1]
    assert re.search(rf'<input type="hidden" name="key" value="{re.escape(key)}">', page.text)
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert client.get(path_of(body["delete_url"]), headers=JSON).json()["id"] == body["id"]
    assert stored_ids(settings) == [body["id"]]
    # Its button sends the key in the form: the image goes.
    sent = client.post(f"/delete/{body['id']}", data={"key": key}, headers=HTML, follow_redirects=False)
    assert sent.status_code == 303
    assert stored_ids(settings) == []
    assert client.get(path_of(body["delete_url"]), headers=HTML).status_code == 404


def test_a_wrong_or_missing_key_gets_the_403_page(client, settings):
    body = upload(client, png_bytes(), headers=JSON).json()
    client.cookies.clear()
    for path in (f"/delete/{body['id']}?key=wrong", f"/delete/{body['id']}"):
        refused = client.get(path, headers=HTML)
        assert refused.status_code == 403 and "Delete this image?" not in refused.text
    assert stored_ids(settings) == [body["id"]]


def test_a_hostile_name_is_inert_on_the_confirmation_page(client):
    body = upload(client, png_bytes(), '"><img src=x onerror=alert(1)>.png', headers=JSON).json()
    page = client.get(path_of(body["delete_url"]), headers=HTML).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_uploading_browser_and_admins_need_no_key(make_client, settings):
    client = make_client(admin_token="matrix-admin")
    body = upload(client, png_bytes(), headers=JSON).json()
    assert client.get(f"/delete/{body['id']}", headers=HTML).status_code == 200  # its own cookie holds the key
    client.cookies.clear()
    admin = client.get(f"/delete/{body['id']}", headers={**JSON, "Authorization": "Bearer matrix-admin"})
    assert admin.status_code == 200
    assert stored_ids(settings) == [body["id"]]


def test_the_upload_page_shows_how_to_upload_from_scripts(make_client):
    client = make_client(public_base_url="https://pics.example.com")
    page = client.get("/upload", headers=HTML).text
    assert 'id="upload-from-scripts"' in page
    assert "curl -F file=@cat.png https://pics.example.com/upload" in page
    assert "-F zipfile=@shop.zip https://pics.example.com/api/upload" in page
