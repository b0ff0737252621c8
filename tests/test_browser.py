"""ImageHost in a real headless Chromium, checked the way a person would: click, look, go back.

One browser and one live app (uvicorn against the session's PostgreSQL) serve the whole module;
every test gets a fresh browser context (no cookies) and an empty `images` table. Every page a
test visits is saved as a full-page screenshot in test-artifacts/<test>-<step>.png.
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from PIL import Image as PILImage
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.albums.zips import make_zip, photo
from tests.conftest import ARTIFACTS, CORPUS, png_bytes, run_sql
from tests.live import LiveApp, live_app, require

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
ADMIN_TOKEN = "browser-admin-token"
ROWS = "#catalogue tbody tr"
# Twelve clearly different colours, so that every generated image is a different file.
COLOURS = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
]


def sql(database_url: str, query: str) -> list:
    """run_sql from another thread: Playwright's sync API keeps an event loop set on this one."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(run_sql, database_url, query).result()


def numbered_png(number: int) -> tuple[str, bytes]:
    """img-01.png … img-12.png, each a small PNG in its own colour."""
    return f"img-{number:02d}.png", png_bytes(color=COLOURS[(number - 1) % len(COLOURS)])


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require(CHROMIUM)
    with sync_playwright() as runner:
        yield runner


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(database_url, tmp_path_factory.mktemp("browser-app"), ADMIN_TOKEN=ADMIN_TOKEN) as running:
        yield running


@pytest.fixture(autouse=True)
def empty_catalogue(database_url: str) -> None:
    sql(database_url, "TRUNCATE images, albums RESTART IDENTITY CASCADE")


@pytest.fixture
def context(browser: Browser, app: LiveApp) -> Iterator[BrowserContext]:
    """A fresh visitor: no cookies, so no uploads of its own and no language chosen."""
    fresh = browser.new_context(base_url=app.url, locale="en-GB")
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    visited = context.new_page()
    visited.set_default_timeout(10_000)
    return visited


@pytest.fixture
def screenshot(request: pytest.FixtureRequest):
    """screenshot(page, "step") saves test-artifacts/<test name>-<step>.png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page: Page, step: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def upload_over_http(app: LiveApp, name: str, content: bytes) -> dict:
    """An upload as a script makes it (JSON): for catalogue contents this browser does not own."""
    response = httpx.post(f"{app.url}/upload", files={"file": (name, content, "image/png")}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def upload_zip_over_http(app: LiveApp, content: bytes, name: str = "shop.zip", admin: bool = False) -> dict:
    headers = {"Accept": "application/json", **({"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {})}
    response = httpx.post(
        f"{app.url}/api/upload", files={"zipfile": (name, content, "application/zip")}, headers=headers, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()


def drop_files(page: Page, files: list[tuple[str, bytes, str]]) -> bool:
    """Drop these files on the drop zone, as a person dragging them from a file manager would."""
    page.evaluate(MAKE_FILE_JS)
    return page.evaluate(
        """([files]) => {
            const dataTransfer = new DataTransfer();
            for (const [name, encoded, type] of files) dataTransfer.items.add(window.__makeFile(encoded, name, type));
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer, bubbles: true, cancelable: true}));
            return zone.dispatchEvent(new DragEvent("drop", {dataTransfer, bubbles: true, cancelable: true}));
        }""",
        [[[name, base64.b64encode(content).decode(), kind] for name, content, kind in files]],
    )


def upload_through_page(page: Page, name: str, content: bytes, mime_type: str = "image/png") -> None:
    """Choose a file on /upload; the page's script sends it with htmx as soon as it is chosen."""
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime_type, "buffer": content}])


def mark_page(page: Page) -> None:
    """A marker that only survives as long as the document does (no full page load)."""
    page.evaluate("window.__marker = 1")


def page_was_not_reloaded(page: Page) -> bool:
    return page.evaluate("window.__marker === 1")


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def frames(content: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
    """Every frame of an image, decoded: what a viewer sees, whatever metadata the file holds."""
    with PILImage.open(io.BytesIO(content)) as image:
        decoded = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            decoded.append((image.format, image.size, image.convert("RGBA").tobytes()))
        return decoded


def test_upload_through_the_page_gives_a_direct_link_to_the_same_image(page: Page, app: LiveApp, screenshot):
    content = (CORPUS / "accepted" / "hopper.png").read_bytes()
    page.goto("/upload")
    expect(page.locator("#upload-progress")).to_have_count(1)
    # upload.js shows the progress bar when the upload starts; record what a person would see then.
    page.evaluate(
        """() => {
            window.__progressShown = false;
            const bar = document.getElementById("upload-progress");
            new MutationObserver(() => { if (!bar.hidden) window.__progressShown = true; })
                .observe(bar, {attributes: true});
        }"""
    )
    mark_page(page)
    screenshot(page, "1-upload-page")

    page.set_input_files("#file-input", str(CORPUS / "accepted" / "hopper.png"))
    link = page.locator("#messages #direct-link")
    expect(link).to_have_value(re.compile(rf"^{re.escape(app.url)}/images/[A-Za-z0-9_-]+\.png$"))
    expect(page.locator("#messages")).to_contain_text("Uploaded hopper.png")
    assert page_was_not_reloaded(page), "the result should be swapped in, not a new page"
    assert page.evaluate("window.__progressShown"), "the progress bar should show while uploading"
    expect(page.locator("#upload-progress")).to_be_hidden()
    assert page.url == f"{app.url}/upload"
    screenshot(page, "2-uploaded")
    direct_link = link.input_value()

    response = page.goto(direct_link)
    assert response is not None and response.status == 200
    assert response.headers["content-type"] == "image/png"
    # Metadata chunks are stripped on upload; the picture itself is untouched.
    assert frames(response.body()) == frames(content)
    screenshot(page, "3-direct-link")

    page.goto("/upload")
    page.reload()
    recent = page.locator("#recent-uploads")
    expect(page.get_by_role("heading", name="Your recent uploads")).to_be_visible()
    expect(recent.get_by_role("link", name="hopper.png")).to_have_attribute("href", direct_link)
    screenshot(page, "4-recent-uploads")


def test_a_refused_upload_shows_the_error_on_the_page(page: Page, app: LiveApp, screenshot):
    page.goto("/upload")
    mark_page(page)
    screenshot(page, "1-upload-page")

    page.set_input_files("#file-input", str(CORPUS / "hostile" / "text-named.jpg"))
    error = page.locator("#messages .notice-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("text-named.jpg")
    expect(error).to_have_attribute("data-status", "415")
    expect(page.locator("#messages #direct-link")).to_have_count(0)
    assert page_was_not_reloaded(page)
    assert page.url == f"{app.url}/upload"
    screenshot(page, "2-error")
    assert sql(app.env["DATABASE_URL"], "SELECT count(*) AS n FROM images")[0]["n"] == 0


# Builds a File in the page from base64 bytes: what a person's drop or paste would hand the page.
MAKE_FILE_JS = """
    window.__makeFile = (encoded, name, type) => {
        const bytes = Uint8Array.from(atob(encoded), (char) => char.charCodeAt(0));
        return new File([bytes], name, {type});
    };
"""


def direct_link_pattern(app: LiveApp, extension: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(app.url)}/images/[A-Za-z0-9_-]+\.{extension}$")


def test_dropping_a_file_on_the_drop_zone_uploads_it(page: Page, app: LiveApp, screenshot):
    content = (CORPUS / "accepted" / "hopper.gif").read_bytes()
    page.goto("/upload")
    page.evaluate(MAKE_FILE_JS)
    mark_page(page)
    screenshot(page, "1-upload-page")

    not_cancelled = page.evaluate(
        """([encoded]) => {
            const file = window.__makeFile(encoded, "hopper.gif", "image/gif");
            const dataTransfer = new DataTransfer();
            dataTransfer.items.add(file);
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer, bubbles: true, cancelable: true}));
            window.__draggingShown = zone.classList.contains("dragging");
            return zone.dispatchEvent(new DragEvent("drop", {dataTransfer, bubbles: true, cancelable: true}));
        }""",
        [base64.b64encode(content).decode()],
    )
    assert not not_cancelled, "the page should cancel the drop (else the browser would open the file)"
    assert page.evaluate("window.__draggingShown"), "dragging over the zone should highlight it"
    link = page.locator("#messages #direct-link")
    expect(link).to_have_value(direct_link_pattern(app, "gif"))
    expect(page.locator("#messages")).to_contain_text("Uploaded hopper.gif")
    expect(page.locator("#drop-zone")).not_to_have_class(re.compile(r"\bdragging\b"))
    assert page_was_not_reloaded(page)
    screenshot(page, "2-uploaded")

    response = page.request.get(link.input_value())
    assert response.status == 200
    assert response.headers["content-type"] == "image/gif"
    # The app drops metadata blocks (hopper.gif carries a Photoshop comment) and copies the rest
    # byte for byte: the same picture, frame for frame, if not the same file.
    assert frames(response.body()) == frames(content)


def test_pasting_an_image_uploads_it(page: Page, app: LiveApp, screenshot):
    content = png_bytes(64, 48, color=(0, 130, 200))
    page.goto("/upload")
    page.evaluate(MAKE_FILE_JS)
    mark_page(page)
    screenshot(page, "1-upload-page")

    not_cancelled = page.evaluate(
        """([encoded]) => {
            const clipboardData = new DataTransfer();
            clipboardData.items.add(window.__makeFile(encoded, "image.png", "image/png"));
            const event = new ClipboardEvent("paste", {clipboardData, bubbles: true, cancelable: true});
            if (event.clipboardData === null) throw new Error("ClipboardEvent ignored clipboardData");
            return document.dispatchEvent(event);
        }""",
        [base64.b64encode(content).decode()],
    )
    assert not not_cancelled, "the page should take the pasted file over"
    link = page.locator("#messages #direct-link")
    expect(link).to_have_value(direct_link_pattern(app, "png"))
    expect(page.locator("#messages")).to_contain_text("Uploaded image.png")
    assert page_was_not_reloaded(page)
    screenshot(page, "2-uploaded")

    response = page.request.get(link.input_value())
    assert response.status == 200 and response.body() == content
    assert sql(app.env["DATABASE_URL"], "SELECT count(*) AS n FROM images")[0]["n"] == 1


def test_the_copy_button_puts_the_direct_link_on_the_clipboard(
    page: Page, context: BrowserContext, app: LiveApp, screenshot
):
    page.goto("/upload")
    upload_through_page(page, *numbered_png(1))
    link = page.locator("#messages #direct-link")
    expect(link).to_have_value(direct_link_pattern(app, "png"))
    direct_link = link.input_value()
    screenshot(page, "1-uploaded")

    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    button = page.locator("#messages .snippet", has=page.locator("#direct-link")).get_by_role("button", name="Copy")
    expect(button).to_have_attribute("data-copy", "#direct-link")
    expect(button).not_to_have_attribute("data-copied", "true")
    button.click()
    expect(button).to_have_attribute("data-copied", "true")
    assert page.evaluate("navigator.clipboard.readText()") == direct_link
    screenshot(page, "2-copied")


def noise_png(size: int = 1000) -> bytes:
    """A PNG of random noise: it barely compresses, so it stays about 3 MB."""
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_progress_bar_moves_while_a_large_file_uploads(page: Page, app: LiveApp, screenshot):
    content = noise_png()
    assert len(content) > 2_900_000
    page.goto("/upload")
    # What a person sees: the page's bar and the file's own bar, each value they show on the way.
    page.evaluate(
        """() => {
            window.__uploadProgress = [];
            window.__barMoved = false;
            const bar = document.getElementById("upload-progress");
            new MutationObserver(() => {
                if (!bar.hidden && bar.value > 0 && bar.value < 100) window.__barMoved = true;
                const own = document.querySelector("#upload-queue .upload-item progress");
                if (own && !own.hidden) window.__uploadProgress.push(own.value);
            }).observe(bar, {attributes: true});
        }"""
    )
    screenshot(page, "1-upload-page")

    # Slow the upload down to about 1.5 MB/s, so that it takes a couple of seconds, like on a real line.
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_500_000},
    )
    upload_through_page(page, "noise.png", content)
    bar = page.locator("#upload-progress")
    expect(bar).to_be_visible()
    page.wait_for_function(
        """() => {
            const bar = document.getElementById("upload-progress");
            return !bar.hidden && bar.value > 0 && bar.value < 100;
        }"""
    )
    screenshot(page, "2-uploading")

    expect(page.locator("#messages #direct-link")).to_have_value(direct_link_pattern(app, "png"), timeout=30_000)
    expect(page.locator("#messages")).to_contain_text("Uploaded noise.png")
    expect(bar).to_be_hidden()
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    screenshot(page, "3-uploaded")

    values = page.evaluate("window.__uploadProgress")
    moving = {value for value in values if 0 < value < 100}
    assert len(moving) > 1, f"the file's own progress bar did not move: {values}"
    expect(page.locator("#upload-queue .upload-item")).to_have_attribute("data-state", "stored")
    assert page.evaluate("window.__barMoved"), "the progress bar never showed a value above 0"
    response = page.request.get(page.locator("#direct-link").input_value())
    assert response.status == 200 and response.body() == content


def open_first_of_two_pages(page: Page, app: LiveApp, screenshot) -> None:
    for number in range(1, 13):
        upload_over_http(app, *numbered_png(number))
    page.goto("/images/")
    expect(page.locator(ROWS)).to_have_count(10)
    expect(page.locator(".page-status")).to_have_text("page 1 of 2")
    expect(page.locator(ROWS).first.locator(".original-name")).to_have_text("img-12.png")
    screenshot(page, "1-page-1")


def go_to_the_next_page(page: Page, app: LiveApp, screenshot) -> None:
    mark_page(page)
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(f"{app.url}/images/?page=2")
    expect(page.locator(".page-status")).to_have_text("page 2 of 2")
    expect(page.locator(ROWS)).to_have_count(2)
    expect(page.locator(f"{ROWS} .original-name")).to_have_text(["img-02.png", "img-01.png"])
    expect(page.get_by_role("link", name="Previous page")).to_be_visible()
    assert page_was_not_reloaded(page), "paging should swap the table, not load a new page"
    screenshot(page, "2-page-2")


def test_the_next_page_swaps_only_the_table(page: Page, app: LiveApp, screenshot):
    open_first_of_two_pages(page, app, screenshot)
    go_to_the_next_page(page, app, screenshot)

    page.get_by_role("link", name="Previous page").click()
    page.wait_for_url(f"{app.url}/images/?page=1")
    expect(page.locator(ROWS)).to_have_count(10)
    expect(page.locator(".page-status")).to_have_text("page 1 of 2")
    assert page_was_not_reloaded(page)
    screenshot(page, "3-previous-page")


def test_back_after_paging_shows_the_first_page_again(page: Page, app: LiveApp, screenshot):
    open_first_of_two_pages(page, app, screenshot)
    go_to_the_next_page(page, app, screenshot)

    page.go_back()
    page.wait_for_url(f"{app.url}/images/")
    try:
        expect(page.locator(".page-status")).to_have_text("page 1 of 2")
        expect(page.locator(ROWS)).to_have_count(10)
        expect(page.locator(ROWS).first.locator(".original-name")).to_have_text("img-12.png")
        expect(page.get_by_role("link", name="Next page")).to_be_visible()
    finally:
        screenshot(page, "3-back-to-page-1")


def test_deleting_a_row_removes_it_in_place_and_refills_the_page(page: Page, app: LiveApp, screenshot):
    page.goto("/upload")
    screenshot(page, "1-upload-page")
    for number in range(1, 12):
        name, content = numbered_png(number)
        upload_through_page(page, name, content)
        expect(page.locator("#messages .upload-result")).to_contain_text(f"Uploaded {name}")
    screenshot(page, "2-eleven-uploaded")

    page.goto("/images/")
    expect(page.locator(ROWS)).to_have_count(10)
    expect(page.locator(".page-status")).to_have_text("page 1 of 2")
    # Every row is this browser's own upload, so every row offers Delete.
    expect(page.locator(f"{ROWS} button", has_text="Delete")).to_have_count(10)
    screenshot(page, "3-catalogue")

    first_row = page.locator(ROWS).first
    row_id = first_row.get_attribute("id")
    expect(first_row.locator(".original-name")).to_have_text("img-11.png")
    # The stored name links to the image itself (the thumbnail links to its page).
    direct_link = first_row.get_by_role("link", name=re.compile(r"^[A-Za-z0-9_-]+\.png$")).get_attribute("href")
    assert direct_link and direct_link.startswith(f"{app.url}/images/")

    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    mark_page(page)
    first_row.get_by_role("button", name="Delete").click()
    expect(page.locator(f"#{row_id}")).to_have_count(0)
    expect(page.locator(".page-status")).to_have_text("page 1 of 1")
    expect(page.locator(ROWS)).to_have_count(10)
    expect(page.locator(f"{ROWS} .original-name")).to_have_text([f"img-{n:02d}.png" for n in range(10, 0, -1)])
    assert dialogs == ["Delete this image for good?"]
    assert page_was_not_reloaded(page), "deleting should not load a new page"
    assert page.url == f"{app.url}/images/"
    screenshot(page, "4-after-delete")

    # The image was shown (and cached for a year, immutable) as the upload preview: ask the
    # server itself, as a visitor who never saw it would.
    without_cache = page.context.new_cdp_session(page)
    without_cache.send("Network.enable")
    without_cache.send("Network.setCacheDisabled", {"cacheDisabled": True})
    response = page.goto(direct_link)
    assert response is not None and response.status == 404
    screenshot(page, "5-deleted-link")


def test_switching_the_language_is_remembered(page: Page, app: LiveApp, screenshot):
    for number in range(1, 12):
        upload_over_http(app, *numbered_png(number))
    page.goto("/images/")
    header = page.locator(".site-header")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    screenshot(page, "1-english")

    header.get_by_role("link", name="Русский").click()
    page.wait_for_url(f"{app.url}/images/")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(header.get_by_role("link", name="Каталог")).to_be_visible()
    expect(header.get_by_role("link", name="Загрузить")).to_be_visible()
    expect(page.get_by_role("link", name="Следующая страница")).to_be_visible()
    expect(header.get_by_role("link", name="Catalogue")).to_have_count(0)
    screenshot(page, "2-russian")

    # The choice is remembered: a new page load, then another page, are still in Russian.
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("link", name="Следующая страница")).to_be_visible()
    screenshot(page, "3-russian-after-reload")
    page.get_by_role("link", name="Следующая страница").click()
    page.wait_for_url(f"{app.url}/images/?page=2")
    expect(page.get_by_role("link", name="Предыдущая страница")).to_be_visible()
    header.get_by_role("link", name="Загрузить").click()
    page.wait_for_url(f"{app.url}/upload")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(header.get_by_role("link", name="Каталог")).to_be_visible()
    screenshot(page, "4-russian-upload-page")

    header.get_by_role("link", name="English").click()
    page.wait_for_url(f"{app.url}/upload")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(header.get_by_role("link", name="Catalogue")).to_be_visible()
    expect(header.get_by_role("link", name="Upload")).to_be_visible()
    screenshot(page, "5-english-upload-page")
    page.goto("/images/")
    expect(page.get_by_role("link", name="Next page")).to_be_visible()
    screenshot(page, "6-english-catalogue")


def test_the_site_works_without_javascript(browser: Browser, app: LiveApp, screenshot):
    context = browser.new_context(base_url=app.url, java_script_enabled=False, locale="en-GB")
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto("/upload")
        screenshot(page, "1-upload-page")
        content = (CORPUS / "accepted" / "hopper.png").read_bytes()
        page.set_input_files("#file-input", str(CORPUS / "accepted" / "hopper.png"))
        with page.expect_navigation():
            page.locator("#upload-form").get_by_role("button", name="Upload").click()
        # A whole page came back: header, heading and the result with its direct link.
        expect(page.locator(".site-header")).to_be_visible()
        expect(page.get_by_role("heading", name="Upload an image")).to_be_visible()
        expect(page.locator("#messages")).to_contain_text("Uploaded hopper.png")
        direct_link = page.locator("#direct-link").input_value()
        assert re.fullmatch(rf"{re.escape(app.url)}/images/[A-Za-z0-9_-]+\.png", direct_link)
        screenshot(page, "2-uploaded")
        response = page.goto(direct_link)
        assert response is not None and response.status == 200
        assert frames(response.body()) == frames(content)
        screenshot(page, "2b-direct-link")

        for number in range(1, 12):
            upload_over_http(app, *numbered_png(number))
        page.goto("/images/")
        expect(page.locator(ROWS)).to_have_count(10)
        expect(page.locator(".page-status")).to_have_text("page 1 of 2")
        screenshot(page, "3-catalogue-page-1")
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url(f"{app.url}/images/?page=2")
        expect(page.locator(".page-status")).to_have_text("page 2 of 2")
        expect(page.locator(f"{ROWS} .original-name")).to_have_text(["img-01.png", "hopper.png"])
        screenshot(page, "4-catalogue-page-2")
        page.get_by_role("link", name="Previous page").click()
        page.wait_for_url(f"{app.url}/images/?page=1")
        expect(page.locator(ROWS)).to_have_count(10)
        expect(page.locator(".page-status")).to_have_text("page 1 of 2")
        screenshot(page, "5-catalogue-page-1-again")
    finally:
        context.close()


def test_phone_width_has_no_sideways_scroll_in_light_and_dark(browser: Browser, app: LiveApp, screenshot):
    upload_over_http(app, "a-rather-long-holiday-photo-name-without-any-spaces-2024-08-17-DSC01234.png", png_bytes())
    for number in range(1, 12):
        upload_over_http(app, *numbered_png(number))
    backgrounds: dict[str, set[str]] = {}
    upload_zip_over_http(
        app,
        make_zip(
            [(f"A-very-long-album-name-without-any-spaces-at-all-2024/SKU-{n}/p.png", photo(n)) for n in range(3)]
        ),
    )
    album = quote("A-very-long-album-name-without-any-spaces-at-all-2024")
    for scheme in ("light", "dark"):
        context = browser.new_context(base_url=app.url, viewport=PHONE, color_scheme=scheme, locale="en-GB")
        try:
            page = context.new_page()
            page.set_default_timeout(10_000)
            for step, path in (
                ("home", "/"),
                ("upload", "/upload"),
                ("catalogue", "/images/"),
                ("albums", "/albums"),
                ("album", f"/albums/{album}"),
                ("gallery", f"/albums/{album}/SKU-1"),
            ):
                page.goto(path)
                screenshot(page, f"{scheme}-{step}")
                assert no_horizontal_scroll(page), f"{path} scrolls sideways at 375 px ({scheme})"
                backgrounds.setdefault(scheme, set()).add(
                    page.evaluate("getComputedStyle(document.body).backgroundColor")
                )
        finally:
            context.close()
    assert len(backgrounds["light"]) == 1 and len(backgrounds["dark"]) == 1, backgrounds
    assert backgrounds["light"] != backgrounds["dark"]


def test_the_image_page_shows_the_large_thumbnail_and_copies_the_link(
    page: Page, context: BrowserContext, app: LiveApp, screenshot
):
    body = upload_over_http(app, "wide.png", png_bytes(2400, 1200, (200, 90, 40)))
    page.goto(f"/i/{body['filename']}")
    image = page.locator("img.large")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('img.large').complete")
    shown = image.evaluate("img => [img.naturalWidth, img.currentSrc]")
    assert shown[0] > 0 and shown[1].endswith(".webp")  # a thumbnail, not the 2400 px original
    expect(page.locator("#direct-link")).to_have_value(body["url"])
    screenshot(page, "1-image-page")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    page.locator(".snippet", has=page.locator("#snippet-bbcode")).get_by_role("button").click()
    assert page.evaluate("navigator.clipboard.readText()") == f"[img]{body['url']}[/img]"
    # The catalogue's thumbnail links to this page.
    page.goto("/images/")
    thumbnail = page.locator("td.thumb img").first
    page.wait_for_function("document.querySelector('td.thumb img').complete")
    assert thumbnail.evaluate("img => img.naturalWidth") > 0
    screenshot(page, "2-catalogue-thumbnail")


def test_the_pages_and_the_api_page_run_under_their_content_security_policy(page, app, screenshot):
    """Every page's scripts and styles come from /static: the browser reports no CSP violation, and
    the API page (Swagger UI, vendored) renders the description."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    body = upload_over_http(app, "csp.png", png_bytes())
    upload_zip_over_http(app, make_zip([("CSP/SKU1/a.png", photo(1))]))
    for path in ("/", "/upload", "/images/", f"/i/{body['filename']}", "/albums", "/albums/CSP", "/albums/CSP/SKU1"):
        page.goto(path)
        expect(page.locator("main")).to_be_visible()
    page.goto("/schema")
    expect(page.locator("#swagger-ui .information-container")).to_contain_text("ImageHost")
    expect(page.locator("#swagger-ui")).to_contain_text("/upload")
    screenshot(page, "schema")
    assert violations == []


def test_dropping_a_zip_and_images_gives_each_file_its_line_and_result(browser: Browser, app: LiveApp, screenshot):
    archive = make_zip(
        [
            ("Shop/SKU1/front.png", photo(1)),
            ("Shop/SKU1/back.png", photo(2)),
            ("Shop/SKU2/side.png", photo(3)),
            ("Shop/SKU2/notes.jpg", b"not an image at all"),
            ("__MACOSX/Shop/._front.png", b"resource fork"),
        ]
    )
    files = [
        ("shop.zip", archive, "application/zip"),
        ("one.png", photo(4), "image/png"),
        ("two.png", photo(5), "image/png"),
    ]
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        run_sql_in_thread_truncate(app)
        context = browser.new_context(base_url=app.url, viewport=viewport, locale="en-GB")
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.goto("/upload")
            mark_page(page)
            assert not drop_files(page, files), "the page should take the drop over"
            items = page.locator("#upload-queue .upload-item")
            expect(items).to_have_count(3)
            for item in items.all():
                expect(item).not_to_have_attribute("data-state", re.compile("waiting|sending"))
            zip_item = items.filter(has_text="shop.zip")
            expect(zip_item).to_have_attribute("data-state", "stored")
            expect(zip_item.locator(".upload-summary")).to_have_text("Album Shop: 3 stored, 1 refused, 1 skipped")
            stored = zip_item.locator('.zip-entry[data-status="stored"]')
            expect(stored).to_have_count(3)
            expect(stored.first.locator("input")).to_have_value(direct_link_pattern(app, "png"))
            refused = zip_item.locator('.zip-entry[data-status="refused"]')
            expect(refused).to_contain_text("Shop/SKU2/notes.jpg")
            expect(refused.locator(".upload-reason")).not_to_be_empty()
            expect(zip_item.locator('.zip-entry[data-status="skipped"]')).to_contain_text("__MACOSX")
            for single in ("one.png", "two.png"):
                line = items.filter(has_text=single)
                expect(line).to_have_attribute("data-state", "stored")
                expect(line.locator("input")).to_have_value(direct_link_pattern(app, "png"))
            # The last image's full result (snippets) and the recent list, as for a single upload.
            expect(page.locator("#messages #direct-link")).to_have_value(direct_link_pattern(app, "png"))
            expect(page.locator("#recent-uploads li")).to_have_count(2)
            expect(page.locator("#upload-progress")).to_be_hidden()
            assert page_was_not_reloaded(page)
            assert no_horizontal_scroll(page), f"the upload page scrolls sideways ({name})"
            screenshot(page, f"{name}-results")
        finally:
            context.close()
    assert sql(app.env["DATABASE_URL"], "SELECT count(*) AS n FROM images")[0]["n"] == 5


def run_sql_in_thread_truncate(app: LiveApp) -> None:
    sql(app.env["DATABASE_URL"], "TRUNCATE images, albums RESTART IDENTITY CASCADE")


def test_albums_search_gallery_back_and_an_admin_deletes_an_article(browser: Browser, app: LiveApp, screenshot):
    upload_zip_over_http(
        app,
        make_zip(
            [
                ("Весна 2024/SKU1/a.png", photo(1)),
                ("Весна 2024/SKU1/b.png", photo(2)),
                ("Весна 2024/SKU2/c.png", photo(3)),
            ]
        ),
    )
    upload_zip_over_http(app, make_zip([("Winter/W1/x.png", photo(4))]), name="winter.zip")
    # The admin: ADMIN_TOKEN sent by the browser (an open service without OIDC has no sign-in, and
    # an anonymous uploader may not delete an album it did not create).
    context = browser.new_context(
        base_url=app.url,
        viewport=DESKTOP,
        locale="en-GB",
        extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto("/")
        page.locator(".site-header").get_by_role("link", name="Albums").click()
        page.wait_for_url(f"{app.url}/albums")
        cards = page.locator("#albums .card")
        expect(cards).to_have_count(2)
        expect(cards.filter(has_text="Весна 2024")).to_contain_text("Articles: 2 · Images: 3")
        screenshot(page, "1-albums")

        mark_page(page)
        page.get_by_label("Find an album").press_sequentially("вес", delay=50)
        expect(cards).to_have_count(1)
        expect(cards).to_contain_text("Весна 2024")
        page.wait_for_url(re.compile(r"/albums\?q=%D0%B2%D0%B5%D1%81$"))
        assert page_was_not_reloaded(page)
        screenshot(page, "2-searched")

        cards.get_by_role("link").click()
        page.wait_for_url(f"{app.url}/albums/{quote('Весна 2024')}")
        expect(page.locator(".breadcrumbs")).to_contain_text("Albums")
        expect(page.locator("#articles .card")).to_have_count(2)
        screenshot(page, "3-album")
        page.locator("#articles .card", has_text="SKU1").get_by_role("link").click()
        gallery = page.locator("#gallery .card")
        expect(gallery).to_have_count(2)
        expect(gallery.first.locator("img")).to_have_attribute("loading", "lazy")
        page.wait_for_function("[...document.querySelectorAll('#gallery img')].every(img => img.complete)")
        assert gallery.first.locator("img").evaluate("img => img.naturalWidth") > 0
        link = gallery.first.locator(".copy-link input").input_value()
        assert direct_link_pattern(app, "png").match(link)
        gallery.first.get_by_role("button", name="Copy").click()
        assert page.evaluate("navigator.clipboard.readText()") == link
        screenshot(page, "4-gallery")

        page.go_back()
        page.wait_for_url(f"{app.url}/albums/{quote('Весна 2024')}")
        page.go_back()
        page.wait_for_url(re.compile(r"/albums\?q="))
        expect(cards).to_have_count(1)
        page.go_forward()
        page.go_forward()
        expect(gallery).to_have_count(2)

        dialogs: list[str] = []

        def accept(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        page.get_by_role("button", name="Delete the article").click()
        page.wait_for_url(f"{app.url}/albums/{quote('Весна 2024')}")
        assert dialogs == ["Delete the article SKU1 with all its images (2)?"]
        expect(page.locator("#articles .card")).to_have_count(1)
        expect(page.locator(".counts").first).to_contain_text("Articles: 1 · Images: 1")
        screenshot(page, "5-article-deleted")
    finally:
        context.close()
    assert sql(app.env["DATABASE_URL"], "SELECT count(*) AS n FROM images")[0]["n"] == 2


def test_past_the_upload_limit_the_page_says_so_and_goes_on_when_it_may(
    browser: Browser, database_url: str, tmp_path: Path, screenshot
):
    with live_app(database_url, tmp_path, UPLOAD_RATE_LIMIT="2") as limited:
        context = browser.new_context(base_url=limited.url, viewport=DESKTOP, locale="en-GB")
        try:
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto("/upload")
            drop_files(page, [(f"limit-{n}.png", photo(10 + n), "image/png") for n in range(3)])
            items = page.locator("#upload-queue .upload-item")
            expect(items.filter(has_text="limit-0.png")).to_have_attribute("data-state", "stored")
            expect(items.filter(has_text="limit-1.png")).to_have_attribute("data-state", "stored")
            # The third is refused with 429: the page says when it goes on, and waits.
            status = page.locator("#upload-status")
            expect(status).to_be_visible()
            expect(status).to_contain_text(re.compile(r"Upload limit reached: the next file goes in \d+ s\."))
            expect(items.filter(has_text="limit-2.png")).to_have_attribute("data-state", "waiting")
            screenshot(page, "1-limited")
            expect(items.filter(has_text="limit-2.png")).to_have_attribute("data-state", "stored", timeout=75_000)
            expect(status).to_be_hidden()
            # Every upload is in this browser's list (the session cookie kept each, none overwritten).
            expect(page.locator("#recent-uploads li")).to_have_count(3)
            screenshot(page, "2-went-on")
        finally:
            context.close()
    assert sql(database_url, "SELECT count(*) AS n FROM images")[0]["n"] == 3
