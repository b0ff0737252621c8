"""The session cookie (this browser's uploads, the signed-in person): signed, HttpOnly, Lax, and
Secure with the `__Host-` prefix behind https; and the CSRF guard that keeps other sites from
using it."""

from __future__ import annotations

import pytest

from tests.conftest import png_bytes, upload


def set_cookies(response) -> list[str]:
    return [value for name, value in response.headers.multi_items() if name == "set-cookie"]


def session_cookie(response, name: str = "imagehost_session") -> str:
    found = [cookie for cookie in set_cookies(response) if cookie.startswith(f"{name}=")]
    assert found, set_cookies(response)
    return found[0]


def cookie_value(cookie: str) -> str:
    return cookie.split(";", 1)[0].split("=", 1)[1]


def test_the_session_cookie_is_httponly_and_lax_and_not_secure_over_http(client):
    cookie = session_cookie(upload(client, png_bytes())).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie


def test_behind_https_the_session_cookie_is_secure_and_host_only(make_client):
    client = make_client(secure_cookies=True)
    response = upload(client, png_bytes())
    cookie = session_cookie(response, "__Host-imagehost_session")
    attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
    assert not any(part.startswith("domain=") for part in attributes)
    assert not any(c.startswith("imagehost_session=") for c in set_cookies(response))


def test_an_old_cookie_is_moved_under_the_host_prefix_with_its_delete_keys(make_client):
    before = make_client()  # the site before it moved to https
    first = upload(before, png_bytes()).json()
    second = upload(before, png_bytes(color=(0, 90, 0))).json()
    old = cookie_value(session_cookie(upload(before, png_bytes(color=(0, 0, 90)))))
    after = make_client(secure_cookies=True)  # same SECRET_KEY, now behind https
    after.cookies.clear()
    moved = after.delete(f"/delete/{first['id']}", headers={"Cookie": f"imagehost_session={old}"})
    assert moved.status_code == 200, moved.text  # the key came from the old cookie
    new = cookie_value(session_cookie(moved, "__Host-imagehost_session"))
    cleared = session_cookie(moved, "imagehost_session").lower()
    assert "max-age=0" in cleared and "path=/" in cleared
    # The new cookie carries the other upload's key on; the old one is read no more once it is gone.
    again = after.delete(f"/delete/{second['id']}", headers={"Cookie": f"__Host-imagehost_session={new}"})
    assert again.status_code == 200, again.text


def test_a_forged_session_cookie_is_ignored(client):
    body = upload(client, png_bytes()).json()
    client.cookies.set("imagehost_session", "Zm9yZ2Vk" * 10, domain="testserver.local")
    # Not this browser's upload any more: no delete button, and delete without the key is refused.
    assert client.delete(f"/delete/{body['id']}").status_code == 403


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://testserver.local", True),
        ("http://testserver.local:80", True),
        ("https://testserver.local", False),  # another scheme is another site
        ("http://testserver.local:8080", False),
        ("http://testserver.local.evil.example", False),
        ("null", False),
        ("http://testserver.local:notaport", False),
    ],
)
def test_the_origin_fallback_compares_scheme_host_and_port(client, origin, allowed):
    answer = upload(client, png_bytes(), headers={"Origin": origin})
    assert answer.status_code == (201 if allowed else 403), answer.text


def test_the_public_base_url_is_an_origin_of_its_own_scheme_only(make_client):
    client = make_client(public_base_url="https://img.example.org")
    assert upload(client, png_bytes(), headers={"Origin": "https://img.example.org"}).status_code == 201
    assert upload(client, png_bytes(), headers={"Origin": "https://img.example.org:443"}).status_code == 201
    assert upload(client, png_bytes(), headers={"Origin": "http://img.example.org"}).status_code == 403
