"""PRIVATE_IMAGES without nginx (`just run`): the app serves originals and thumbnails itself, with
the same rule nginx applies in the stack (tests/test_stack.py)."""

from __future__ import annotations

from tests.conftest import png_bytes

JSON = {"Accept": "application/json"}


def test_only_those_who_may_browse_get_private_images(make_oidc_client, sign_in):
    client = make_oidc_client(private_images=True)
    sign_in(client, "ulla", roles=["appuser"])
    body = client.post("/upload", files={"file": ("p.png", png_bytes(500, 400))}, headers=JSON).json()
    thumbnail = f"/images/thumbs/160/{body['filename']}.webp"
    for path in (f"/images/{body['filename']}", thumbnail):
        allowed = client.get(path)
        assert allowed.status_code == 200 and allowed.headers["cache-control"].startswith("private")
    assert client.get("/_auth/images").status_code == 204
    client.cookies.clear()  # a visitor who is not signed in
    for path in (f"/images/{body['filename']}", thumbnail, "/_auth/images"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["x-content-type-options"] == "nosniff"
    sign_in(client, "vera", roles=["appviewer"])
    assert client.get(f"/images/{body['filename']}").status_code == 200


def test_direct_links_stay_public_by_default(make_oidc_client, sign_in):
    client = make_oidc_client()
    sign_in(client, "ulla", roles=["appuser"])
    body = client.post("/upload", files={"file": ("p.png", png_bytes())}, headers=JSON).json()
    client.cookies.clear()
    shared = client.get(f"/images/{body['filename']}")
    assert shared.status_code == 200 and shared.headers["cache-control"].startswith("public")
    assert client.get("/images-list", headers=JSON).status_code == 401  # but the catalogue is not
