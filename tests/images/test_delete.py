"""Deleting: who may, in each representation, and that row and file go together."""

from __future__ import annotations

from tests.conftest import ADMIN_TOKEN, HTML, HTMX, another_browser, png_bytes, run_sql, stored_files, upload


def path_of(url: str) -> str:
    return url.replace("http://testserver.local", "")


def test_json_delete_with_the_key_from_delete_url(client, settings):
    body = upload(client, png_bytes(), "bye.png").json()
    with another_browser(client) as stranger:  # no cookie: only the key in the URL counts
        response = stranger.delete(path_of(body["delete_url"]))
        assert response.status_code == 200
        assert response.json() == {"status": "success", "message": "Image deleted successfully."}
        assert stored_files(settings) == []
        assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 0
        assert client.get(f"/images/{body['filename']}").status_code == 404
        assert stranger.delete(path_of(body["delete_url"])).status_code == 404


def test_a_stranger_without_key_gets_403_and_nothing_changes(client, settings):
    body = upload(client, png_bytes(), "keep.png").json()
    with another_browser(client) as stranger:
        for attempt in (f"/delete/{body['id']}", f"/delete/{body['id']}?key=wrong"):
            response = stranger.delete(attempt)
            assert response.status_code == 403
            assert body["filename"] in response.json()["error"]
        page = stranger.post(f"/delete/{body['id']}", headers=HTML)
        assert page.status_code == 403 and "<html" in page.text
    assert stored_files(settings) == [body["filename"]]


def test_the_uploaders_browser_deletes_with_its_cookie(client, settings):
    body = upload(client, png_bytes(), "mine.png").json()
    response = client.delete(f"/delete/{body['id']}", headers=HTMX)
    assert response.status_code == 200  # htmx 2 does not swap a 204
    assert response.text == ""
    assert response.headers["hx-trigger"] == "image-deleted"
    assert stored_files(settings) == []


def test_the_operator_token_deletes_anything(client):
    body = upload(client, png_bytes()).json()
    with another_browser(client) as stranger:
        wrong = stranger.delete(f"/delete/{body['id']}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401  # an unknown token is refused as such
        assert "token" in wrong.json()["error"]
        right = stranger.delete(f"/delete/{body['id']}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert right.status_code == 200


def test_post_delete_from_a_page_without_javascript_redirects_to_the_catalogue(client, settings):
    body = upload(client, png_bytes()).json()
    response = client.post(f"/delete/{body['id']}?page=1", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/images/?page=1"
    assert stored_files(settings) == []


def test_unknown_id_is_404_in_each_representation(client):
    assert client.delete("/delete/424242").status_code == 404
    assert client.delete("/delete/424242").json()["status"] == "error"
    fragment = client.delete("/delete/424242", headers=HTMX)
    assert fragment.status_code == 404 and fragment.headers["hx-retarget"] == "#messages"


def test_the_catalogue_offers_delete_only_on_this_browsers_uploads(client):
    mine = upload(client, png_bytes(), "mine.png").json()
    with another_browser(client) as other_browser:
        theirs = upload(other_browser, png_bytes(), "theirs.png").json()
    html = client.get("/images/", headers=HTML).text
    assert f'hx-delete="/delete/{mine["id"]}"' in html
    assert f'hx-delete="/delete/{theirs["id"]}"' not in html


def test_cross_site_browser_requests_are_refused(client, settings):
    body = upload(client, png_bytes()).json()
    attack = client.delete(
        path_of(body["delete_url"]), headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert attack.status_code == 403
    assert "another site" in attack.json()["error"]
    old_browser = client.post(
        "/upload", files={"file": ("x.png", png_bytes())}, headers={"Origin": "https://evil.example"}
    )
    assert old_browser.status_code == 403
    same_site = client.post(
        "/upload", files={"file": ("x.png", png_bytes())}, headers={"Origin": "http://testserver.local"}
    )
    assert same_site.status_code == 201
    assert len(stored_files(settings)) == 2


def test_the_key_also_comes_as_a_header_or_a_form_field(client, settings):
    """Out of the URL, a key stays out of access logs and browser history."""
    first = upload(client, png_bytes(), "one.png").json()
    second = upload(client, png_bytes(), "two.png").json()
    third = upload(client, png_bytes(), "three.png").json()
    key_of = {body["id"]: body["delete_url"].split("?key=", 1)[1] for body in (first, second, third)}
    with another_browser(client) as stranger:
        assert stranger.delete(f"/delete/{first['id']}", headers={"X-Delete-Key": "wrong"}).status_code == 403
        response = stranger.delete(f"/delete/{first['id']}", headers={"X-Delete-Key": key_of[first["id"]]})
        assert response.status_code == 200
        response = stranger.request(
            "DELETE",
            f"/delete/{second['id']}",
            content=f"key={key_of[second['id']]}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        response = stranger.post(f"/delete/{third['id']}", data={"key": key_of[third["id"]]})
        assert response.status_code == 200
    assert stored_files(settings) == []
