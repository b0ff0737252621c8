# ruff: noqa: F811 (the fixtures of tests/test_browser.py, imported to share them)
"""In Chromium: a delete link opened from a chat asks before it deletes; the catalogue's grid view;
several images chosen at once without JavaScript; an album's export dialog downloads its link sheet."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import png_bytes
from tests.live import LiveApp
from tests.test_browser import (  # noqa: F401 (fixtures)
    app,
    browser,
    context,
    empty_catalogue,
    numbered_png,
    page,
    playwright,
    screenshot,
    sql,
    upload_over_http,
)

pytestmark = pytest.mark.browser


def test_a_delete_link_opened_in_a_browser_asks_first_and_its_button_deletes(
    page: Page, app: LiveApp, screenshot, database_url
):
    body = upload_over_http(app, "Holiday.png", png_bytes(300, 200))
    page.goto(body["delete_url"])
    expect(page.get_by_role("heading", name="Delete this image?")).to_be_visible()
    expect(page.locator(".confirm-delete figcaption")).to_contain_text("Holiday.png")
    screenshot(page, "1-asked")
    assert len(sql(database_url, "SELECT id FROM images")) == 1  # opening it deleted nothing
    with page.expect_navigation():
        page.get_by_role("button", name="Delete").click()
    screenshot(page, "2-after-delete")
    assert sql(database_url, "SELECT id FROM images") == []
    gone = page.goto(body["delete_url"])
    assert gone is not None and gone.status == 404


def test_a_wrong_key_shows_the_403_page(page: Page, app: LiveApp, screenshot, database_url):
    body = upload_over_http(app, "Kept.png", png_bytes())
    response = page.goto(body["delete_url"].split("?key=")[0] + "?key=not-the-key")
    assert response is not None and response.status == 403
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    screenshot(page, "1-refused")
    assert len(sql(database_url, "SELECT id FROM images")) == 1


def test_the_catalogue_grid_view_pages_in_place(page: Page, app: LiveApp, screenshot, database_url):
    for number in range(1, 13):
        upload_over_http(app, *numbered_png(number))
    page.goto("/images/")
    page.get_by_role("link", name="Grid").click()
    page.wait_for_url(f"{app.url}/images/?page=1&view=grid")
    expect(page.locator(".catalogue-grid li.card")).to_have_count(10)
    screenshot(page, "1-grid")
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(f"{app.url}/images/?page=2&view=grid")
    expect(page.locator(".catalogue-grid .card-name")).to_have_text(["img-02.png", "img-01.png"])
    screenshot(page, "2-grid-page-2")
    page.go_back()
    expect(page.locator(".catalogue-grid li.card")).to_have_count(10)


def test_several_images_without_javascript_each_get_a_result(browser: Browser, app: LiveApp, screenshot, database_url):
    context = browser.new_context(base_url=app.url, java_script_enabled=False, locale="en-GB")
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto("/upload")
        files = [
            {"name": name, "mimeType": "image/png", "buffer": content} for name, content in map(numbered_png, (1, 2))
        ]
        files.append({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"})
        page.set_input_files("#file-input", files=files)
        with page.expect_navigation():
            page.locator("#upload-form").get_by_role("button", name="Upload").click()
        expect(page.locator("#messages .upload-result")).to_have_count(2)
        expect(page.locator("#messages [role=alert]")).to_contain_text("notes.txt")
        screenshot(page, "1-results")
        assert len(sql(database_url, "SELECT id FROM images")) == 2
    finally:
        context.close()


def test_the_album_pages_export_dialog_downloads_a_link_sheet(page: Page, app: LiveApp, screenshot, database_url):
    import io
    from urllib.parse import quote

    from openpyxl import load_workbook

    from tests.albums.zips import make_zip, photo
    from tests.test_browser import upload_zip_over_http

    report = upload_zip_over_http(
        app, make_zip([("Весна/SKU1/a.png", photo(1)), ("Весна/SKU1/b.png", photo(2)), ("Весна/SKU2/c.png", photo(3))])
    )
    page.goto(f"/albums/{quote('Весна', safe='')}")
    page.locator("#export-dialog summary").click()
    page.locator("#export-dialog select[name=article_name]").select_option("SKU1")
    screenshot(page, "1-dialog")
    with page.expect_download() as download:
        page.locator("#export-dialog").get_by_role("button", name="Download XLSX").click()
    assert download.value.suggested_filename == "links_Весна_SKU1.xlsx"
    sheet = load_workbook(io.BytesIO(download.value.path().read_bytes())).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    stored = {item["url"] for item in report["results"] if item["article_number"] == "SKU1"}
    assert rows[0][0] == "Article" and rows[1][0] == "SKU1" and set(rows[1][1:]) == stored
