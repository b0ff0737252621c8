"""Through the real nginx (tests/test_stack.py's): /embed/ is the one place that may be framed;
every other page, nginx's own answers included, still refuses."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import HTML, png_bytes, run_sql
from tests.live import live_app, require
from tests.test_stack import Stack, running_nginx

pytestmark = pytest.mark.stack
BLOG = "https://blog.example"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    run_sql(database_url, "TRUNCATE images, albums RESTART IDENTITY CASCADE")
    workdir = tmp_path_factory.mktemp("embed-stack")
    with (
        live_app(database_url, workdir, EMBED_ORIGINS=f"{BLOG}, https://shop.example") as app,
        running_nginx(binary, workdir / "nginx", app) as port,
    ):
        yield Stack(url=f"http://127.0.0.1:{port}", port=port, app=app, workdir=workdir)


def test_embeds_may_be_framed_by_the_allowed_sites_through_nginx_and_nothing_else_may(stack):
    uploaded = stack.upload(png_bytes(300, 200), "framed.png")
    assert uploaded.status_code == 201, uploaded.text
    name = uploaded.json()["filename"]
    for path in (f"/embed/i/{name}", "/embed/latest", "/embed/album/nothing-like-it"):
        answer = httpx.get(f"{stack.url}{path}", headers={**HTML, "Origin": BLOG})
        assert answer.status_code in {200, 404}, path
        policies = answer.headers.get_list("content-security-policy")
        assert len(policies) == 1, (path, policies)  # the app's, and no second one from nginx
        assert policies[0].endswith(f"frame-ancestors 'self' {BLOG} https://shop.example"), policies
        assert "x-frame-options" not in answer.headers, path
        assert answer.headers["access-control-allow-origin"] == BLOG
    preflight = httpx.options(
        f"{stack.url}/embed/latest",
        headers={
            "Origin": BLOG,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "hx-request",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == BLOG
    assert "hx-request" in preflight.headers["access-control-allow-headers"]
    # Everything else keeps refusing to be framed, through nginx too: pages, 404s, nginx's own 413.
    for path in ("/", f"/i/{name}", "/images/", "/no-such-page", "/embed"):
        refused = httpx.get(f"{stack.url}{path}", headers=HTML)
        policies = refused.headers.get_list("content-security-policy")
        assert len(policies) == 1 and "frame-ancestors 'none'" in policies[0], (path, policies)
    too_big = stack.upload(b"\0" * (6 * 1024 * 1024), "huge.png", headers=HTML)
    assert too_big.status_code == 413
    assert too_big.headers.get_list("content-security-policy") == ["default-src 'none'; frame-ancestors 'none'"]
