"""An admin manages an article in a real headless Chromium: reorders its photos, moves one to
another article, meets a refused rename, deletes the article (confirming the number of images),
and renames the album; and the same page without JavaScript."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import test_browser as shared
from tests.albums.zips import make_zip, photo
from tests.live import LiveApp, live_app
from tests.test_browser import (
    ADMIN_TOKEN,
    DESKTOP,
    PHONE,
    mark_page,
    no_horizontal_scroll,
    page_was_not_reloaded,
    sql,
    upload_zip_over_http,
)

# The main browser module's Chromium and screenshots (its own live app is not started here).
playwright = shared.playwright
browser = shared.browser
screenshot = shared.screenshot

pytestmark = pytest.mark.browser
ALBUM = "Весна 2024"


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(database_url, tmp_path_factory.mktemp("manage-app"), ADMIN_TOKEN=ADMIN_TOKEN) as running:
        yield running


@pytest.fixture(autouse=True)
def shop(app: LiveApp) -> None:
    sql(app.env["DATABASE_URL"], "TRUNCATE images, albums RESTART IDENTITY CASCADE")
    upload_zip_over_http(
        app,
        make_zip(
            [
                (f"{ALBUM}/SKU1/a.png", photo(1)),
                (f"{ALBUM}/SKU1/b.png", photo(2)),
                (f"{ALBUM}/SKU1/c.png", photo(3)),
                (f"{ALBUM}/SKU2/d.png", photo(4)),
            ]
        ),
    )


def admin_page(browser: Browser, app: LiveApp, viewport: dict, javascript: bool = True) -> Page:
    # The admin: ADMIN_TOKEN sent by the browser (an open service without OIDC has no sign-in).
    context = browser.new_context(
        base_url=app.url,
        viewport=viewport,
        locale="en-GB",
        java_script_enabled=javascript,
        extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def test_an_admin_reorders_moves_and_deletes_on_the_article_page(browser: Browser, app: LiveApp, screenshot):
    page = admin_page(browser, app, DESKTOP)
    try:
        page.goto(f"/albums/{quote(ALBUM)}/SKU1")
        mark_page(page)
        cards = page.locator("#gallery .card")
        names = cards.locator(".original-name")
        expect(names).to_have_text(["a.png", "b.png", "c.png"])
        expect(cards.first.get_by_role("button", name="Earlier")).to_be_disabled()
        expect(cards.last.get_by_role("button", name="Later")).to_be_disabled()
        screenshot(page, "1-article")

        cards.nth(2).get_by_role("button", name="Earlier").click()
        expect(names).to_have_text(["a.png", "c.png", "b.png"])
        cards.nth(0).get_by_role("button", name="Later").click()
        expect(names).to_have_text(["c.png", "a.png", "b.png"])
        expect(cards.first.get_by_role("button", name="Earlier")).to_be_disabled()
        assert page_was_not_reloaded(page)
        screenshot(page, "2-reordered")
        page.reload()
        expect(names).to_have_text(["c.png", "a.png", "b.png"])  # stored, not just shown

        # Move b.png to the other article (offered in the list of the album's articles).
        assert page.locator("#article-codes option").evaluate_all("options => options.map(o => o.value)") == ["SKU2"]
        mark_page(page)
        cards.nth(2).get_by_label("Move to the article").fill("SKU2")
        cards.nth(2).get_by_role("button", name="Move", exact=True).click()
        expect(names).to_have_text(["c.png", "a.png"])
        expect(page.locator("#article-counts")).to_contain_text("Images: 2")
        assert page_was_not_reloaded(page)

        # A code the album has already: refused, and the page says why.
        page.get_by_label("Article code").fill("SKU2")
        page.get_by_role("button", name="Rename").click()
        expect(page.locator("#messages")).to_contain_text("There is already an article SKU2 in the album Весна 2024")
        screenshot(page, "3-refused-rename")

        dialogs: list[str] = []

        def accept(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        page.get_by_role("button", name="Delete the article").click()
        page.wait_for_url(f"{app.url}/albums/{quote(ALBUM)}")
        assert dialogs == ["Delete the article SKU1 with all its images (2)?"]
        expect(page.locator("#articles .card")).to_have_count(1)
        expect(page.locator("#articles .card")).to_contain_text("Images: 2")  # SKU2: d.png and b.png

        # Rename the album: its page comes back under the new name.
        page.get_by_label("Album name").fill("Лето 2024")
        page.get_by_role("button", name="Rename").click()
        page.wait_for_url(f"{app.url}/albums/{quote('Лето 2024')}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Лето 2024")
        screenshot(page, "4-album-renamed")
    finally:
        page.context.close()
    assert sql(app.env["DATABASE_URL"], "SELECT count(*) AS n FROM images")[0]["n"] == 2


def test_without_javascript_on_a_phone(browser: Browser, app: LiveApp, screenshot):
    page = admin_page(browser, app, PHONE, javascript=False)
    try:
        page.goto(f"/albums/{quote(ALBUM)}/SKU1")
        names = page.locator("#gallery .card .original-name")
        page.locator("#gallery .card").nth(1).get_by_role("button", name="Later").click()
        expect(names).to_have_text(["a.png", "c.png", "b.png"])
        assert no_horizontal_scroll(page), "the article page scrolls sideways on a phone"
        screenshot(page, "1-reordered")
        # Delete asks on the page first, with the count; Cancel keeps everything.
        page.get_by_role("button", name="Delete the article").click()
        question = page.get_by_role("alertdialog")
        expect(question).to_contain_text("Delete the article SKU1 with all its images (3)?")
        screenshot(page, "2-asked")
        question.get_by_role("link", name="Cancel").click()
        expect(page.get_by_role("alertdialog")).to_have_count(0)
        page.get_by_role("button", name="Delete the article").click()
        page.get_by_role("alertdialog").get_by_role("button", name="Delete").click()
        page.wait_for_url(f"{app.url}/albums/{quote(ALBUM)}")
        expect(page.locator("#articles .card")).to_have_count(1)
    finally:
        page.context.close()
    assert sql(app.env["DATABASE_URL"], "SELECT count(*) AS n FROM images")[0]["n"] == 1
