"""POST /upload beside ZIPs: several `file` parts in one request, and single images put into an album
and article with `album_name` / `article_name`."""

from __future__ import annotations

import httpx

from tests.albums.test_upload import JSON, SHOP, placement, send, team  # noqa: F401 (team is a fixture)
from tests.albums.zips import make_zip, photo
from tests.conftest import run_sql
from tests.images.test_delete import path_of

HTML = {"Accept": "text/html"}


def several(client, parts: list[tuple[str, bytes]], headers: dict | None = None, **form) -> httpx.Response:
    return client.post(
        "/upload",
        files=[("file", (name, content, "application/octet-stream")) for name, content in parts],
        data=form or None,
        headers={**JSON, **(headers or {})},
    )


def stored_names(settings) -> list[str]:
    return [row[0] for row in run_sql(settings.database_url, "SELECT original_name FROM images ORDER BY id")]


def test_several_files_answer_one_result_each_in_order(client, settings):
    response = several(client, [("a.png", photo(1)), ("notes.txt", b"just text"), ("b.png", photo(2))])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "success"
    first, refused, last = body["results"]
    assert first["status"] == "success" and first["original_name"] == "a.png"
    assert last["status"] == "success" and last["original_name"] == "b.png"
    assert refused == {"status": "error", "error": refused["error"], "filename": "notes.txt"}
    assert "JPEG, PNG" in refused["error"] or "format" in refused["error"].lower()
    assert stored_names(settings) == ["a.png", "b.png"]
    # Each stored one is a whole single-upload answer: its delete link works on its own.
    deleted = client.delete(path_of(first["delete_url"]), headers=JSON)
    assert deleted.status_code == 200, deleted.text
    assert stored_names(settings) == ["b.png"]


def test_several_files_all_refused_answer_the_first_refusals_status(client, settings):
    response = several(client, [("empty.png", b""), ("notes.txt", b"just text")])
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error"
    assert [item["filename"] for item in body["results"]] == ["empty.png", "notes.txt"]
    assert all(item["status"] == "error" and item["error"] for item in body["results"])
    assert stored_names(settings) == []


def test_one_file_keeps_todays_flat_answer(client):
    body = several(client, [("a.png", photo(1))]).json()
    assert "results" not in body and body["original_name"] == "a.png" and body["delete_url"]


def test_several_files_as_a_page_show_every_result(client, settings):
    response = several(client, [("a.png", photo(1)), ("notes.txt", b"text"), ("b.png", photo(2))], headers=HTML)
    assert response.status_code == 201
    page = response.text
    assert page.count('class="notice notice-success upload-result"') == 2
    assert "notes.txt:" in page and 'role="alert"' in page
    # Each result's copy fields keep their own ids.
    assert 'id="direct-link-1"' in page and 'id="direct-link-3"' in page and 'id="direct-link"' not in page
    recent = client.get("/upload", headers=JSON).json()["data"]
    assert {item["original_name"] for item in recent} == {"a.png", "b.png"}


def test_a_single_upload_goes_into_the_named_album_and_article(client, settings):
    response = several(client, [("front.png", photo(1))], album_name="Shop", article_name="SKU 7")
    assert response.status_code == 201, response.text
    response = several(client, [("side.png", photo(2))], album_name="Shop", article_name="SKU 7")
    # The album exists now: an anonymous uploader may not add to it.
    assert response.status_code == 409, response.text
    assert placement(settings) == [("Shop", "SKU 7", 1, "front.png")]


def test_users_add_single_images_after_the_articles_last_photo(team, settings):  # noqa: F811
    assert send(team, make_zip(SHOP)).status_code == 201
    response = several(team, [("third.png", photo(7))], album_name="Shop", article_name="SKU1")
    assert response.status_code == 201, response.text
    assert [row for row in placement(settings) if row[1] == "SKU1"] == [
        ("Shop", "SKU1", 1, "back.png"),
        ("Shop", "SKU1", 2, "front.png"),
        ("Shop", "SKU1", 3, "third.png"),
    ]
    files = team.get("/api/files/Shop/SKU1").json()
    assert {item["original_name"] for item in files} == {"front.png", "back.png", "third.png"}


def test_without_an_article_each_file_takes_it_from_its_name(team, settings):  # noqa: F811
    response = several(
        team, [("SKU9_2.png", photo(1)), ("SKU9_1.png", photo(2)), ("Other.png", photo(3))], album_name="New"
    )
    assert response.status_code == 201, response.text
    assert sorted(placement(settings)) == [
        ("New", "Other", 1, "Other.png"),
        ("New", "SKU9", 1, "SKU9_2.png"),
        ("New", "SKU9", 2, "SKU9_1.png"),
    ]
    assert team.get("/api/articles/New").json() == ["Other", "SKU9"]


def test_bad_names_and_an_article_without_album_store_nothing(client, settings):
    bad = several(client, [("a.png", photo(1))], album_name="a/b")
    assert bad.status_code == 400 and "cannot be used" in bad.json()["error"]
    orphan = several(client, [("a.png", photo(1))], article_name="SKU1")
    assert orphan.status_code == 400 and "album_name" in orphan.json()["error"]
    assert stored_names(settings) == [] and placement(settings) == []


def test_an_image_refused_in_an_album_leaves_no_album_behind(client, settings):
    response = several(client, [("notes.txt", b"text")], album_name="Ghost", article_name="SKU1")
    assert response.status_code == 415, response.text
    assert run_sql(settings.database_url, "SELECT name FROM albums") == []
    assert client.get("/api/albums").json() == []


def test_an_archive_with_every_entry_refused_is_also_an_error_answer(client, settings):
    response = send(client, make_zip([("Shop/A/notes.txt", b"text")]))
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "error" and body["error"] == body["message"] and body["refused"] == 1


def test_an_anonymous_uploader_fills_the_new_album_its_first_file_made(client, settings):
    response = several(client, [("SKU1_1.png", photo(1)), ("SKU1_2.png", photo(2))], album_name="Fresh")
    assert response.status_code == 201, response.text
    assert [item["status"] for item in response.json()["results"]] == ["success", "success"]
    assert placement(settings) == [("Fresh", "SKU1", 1, "SKU1_1.png"), ("Fresh", "SKU1", 2, "SKU1_2.png")]
