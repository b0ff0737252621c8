"""Numbers in paths and query strings: out of range is a 404 (path) or a 400 (query), never a 500."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN_TOKEN, HTML, png_bytes, upload

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HUGE = "99999999999999999999"


def int_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) of the app whose path has an integer parameter, filled with HUGE."""
    found = []
    for route in app.routes:
        if ":int}" not in route.path:
            continue
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS"}):
            found.append((method, re.sub(r"\{[^}]+:int\}", HUGE, route.path)))
    return found


def test_every_integer_path_parameter_past_the_database_range_is_404(client):
    upload(client, png_bytes())
    routes = int_routes(client.app)
    assert any("/download/" in path for _, path in routes)  # the walk found the routes it is for
    for method, path in routes:
        for value in (HUGE, "2147483648", "-1", "0"):
            response = client.request(method, path.replace(HUGE, value), headers=OPERATOR)
            # The profile's routes are for a signed-in person (tests/accounts walks them with one);
            # the operator token is refused there before any id is looked at.
            expected = {401} if path.startswith("/profile/") else {404}
            assert response.status_code in expected, (method, path, value, response.status_code, response.text)


@pytest.mark.parametrize("page", [HUGE, "10000001", "abc", "-3", "0", "1_0", "١"])
def test_a_page_number_out_of_range_is_400_in_every_representation(client, page):
    upload(client, png_bytes())
    for route in ("/images/", "/images-list"):
        json_answer = client.get(f"{route}?page={page}")
        assert json_answer.status_code == 400, (route, page)
        assert "page" in json_answer.json()["error"]
    html_answer = client.get(f"/images/?page={page}", headers=HTML)
    assert html_answer.status_code == 400 and "<html" in html_answer.text


def test_page_numbers_in_range_still_work(client):
    upload(client, png_bytes())
    assert client.get("/images-list?page=1").json()["data"]
    assert client.get("/images-list?page=10000000").json()["data"] == []
    assert client.get("/images-list?page=").status_code == 200
