"""The session cookie (this browser's uploads, the signed-in person): signed, HttpOnly, Lax, and
Secure behind https."""

from __future__ import annotations

from tests.conftest import png_bytes, upload


def session_cookie(response) -> str:
    cookies = [value for name, value in response.headers.multi_items() if name == "set-cookie"]
    found = [cookie for cookie in cookies if cookie.startswith("imagehost_session")]
    assert found, cookies
    return found[0].lower()


def test_the_session_cookie_is_httponly_and_lax_and_not_secure_over_http(client):
    cookie = session_cookie(upload(client, png_bytes()))
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie


def test_behind_https_the_session_cookie_is_secure(make_client):
    client = make_client(secure_cookies=True)
    assert "secure" in session_cookie(upload(client, png_bytes()))


def test_a_forged_session_cookie_is_ignored(client):
    body = upload(client, png_bytes()).json()
    client.cookies.set("imagehost_session", "Zm9yZ2Vk" * 10, domain="testserver.local")
    # Not this browser's upload any more: no delete button, and delete without the key is refused.
    assert client.delete(f"/delete/{body['id']}").status_code == 403
