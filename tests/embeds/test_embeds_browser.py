"""The embeds in a real Chromium, on another site's page: a host page served from a second
loopback origin (localhost, another site than 127.0.0.1) pastes the codes the image and album pages
offer: an iframe of an image card, and an album's gallery through htmx's hx-get (with the vendored
htmx served from that other origin). Screenshots go to test-artifacts/ as the other browser tests'."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.albums.zips import make_zip, photo
from tests.conftest import PROJECT_ROOT, png_bytes
from tests.live import LiveApp, live_app
from tests.test_browser import sql

pytestmark = pytest.mark.browser
HTMX = PROJECT_ROOT / "static" / "htmx-2.0.11.min.js"


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(database_url, tmp_path_factory.mktemp("embed-browser-app")) as running:
        yield running


class HostSite:
    """Another site: a few fixed files on their own loopback port."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {"/htmx.js": ("text/javascript", HTMX.read_bytes())}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, body = files.get(self.path, ("text/plain", b"not found"))
                self.send_response(200 if self.path in files else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # localhost, not 127.0.0.1: another site, so the browser treats the embeds as cross-site.
        self.url = f"http://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def code(page: Page, kind: str) -> str:
    return page.locator(f"#embed-{kind}").input_value()


def all_loaded(locator) -> bool:
    return locator.evaluate_all("images => images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0)")


def test_another_site_shows_an_image_in_an_iframe_and_an_album_through_htmx(page: Page, app: LiveApp, screenshot):
    sql(app.env["DATABASE_URL"], "TRUNCATE images, albums RESTART IDENTITY CASCADE")
    uploaded = httpx.post(f"{app.url}/upload", files={"file": ("sunset.png", png_bytes(640, 400, (240, 120, 40)))})
    assert uploaded.status_code == 201, uploaded.text
    name = uploaded.json()["filename"]
    archive = make_zip([(f"Весна/SKU1/{n}.png", photo(n, (80, 60))) for n in range(1, 6)])
    stored = httpx.post(
        f"{app.url}/api/upload", files={"zipfile": ("shop.zip", archive)}, headers={"Accept": "application/json"}
    )
    assert stored.status_code == 201, stored.text

    # The codes, copied from the pages as a person would, with their live previews there.
    page.goto(f"{app.url}/i/{name}")
    expect(page.frame_locator(".embed-preview").locator(".imagehost-card img")).to_be_visible()
    screenshot(page, "1-image-page-codes")
    iframe = code(page, "iframe")
    page.goto(f"{app.url}/albums/{quote('Весна', safe='')}")
    htmx_include, htmx_config = code(page, "htmx"), code(page, "htmx-config")
    screenshot(page, "2-album-page-codes")

    with HostSite() as host:
        host.files["/post.html"] = (
            "text/html; charset=utf-8",
            f"""<!doctype html><html><head><meta charset="utf-8"><title>A blog post</title>
            {htmx_config}<script src="/htmx.js"></script></head>
            <body><h1>My trip</h1><p>The picture:</p>{iframe}
            <p>The whole album:</p>{htmx_include}
            <p>Not an embed (refused):</p>
            <iframe id="refused" src="{app.url}/i/{name}" width="300" height="100"></iframe>
            </body></html>""".encode(),
        )
        page.goto(f"{host.url}/post.html")
        card = page.frame_locator(f'iframe[src="{app.url}/embed/i/{name}"]')
        expect(card.locator(".imagehost-card img")).to_be_visible()
        expect(card.locator(".imagehost-name")).to_have_text("sunset.png")
        assert all_loaded(card.locator(".imagehost-card img"))
        gallery = page.locator(".imagehost-gallery")
        expect(gallery.locator(".imagehost-grid img")).to_have_count(5)  # swapped in by htmx, across origins
        expect(gallery.locator(".imagehost-title")).to_have_text("Весна")
        page.wait_for_function("[...document.querySelectorAll('.imagehost-grid img')].every(i => i.naturalWidth > 0)")
        # The grid is styled by the embed's own stylesheet, which came with the fragment.
        assert gallery.locator(".imagehost-grid").evaluate("grid => getComputedStyle(grid).display") == "grid"
        links = gallery.locator(".imagehost-grid a")
        assert all(href.startswith(f"{app.url}/i/") for href in links.evaluate_all("a => a.map(x => x.href)"))
        # Every other page of ours still refuses to be framed: Chromium shows its error page instead.
        refused = next(frame for frame in page.frames if frame.name == "" and frame.url.startswith("chrome-error"))
        assert refused is not None
        screenshot(page, "3-host-page")
